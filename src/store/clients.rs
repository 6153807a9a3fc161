use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use super::{Store, authorization_code, client, consent, grant};
use crate::clock::{UnixTime, now};

/// The registered metadata a PUT (RFC 7592 §2.2) or an edit on the apps page replaces.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    pub name: String,
    pub redirect_uris: String,
    pub grant_types: String,
    pub scope: String,
    pub application_type: String,
    pub metadata: String,
    pub metadata_hash: Option<String>,
}

impl Store {
    pub async fn insert_client(&self, model: client::Model) -> Result<(), DbErr> {
        client::Entity::insert(client::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(())
    }

    /// Inserts or replaces the cached copy of a Client ID Metadata Document. Only rows that came from a
    /// metadata document are ever replaced (their `client_id` is the document's https URL). When the
    /// document now lists other redirect URIs, every consent given to the client is withdrawn in the same
    /// transaction: a remembered consent never sends codes to an address the person did not see.
    pub async fn upsert_metadata_document_client(&self, model: client::Model) -> Result<(), DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let previous = client::Entity::find_by_id(&model.client_id)
            .filter(client::Column::MetadataUrl.is_not_null())
            .one(&txn)
            .await?;
        match previous {
            Some(previous) => {
                let update = client::ActiveModel {
                    name: ActiveValue::Set(model.name.clone()),
                    redirect_uris: ActiveValue::Set(model.redirect_uris.clone()),
                    grant_types: ActiveValue::Set(model.grant_types.clone()),
                    scope: ActiveValue::Set(model.scope.clone()),
                    application_type: ActiveValue::Set(model.application_type.clone()),
                    metadata: ActiveValue::Set(model.metadata.clone()),
                    metadata_refresh_at: ActiveValue::Set(model.metadata_refresh_at),
                    ..Default::default()
                };
                client::Entity::update_many()
                    .set(update)
                    .filter(client::Column::ClientId.eq(&model.client_id))
                    .filter(client::Column::MetadataUrl.is_not_null())
                    .exec(&txn)
                    .await?;
                if previous.redirect_uris != model.redirect_uris {
                    Store::withdraw_consents_of_client(&txn, &model.client_id).await?;
                }
            }
            None => {
                let inserted = client::Entity::insert(client::ActiveModel::from(model))
                    .on_conflict_do_nothing()
                    .exec_without_returning(&txn)
                    .await;
                match inserted {
                    Ok(_) | Err(DbErr::RecordNotInserted) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        txn.commit().await
    }

    /// A client that may be used now: registered, not disabled, not expired.
    pub async fn find_client(&self, client_id: &str) -> Result<Option<client::Model>, DbErr> {
        let found =
            client::Entity::find_by_id(client_id).filter(client::Column::Disabled.eq(false)).one(&self.db).await?;
        Ok(found.filter(|c| c.expires_at.is_none_or(|t| t > now())))
    }

    /// A client whatever its state (for its owner, its registration access token and operators).
    pub async fn find_any_client(&self, client_id: &str) -> Result<Option<client::Model>, DbErr> {
        client::Entity::find_by_id(client_id).one(&self.db).await
    }

    pub async fn list_clients(&self) -> Result<Vec<client::Model>, DbErr> {
        client::Entity::find().order_by_asc(client::Column::CreatedAt).all(&self.db).await
    }

    pub async fn list_clients_of(&self, owner_user_id: &str) -> Result<Vec<client::Model>, DbErr> {
        client::Entity::find()
            .filter(client::Column::OwnerUserId.eq(owner_user_id))
            .order_by_asc(client::Column::CreatedAt)
            .all(&self.db)
            .await
    }

    /// A still-unused public client registered with exactly this metadata from this address since `since`:
    /// what a repeated registration gets back instead of a new row.
    pub async fn find_repeated_registration(
        &self,
        metadata_hash: &str,
        registered_from: &str,
        since: UnixTime,
    ) -> Result<Option<client::Model>, DbErr> {
        client::Entity::find()
            .filter(client::Column::MetadataHash.eq(metadata_hash))
            .filter(client::Column::RegisteredFrom.eq(registered_from))
            .filter(client::Column::CreatedAt.gte(since))
            .filter(client::Column::ExpiresAt.gt(now()))
            .filter(client::Column::SecretHash.is_null())
            .filter(client::Column::Disabled.eq(false))
            .order_by_desc(client::Column::CreatedAt)
            .one(&self.db)
            .await
    }

    /// The client obtained a token: it no longer expires as unused.
    pub async fn mark_client_used(&self, client_id: &str) -> Result<(), DbErr> {
        client::Entity::update_many()
            .col_expr(client::Column::ExpiresAt, Expr::value(Option::<i64>::None))
            .filter(client::Column::ClientId.eq(client_id))
            .filter(client::Column::ExpiresAt.is_not_null())
            .filter(client::Column::MetadataUrl.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Replaces a registered client's metadata (RFC 7592 §2.2, the apps page). When the redirect URIs change,
    /// every consent given to the client is withdrawn in the same transaction, so people are asked again
    /// before a code goes to the new addresses.
    pub async fn update_client(&self, client_id: &str, update: ClientUpdate) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let Some(previous) =
            client::Entity::find_by_id(client_id).filter(client::Column::MetadataUrl.is_null()).one(&txn).await?
        else {
            return Ok(false);
        };
        let redirects_changed = previous.redirect_uris != update.redirect_uris;
        let changes = client::ActiveModel {
            name: ActiveValue::Set(update.name),
            redirect_uris: ActiveValue::Set(update.redirect_uris),
            grant_types: ActiveValue::Set(update.grant_types),
            scope: ActiveValue::Set(update.scope),
            application_type: ActiveValue::Set(update.application_type),
            metadata: ActiveValue::Set(update.metadata),
            metadata_hash: ActiveValue::Set(update.metadata_hash),
            ..Default::default()
        };
        let updated = client::Entity::update_many()
            .set(changes)
            .filter(client::Column::ClientId.eq(client_id))
            .filter(client::Column::MetadataUrl.is_null())
            .exec(&txn)
            .await?;
        if redirects_changed {
            Store::withdraw_consents_of_client(&txn, client_id).await?;
        }
        txn.commit().await?;
        Ok(updated.rows_affected == 1)
    }

    pub async fn set_client_secret_hash(&self, client_id: &str, secret_hash: String) -> Result<bool, DbErr> {
        let updated = client::Entity::update_many()
            .col_expr(client::Column::SecretHash, Expr::value(secret_hash))
            .filter(client::Column::ClientId.eq(client_id))
            .filter(client::Column::SecretHash.is_not_null())
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// Replaces a client secret's argon2 hash by its SHA-256 digest once the secret verified; a no-op when
    /// the stored value changed meanwhile (a rotation, or another instance upgrading it first).
    pub async fn upgrade_client_secret_hash(&self, client_id: &str, old: &str, new: &str) -> Result<(), DbErr> {
        client::Entity::update_many()
            .col_expr(client::Column::SecretHash, Expr::value(new))
            .filter(client::Column::ClientId.eq(client_id))
            .filter(client::Column::SecretHash.eq(old))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Disables or enables a client. Disabling also revokes every grant and refresh token issued to it, so
    /// enabling it again does not bring old tokens back.
    pub async fn set_client_disabled(&self, client_id: &str, disabled: bool) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        let updated = client::Entity::update_many()
            .col_expr(client::Column::Disabled, Expr::value(disabled))
            .filter(client::Column::ClientId.eq(client_id))
            .exec(&txn)
            .await?;
        if disabled && updated.rows_affected == 1 {
            Store::revoke_grants_where(&txn, grant::Column::ClientId.eq(client_id)).await?;
        }
        self.commit_ending(txn).await?;
        Ok(updated.rows_affected == 1)
    }

    /// Withdraws every consent given to a client (its redirect URIs changed: people must look again).
    async fn withdraw_consents_of_client(txn: &impl ConnectionTrait, client_id: &str) -> Result<(), DbErr> {
        consent::Entity::update_many()
            .col_expr(consent::Column::RevokedAt, Expr::value(now()))
            .filter(consent::Column::ClientId.eq(client_id))
            .filter(consent::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        Ok(())
    }

    /// Answers a repeated registration: the client stops being manageable by any registration access
    /// token, so whoever registered first cannot later change a client others now use.
    pub async fn forget_registration_access_token(&self, client_id: &str) -> Result<(), DbErr> {
        client::Entity::update_many()
            .col_expr(client::Column::RegistrationAccessTokenHash, Expr::value(Option::<String>::None))
            .filter(client::Column::ClientId.eq(client_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn count_clients_of(&self, owner_user_id: &str) -> Result<u64, DbErr> {
        client::Entity::find().filter(client::Column::OwnerUserId.eq(owner_user_id)).count(&self.db).await
    }

    /// Deletes a client and everything issued to it: consents and codes go, grants and refresh tokens are
    /// revoked (so its access tokens fail at the guard at once). Returns whether it existed.
    pub async fn delete_client(&self, client_id: &str) -> Result<bool, DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        Store::revoke_grants_where(&txn, grant::Column::ClientId.eq(client_id)).await?;
        consent::Entity::delete_many().filter(consent::Column::ClientId.eq(client_id)).exec(&txn).await?;
        authorization_code::Entity::delete_many()
            .filter(authorization_code::Column::ClientId.eq(client_id))
            .exec(&txn)
            .await?;
        let deleted = client::Entity::delete_by_id(client_id).exec(&txn).await?.rows_affected == 1;
        self.commit_ending(txn).await?;
        Ok(deleted)
    }
}
