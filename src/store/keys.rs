use std::time::Duration;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, DbErr, EntityTrait, QueryFilter, QueryOrder, SqlErr};

use super::{Store, signing_key};
use crate::clock::now;

/// A signing key's private key as stored, and sealed under a new secrets key.
pub struct ResealedKey {
    pub kid: String,
    pub old: String,
    pub new: String,
}

/// An upstream's environment and headers as stored, and sealed under a new secrets key.
pub struct ResealedUpstream {
    pub name: String,
    pub old_env: String,
    pub old_headers: String,
    pub old_oauth: String,
    pub env: String,
    pub headers: String,
    pub oauth: String,
}

/// A person's upstream tokens, or the gateway's client secret at an upstream, sealed again under a new key.
#[derive(Debug, Clone)]
pub enum ResealedAccount {
    Tokens {
        user_id: String,
        upstream: String,
        old: String,
        new: String,
    },
    ClientSecret {
        upstream: String,
        old: String,
        new: String,
    },
    /// Our client secret at an identity provider people sign in through.
    ProviderSecret {
        name: String,
        old: String,
        new: String,
    },
}

impl Store {
    /// Keys that still verify tokens: not retired, or retired less than `keep` ago. Newest first.
    pub async fn verification_keys(&self, keep: Duration) -> Result<Vec<signing_key::Model>, DbErr> {
        signing_key::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_key::Column::RetiredAt.is_null())
                    .add(signing_key::Column::RetiredAt.gt(now() - keep)),
            )
            .order_by_desc(signing_key::Column::CreatedAt)
            .order_by_desc(signing_key::Column::Kid)
            .all(&self.db)
            .await
    }

    pub async fn all_keys(&self) -> Result<Vec<signing_key::Model>, DbErr> {
        signing_key::Entity::find().order_by_desc(signing_key::Column::CreatedAt).all(&self.db).await
    }

    /// Makes `new_key` the signing key and retires the others (they keep verifying until their tokens expire).
    pub async fn rotate_in_key(&self, new_key: signing_key::Model) -> Result<(), DbErr> {
        let (_turn, txn) = self.begin_write().await?;
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::RetiredAt, Expr::value(now()))
            .filter(signing_key::Column::RetiredAt.is_null())
            .exec(&txn)
            .await?;
        signing_key::Entity::insert(signing_key::ActiveModel::from(new_key)).exec_without_returning(&txn).await?;
        txn.commit().await
    }

    /// Inserts the first key unless some instance already did; returns whether this one was inserted.
    /// A unique index allows one active key per algorithm, so among instances starting together exactly
    /// one insert wins and the others change nothing.
    pub async fn insert_first_key(&self, key: signing_key::Model) -> Result<bool, DbErr> {
        match signing_key::Entity::insert(signing_key::ActiveModel::from(key)).exec_without_returning(&self.db).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces a key's stored private key, if it is still `old` (sealing a plaintext key on start, or a
    /// change of the secrets key); `Ok(false)` when another process changed it first.
    pub async fn replace_private_key(&self, kid: &str, old: &str, new: &str) -> Result<bool, DbErr> {
        let done = signing_key::Entity::update_many()
            .col_expr(signing_key::Column::PrivatePem, Expr::value(new))
            .filter(signing_key::Column::Kid.eq(kid))
            .filter(signing_key::Column::PrivatePem.eq(old))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Replaces sealed values all in one transaction, each only if it is still what was read (a change of
    /// the secrets key). `Ok(false)`, changing nothing, when any was changed, added or removed meanwhile.
    pub async fn replace_sealed(
        &self,
        keys: Vec<ResealedKey>,
        upstreams: Vec<ResealedUpstream>,
        accounts: Vec<ResealedAccount>,
    ) -> Result<bool, DbErr> {
        use super::{identity_provider, upstream, upstream_account, upstream_client, upstream_flow};
        use sea_orm::PaginatorTrait;
        let (_turn, txn) = self.begin_write().await?;
        // A key, an upstream or an account added since they were read would stay sealed with the old key.
        let (key_rows, upstream_rows) =
            (signing_key::Entity::find().count(&txn).await?, upstream::Entity::find().count(&txn).await?);
        let account_rows = upstream_account::Entity::find().count(&txn).await?
            + upstream_client::Entity::find()
                .filter(upstream_client::Column::ClientSecretSealed.is_not_null())
                .count(&txn)
                .await?;
        if key_rows != keys.len() as u64
            || upstream_rows != upstreams.len() as u64
            || account_rows != accounts.len() as u64
        {
            return Ok(false);
        }
        // Sign-ins at upstreams under way (ten minutes at most) are started again rather than re-sealed.
        upstream_flow::Entity::delete_many().exec(&txn).await?;
        for account in accounts {
            let done = match account {
                ResealedAccount::Tokens { user_id, upstream, old, new } => {
                    upstream_account::Entity::update_many()
                        .col_expr(upstream_account::Column::CredentialsSealed, Expr::value(new))
                        .filter(upstream_account::Column::UserId.eq(user_id))
                        .filter(upstream_account::Column::Upstream.eq(upstream))
                        .filter(upstream_account::Column::CredentialsSealed.eq(old))
                        .exec(&txn)
                        .await?
                }
                ResealedAccount::ProviderSecret { name, old, new } => {
                    identity_provider::Entity::update_many()
                        .col_expr(identity_provider::Column::ClientSecretSealed, Expr::value(new))
                        .filter(identity_provider::Column::Name.eq(name))
                        .filter(identity_provider::Column::ClientSecretSealed.eq(old))
                        .exec(&txn)
                        .await?
                }
                ResealedAccount::ClientSecret { upstream, old, new } => {
                    upstream_client::Entity::update_many()
                        .col_expr(upstream_client::Column::ClientSecretSealed, Expr::value(new))
                        .filter(upstream_client::Column::Upstream.eq(upstream))
                        .filter(upstream_client::Column::ClientSecretSealed.eq(old))
                        .exec(&txn)
                        .await?
                }
            };
            if done.rows_affected != 1 {
                return Ok(false);
            }
        }
        for ResealedKey { kid, old, new } in keys {
            let done = signing_key::Entity::update_many()
                .col_expr(signing_key::Column::PrivatePem, Expr::value(new))
                .filter(signing_key::Column::Kid.eq(kid))
                .filter(signing_key::Column::PrivatePem.eq(old))
                .exec(&txn)
                .await?;
            if done.rows_affected != 1 {
                return Ok(false);
            }
        }
        for ResealedUpstream { name, old_env, old_headers, old_oauth, env, headers, oauth } in upstreams {
            let done = upstream::Entity::update_many()
                .col_expr(upstream::Column::Env, Expr::value(env))
                .col_expr(upstream::Column::Headers, Expr::value(headers))
                .col_expr(upstream::Column::Oauth, Expr::value(oauth))
                .filter(upstream::Column::Name.eq(name))
                .filter(upstream::Column::Env.eq(old_env))
                .filter(upstream::Column::Headers.eq(old_headers))
                .filter(upstream::Column::Oauth.eq(old_oauth))
                .exec(&txn)
                .await?;
            if done.rows_affected != 1 {
                return Ok(false);
            }
        }
        txn.commit().await?;
        Ok(true)
    }
}
