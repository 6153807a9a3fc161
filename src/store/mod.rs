//! Storage: the sea-orm entities and every query the domain needs. Nothing outside this module writes SQL.
//!
//! One code path serves SQLite and Postgres. State changes that must happen once (redeeming a code,
//! rotating a refresh token) are a single conditional `UPDATE … RETURNING`, so exactly one caller wins
//! even when several instances race on the same row.
pub mod entities;

mod clients;
mod codes;
mod consents;
mod grants;
mod keys;
mod mcp_sessions;
mod notes;
mod notify;
mod purge;
mod refresh_tokens;
mod sessions;
mod users;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait,
};

use crate::config::Config;
pub use entities::{
    authorization_code, client, consent, grant, login_session, mcp_session, note, refresh_token, signing_key, user,
};
pub use purge::Purged;

/// The database handle shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    /// Connects with the configured URL, pool size and timeouts.
    pub async fn open(config: &Config) -> Result<Store, DbErr> {
        Store::connect(&config.database_url, config.database_max_connections, config.database_timeout).await
    }

    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Store, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).max_connections(max_connections).connect_timeout(timeout).acquire_timeout(timeout);
        let db = Database::connect(options).await?;
        if db.get_database_backend() == DatabaseBackend::Sqlite {
            // WAL lets readers proceed while one connection writes; foreign keys are off by default in SQLite.
            db.execute_unprepared("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;").await?;
        }
        Ok(Store { db })
    }

    /// Brings the schema up to date. On Postgres the migrations run under a transaction-scoped advisory
    /// lock, so instances that start together on an empty database do not collide.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            let txn = self.db.begin().await?;
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7316514001)").await?;
            Migrator::up(&txn, None).await?;
            txn.commit().await
        } else {
            // SQLite has no advisory locks: when another process is migrating the same file, wait until
            // it is done (its migrations then count as applied here too).
            let mut attempts = 0;
            loop {
                match Migrator::up(&self.db, None).await {
                    Ok(()) => return Ok(()),
                    Err(_) if attempts < 75 => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Whether every migration has been applied (for readiness checks and `migrate --check`).
    pub async fn pending_migrations(&self) -> Result<usize, DbErr> {
        Ok(Migrator::get_pending_migrations(&self.db).await?.len())
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}
