use sea_orm::sea_query::IntoCondition;
use sea_orm::sea_query::{Expr, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect, QueryTrait, TransactionTrait,
};

use super::{Store, grant, refresh_token, user};
use crate::crypto::now;

impl Store {
    pub async fn insert_grant(&self, model: grant::Model) -> Result<(), DbErr> {
        grant::Entity::insert(grant::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// Whether tokens of this grant may still be used: the grant is not revoked and its user not disabled.
    /// (Disabling or deleting a client revokes its grants, so the client needs no check here.)
    pub async fn grant_is_active(&self, grant_id: &str) -> Result<bool, DbErr> {
        let found = grant::Entity::find_by_id(grant_id)
            .filter(grant::Column::RevokedAt.is_null())
            .filter(grant::Column::UserId.in_subquery(Store::enabled_user_ids()))
            .one(&self.db)
            .await?;
        Ok(found.is_some())
    }

    /// Revokes a grant and every refresh token issued under it (RFC 9700 §4.14.2 on reuse, RFC 7009 on
    /// revocation, RFC 6749 §4.1.2 on code replay); its access tokens fail at the guard from now on.
    /// Returns whether the grant was live.
    pub async fn revoke_grant(&self, grant_id: &str) -> Result<bool, DbErr> {
        let at = now();
        let txn = self.db.begin().await?;
        let revoked = grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(at))
            .filter(grant::Column::GrantId.eq(grant_id))
            .filter(grant::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(at))
            .filter(refresh_token::Column::FamilyId.eq(grant_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(revoked.rows_affected == 1)
    }

    /// Revokes every live grant matching `condition` and the refresh tokens issued under them.
    pub(super) async fn revoke_grants_where(
        txn: &impl ConnectionTrait,
        condition: impl IntoCondition + Clone,
    ) -> Result<(), DbErr> {
        let at = now();
        let families =
            grant::Entity::find().select_only().column(grant::Column::GrantId).filter(condition.clone()).into_query();
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(at))
            .filter(refresh_token::Column::FamilyId.in_subquery(families))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        grant::Entity::update_many()
            .col_expr(grant::Column::RevokedAt, Expr::value(at))
            .filter(condition)
            .filter(grant::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Grants that are not revoked and whose user is enabled.
    pub(super) fn active_grant_ids() -> SelectStatement {
        grant::Entity::find()
            .select_only()
            .column(grant::Column::GrantId)
            .filter(grant::Column::RevokedAt.is_null())
            .filter(grant::Column::UserId.in_subquery(Store::enabled_user_ids()))
            .into_query()
    }

    fn enabled_user_ids() -> SelectStatement {
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Disabled.eq(false))
            .into_query()
    }
}
