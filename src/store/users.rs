use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    SqlErr,
};

use super::{MACHINE_GRANT_USER, Store, client, grant, user};
use crate::clock::now;

impl Store {
    /// Creates a user; `Ok(None)` when the username is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: String,
        is_admin: bool,
    ) -> Result<Option<user::Model>, DbErr> {
        let model = user::Model {
            id: uuid::Uuid::new_v4().to_string(),
            username: username.to_owned(),
            password_hash,
            is_admin,
            disabled: false,
            created_at: now(),
        };
        match user::Entity::insert(user::ActiveModel::from(model.clone())).exec_without_returning(&self.db).await {
            Ok(_) => Ok(Some(model)),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find().filter(user::Column::Username.eq(username)).one(&self.db).await
    }

    pub async fn find_user(&self, id: &str) -> Result<Option<user::Model>, DbErr> {
        user::Entity::find_by_id(id).one(&self.db).await
    }

    pub async fn list_users(&self) -> Result<Vec<user::Model>, DbErr> {
        user::Entity::find().order_by_asc(user::Column::Username).all(&self.db).await
    }

    /// Disables or enables a user; returns whether the user exists.
    /// Disables or enables a user. Disabling also revokes every grant and refresh token of the user, so
    /// enabling them again later does not bring old (possibly stolen) tokens back.
    pub async fn set_user_disabled(&self, username: &str, disabled: bool) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let result = user::Entity::update_many()
            .set(user::ActiveModel { disabled: Set(disabled), ..Default::default() })
            .filter(user::Column::Username.eq(username))
            .exec(&txn)
            .await?;
        if disabled && result.rows_affected == 1 {
            let user_ids = user::Entity::find()
                .select_only()
                .column(user::Column::Id)
                .filter(user::Column::Username.eq(username))
                .into_query();
            Store::revoke_grants_where(&txn, grant::Column::UserId.in_subquery(user_ids.clone())).await?;
            // The machine grants of clients this person registered on the apps page end with them too.
            let owned = client::Entity::find()
                .select_only()
                .column(client::Column::ClientId)
                .filter(client::Column::OwnerUserId.in_subquery(user_ids))
                .into_query();
            let machine = grant::Column::UserId.eq(MACHINE_GRANT_USER).and(grant::Column::ClientId.in_subquery(owned));
            Store::revoke_grants_where(&txn, machine).await?;
        }
        self.commit_ending(txn).await?;
        Ok(result.rows_affected == 1)
    }
}
