//! Postgres `LISTEN`/`NOTIFY` between instances. SQLite has no such thing: there, what one process does
//! is known to that process at once, and to others only through the database.
use std::time::Duration;

use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

use super::Store;
use super::grants::ENDINGS_CHANNEL;

impl Store {
    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DatabaseBackend::Postgres
    }

    /// Postgres `NOTIFY` on `channel`: every instance listening there receives `payload`.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), DbErr> {
        Store::notify_in(&self.db, channel, payload).await
    }

    /// [`Store::notify`] inside a transaction: delivered when, and only if, it commits.
    pub(super) async fn notify_in(db: &impl ConnectionTrait, channel: &str, payload: &str) -> Result<(), DbErr> {
        db.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [channel.into(), payload.into()],
        ))
        .await?;
        Ok(())
    }

    /// On Postgres, follows what the instances announce, for as long as the process runs, on one dedicated
    /// connection: revoked grants and ended sessions (this instance then stops trusting what it remembers
    /// of either) and the payloads sent on `channel`, handed to `deliver`. After a lost connection it
    /// reconnects and forgets as well, since an announcement may have been missed meanwhile.
    pub fn follow_announcements(
        &self,
        channel: &'static str,
        deliver: impl Fn(&str) + Send + 'static,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.is_postgres() {
            return None;
        }
        let store = self.clone();
        Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match store.listen(&[channel, ENDINGS_CHANNEL]).await {
                    Ok(mut listener) => {
                        backoff = Duration::from_millis(200);
                        store.trusted.forget();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(n)) if n.channel() == ENDINGS_CHANNEL => store.trusted.forget(),
                                Ok(Some(n)) => deliver(n.payload()),
                                // The connection was lost and is back: what was said meanwhile is lost.
                                Ok(None) => store.trusted.forget(),
                                Err(e) => {
                                    tracing::warn!(error = %e, "the listener for other instances' announcements failed");
                                    break;
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "listening for other instances' announcements failed"),
                }
                store.trusted.forget();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }))
    }

    async fn listen(&self, channels: &[&str]) -> Result<PgListener, sea_orm::sqlx::Error> {
        let mut listener = PgListener::connect_with(self.db.get_postgres_connection_pool()).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(listener)
    }
}
