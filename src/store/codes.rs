use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{Store, authorization_code};
use crate::crypto::now;

impl Store {
    pub async fn insert_code(&self, model: authorization_code::Model) -> Result<(), DbErr> {
        authorization_code::Entity::insert(authorization_code::ActiveModel::from(model))
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Marks an unused code of this client as used and returns it; `None` for every other caller.
    ///
    /// One statement, so among concurrent redemptions (on any number of instances) exactly one wins.
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
            .exec_with_returning(&self.db)
            .await?;
        Ok(rows.pop())
    }

    pub async fn find_code(
        &self,
        code_hash: &str,
    ) -> Result<Option<authorization_code::Model>, DbErr> {
        authorization_code::Entity::find_by_id(code_hash)
            .one(&self.db)
            .await
    }
}
