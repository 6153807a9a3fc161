use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{Store, authorization_code, grant};
use crate::clock::now;

impl Store {
    /// Stores a new grant and the authorization code that starts it, together.
    pub async fn insert_code(&self, grant: grant::Model, code: authorization_code::Model) -> Result<(), DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        grant::Entity::insert(grant::ActiveModel::from(grant)).exec_without_returning(&txn).await?;
        authorization_code::Entity::insert(authorization_code::ActiveModel::from(code))
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await
    }

    /// Marks an unused code of this client, whose grant is live and whose user is enabled, as used and
    /// returns it; `None` for every other caller.
    ///
    /// One statement, so among concurrent redemptions (on any number of instances) exactly one wins, and
    /// what happens after (a replay revoking the grant) cannot turn that win into a failure.
    /// Another client's attempt does not consume the code.
    pub async fn redeem_code(
        &self,
        code_hash: &str,
        client_id: &str,
    ) -> Result<Option<authorization_code::Model>, DbErr> {
        let mut rows = authorization_code::Entity::update_many()
            .col_expr(authorization_code::Column::UsedAt, Expr::value(now()))
            .filter(authorization_code::Column::CodeHash.eq(code_hash))
            .filter(authorization_code::Column::ClientId.eq(client_id))
            .filter(authorization_code::Column::UsedAt.is_null())
            .filter(Store::live_grant((authorization_code::Entity, authorization_code::Column::FamilyId)))
            .exec_with_returning(&self.db)
            .await?;
        Ok(rows.pop())
    }

    pub async fn find_code(&self, code_hash: &str) -> Result<Option<authorization_code::Model>, DbErr> {
        authorization_code::Entity::find_by_id(code_hash).one(&self.db).await
    }
}
