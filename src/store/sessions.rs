use std::time::Duration;

use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter};

use super::{Store, login_session, user};
use crate::clock::now;
use crate::crypto::{random_token, sha256_hex};

impl Store {
    /// Starts a browser session and returns the raw session id for the cookie; only its hash is stored.
    pub async fn create_session(&self, user_id: &str, ttl: Duration) -> Result<String, DbErr> {
        let raw = random_token();
        let created_at = now();
        let model = login_session::Model {
            id_hash: sha256_hex(&raw),
            user_id: user_id.to_owned(),
            created_at,
            expires_at: created_at + ttl,
        };
        login_session::Entity::insert(login_session::ActiveModel::from(model)).exec_without_returning(&self.db).await?;
        Ok(raw)
    }

    /// The signed-in user behind a raw session id, if the session is live and the user is enabled.
    pub async fn session_user(&self, raw: &str) -> Result<Option<user::Model>, DbErr> {
        let Some(session) = login_session::Entity::find_by_id(sha256_hex(raw))
            .filter(login_session::Column::ExpiresAt.gt(now()))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        Ok(self.find_user(&session.user_id).await?.filter(|u| !u.disabled))
    }

    pub async fn delete_session(&self, raw: &str) -> Result<(), DbErr> {
        login_session::Entity::delete_by_id(sha256_hex(raw)).exec(&self.db).await?;
        Ok(())
    }
}
