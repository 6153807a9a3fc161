//! Postgres `LISTEN`/`NOTIFY` between instances, the primitives (who listens, and what they do with what
//! they hear, is the MCP face's: `mcp::events`). SQLite has no such thing: there, what one process does is
//! known to that process at once, and to others only through the database.
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

use super::Store;

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

    /// A dedicated Postgres connection listening on `channels` (Postgres only).
    pub async fn listen(&self, channels: &[&str]) -> Result<PgListener, sea_orm::sqlx::Error> {
        let mut listener = PgListener::connect_with(self.db.get_postgres_connection_pool()).await?;
        listener.listen_all(channels.iter().copied()).await?;
        Ok(listener)
    }
}
