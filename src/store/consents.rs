use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{Store, consent};
use crate::crypto::now;

impl Store {
    /// Records (or renews) the user's consent for this client and resource.
    pub async fn grant_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
    ) -> Result<(), DbErr> {
        let model = consent::Model {
            user_id: user_id.to_owned(),
            client_id: client_id.to_owned(),
            resource: resource.to_owned(),
            scope: scope.to_owned(),
            granted_at: now(),
            revoked_at: None,
        };
        consent::Entity::insert(consent::ActiveModel::from(model))
            .on_conflict(
                OnConflict::columns([consent::Column::UserId, consent::Column::ClientId, consent::Column::Resource])
                    .update_columns([consent::Column::Scope, consent::Column::GrantedAt, consent::Column::RevokedAt])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    pub async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<consent::Model>, DbErr> {
        consent::Entity::find_by_id((user_id.to_owned(), client_id.to_owned(), resource.to_owned()))
            .filter(consent::Column::RevokedAt.is_null())
            .one(&self.db)
            .await
    }
}
