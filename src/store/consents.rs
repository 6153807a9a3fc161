use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Store, client, consent, grant};
use crate::clock::now;

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

    /// The person's live consents with the client each was given to (newest first).
    pub async fn connections_of(&self, user_id: &str) -> Result<Vec<(consent::Model, Option<client::Model>)>, DbErr> {
        let consents = consent::Entity::find()
            .filter(consent::Column::UserId.eq(user_id))
            .filter(consent::Column::RevokedAt.is_null())
            .order_by_desc(consent::Column::GrantedAt)
            .all(&self.db)
            .await?;
        let clients = client::Entity::find()
            .filter(client::Column::ClientId.is_in(consents.iter().map(|c| c.client_id.clone())))
            .all(&self.db)
            .await?;
        Ok(consents
            .into_iter()
            .map(|c| {
                let client = clients.iter().find(|k| k.client_id == c.client_id).cloned();
                (c, client)
            })
            .collect())
    }

    /// Withdraws everything a person gave a client: the consent (for every resource) is revoked, and so
    /// are every grant and refresh token issued under it, so its access tokens fail at the guard at
    /// once. Returns whether there was a live consent.
    pub async fn revoke_connection(&self, user_id: &str, client_id: &str) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let revoked = consent::Entity::update_many()
            .col_expr(consent::Column::RevokedAt, Expr::value(now()))
            .filter(consent::Column::UserId.eq(user_id))
            .filter(consent::Column::ClientId.eq(client_id))
            .filter(consent::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        Store::revoke_grants_where(
            &txn,
            Condition::all().add(grant::Column::UserId.eq(user_id)).add(grant::Column::ClientId.eq(client_id)),
        )
        .await?;
        self.commit_ending(txn).await?;
        Ok(revoked.rows_affected > 0)
    }
}
