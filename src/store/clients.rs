use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, client};
use crate::crypto::now;

impl Store {
    pub async fn insert_client(&self, model: client::Model) -> Result<(), DbErr> {
        client::Entity::insert(client::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// A client that may be used now: registered, not disabled, not expired.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<client::Model>, DbErr> {
        let found =
            client::Entity::find_by_id(client_id).filter(client::Column::Disabled.eq(false)).one(&self.db).await?;
        Ok(found.filter(|c| c.expires_at.is_none_or(|t| t > now())))
    }

    pub async fn list_clients(&self) -> Result<Vec<client::Model>, DbErr> {
        client::Entity::find().order_by_asc(client::Column::CreatedAt).all(&self.db).await
    }

    /// Deletes a client; returns whether it existed.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, DbErr> {
        Ok(client::Entity::delete_by_id(client_id).exec(&self.db).await?.rows_affected == 1)
    }
}
