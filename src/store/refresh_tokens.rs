use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{Store, refresh_token};
use crate::crypto::now;

impl Store {
    pub async fn insert_refresh_token(&self, model: refresh_token::Model) -> Result<(), DbErr> {
        refresh_token::Entity::insert(refresh_token::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// Marks a live refresh token of this client, under a grant that is not revoked, as used and returns
    /// it; `None` for every other caller. One statement, so a token rotates exactly once however many
    /// callers present it at the same time.
    pub async fn use_refresh_token(
        &self,
        token_hash: &str,
        client_id: &str,
    ) -> Result<Option<refresh_token::Model>, DbErr> {
        let at = now();
        let mut rows = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(at))
            .filter(refresh_token::Column::TokenHash.eq(token_hash))
            .filter(refresh_token::Column::ClientId.eq(client_id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .filter(refresh_token::Column::ExpiresAt.gt(at))
            .filter(refresh_token::Column::FamilyId.in_subquery(Store::active_grant_ids()))
            .exec_with_returning(&self.db)
            .await?;
        Ok(rows.pop())
    }

    pub async fn find_refresh_token(&self, token_hash: &str) -> Result<Option<refresh_token::Model>, DbErr> {
        refresh_token::Entity::find_by_id(token_hash).one(&self.db).await
    }
}
