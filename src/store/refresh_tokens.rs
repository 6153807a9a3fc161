use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{Store, refresh_token};
use crate::clock::now;

impl Store {
    pub async fn insert_refresh_token(&self, model: refresh_token::Model) -> Result<(), DbErr> {
        refresh_token::Entity::insert(refresh_token::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// Rotates a live refresh token of this client, under a grant that is not revoked: marks it used,
    /// records its successor (hash and sealed token) and stores the successor, in one transaction.
    /// Returns the rotated token to exactly one caller, however many present it at the same time on any
    /// number of instances; `None` for every other caller. When `acceptable` refuses the token, nothing
    /// changes and its error is returned.
    pub async fn rotate_refresh_token<E: From<DbErr>>(
        &self,
        token_hash: &str,
        client_id: &str,
        successor_hash: &str,
        successor_sealed: &str,
        ttl: Duration,
        acceptable: impl FnOnce(&refresh_token::Model) -> Result<(), E>,
    ) -> Result<Option<refresh_token::Model>, E> {
        let at = now();
        let (_turn, txn) = self.begin_write().await?;
        let mut rows = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(at))
            .col_expr(refresh_token::Column::SuccessorHash, Expr::value(successor_hash))
            .col_expr(refresh_token::Column::SuccessorSealed, Expr::value(successor_sealed))
            .filter(refresh_token::Column::TokenHash.eq(token_hash))
            .filter(refresh_token::Column::ClientId.eq(client_id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .filter(refresh_token::Column::ExpiresAt.gt(at))
            .filter(Store::live_grant((refresh_token::Entity, refresh_token::Column::FamilyId)))
            .exec_with_returning(&txn)
            .await?;
        let Some(old) = rows.pop() else {
            txn.rollback().await?;
            return Ok(None);
        };
        if let Err(refused) = acceptable(&old) {
            txn.rollback().await?;
            return Err(refused);
        }
        let successor = refresh_token::Model {
            token_hash: successor_hash.to_owned(),
            family_id: old.family_id.clone(),
            client_id: old.client_id.clone(),
            user_id: old.user_id.clone(),
            scope: old.scope.clone(),
            resource: old.resource.clone(),
            issued_at: at,
            expires_at: at + ttl,
            used_at: None,
            revoked_at: None,
            successor_hash: None,
            successor_sealed: None,
        };
        refresh_token::Entity::insert(refresh_token::ActiveModel::from(successor)).exec_without_returning(&txn).await?;
        txn.commit().await?;
        Ok(Some(old))
    }

    pub async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<refresh_token::Model>, DbErr> {
        refresh_token::Entity::find_by_id(token_hash).one(&self.db).await
    }
}
