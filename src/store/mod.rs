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

use sea_orm::sqlx::sqlite::SqliteSynchronous;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr, TransactionTrait,
};
use sea_orm::{IsolationLevel, SqliteTransactionMode, TransactionOptions};

use crate::config::Config;
pub use clients::ClientUpdate;
pub use entities::{
    authorization_code, client, consent, grant, login_session, mcp_session, note, refresh_token, signing_key, user,
};
pub use purge::{PurgeAfter, Purged};

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
        // On every pooled SQLite connection, `synchronous=NORMAL`: with WAL it syncs at checkpoints instead of
        // at every commit (the database stays consistent after a crash; a power cut may lose the last
        // commits). Writers wait for the lock.
        options.map_sqlx_sqlite_opts(|o| {
            o.synchronous(SqliteSynchronous::Normal).foreign_keys(true).busy_timeout(Duration::from_secs(5))
        });
        let db = Database::connect(options).await?;
        if db.get_database_backend() == DatabaseBackend::Sqlite {
            // WAL lets readers proceed while one connection writes. The mode is stored in the file, so it is
            // set once here rather than on every connection: switching needs an exclusive lock that the busy
            // timeout does not wait for, so when several instances start at once it is retried.
            let mut attempts = 0;
            while let Err(e) = db.execute_unprepared("PRAGMA journal_mode=WAL").await {
                attempts += 1;
                if attempts >= 50 {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(Store { db })
    }

    /// Brings the schema up to date, safely when several instances start at once: on Postgres under a
    /// transaction-scoped advisory lock (READ COMMITTED, so a waiter sees what the first one applied),
    /// on SQLite inside one IMMEDIATE transaction, which holds the write lock from its first statement.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        let options = if self.is_postgres() {
            TransactionOptions { isolation_level: Some(IsolationLevel::ReadCommitted), ..Default::default() }
        } else {
            TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() }
        };
        let txn = self.db.begin_with_options(options).await?;
        if self.is_postgres() {
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7316514001)").await?;
        }
        // A database a newer instance already migrated (a rolling deploy) is left as it is.
        if missing_migrations(&txn).await? > 0 {
            Migrator::up(&txn, None).await?;
        }
        txn.commit().await
    }

    /// How many of this binary's migrations the database lacks. A database that is ahead (a newer
    /// instance already migrated it during a rolling deploy) counts as current.
    pub async fn pending_migrations(&self) -> Result<usize, DbErr> {
        missing_migrations(&self.db).await
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// How many of this binary's migrations are not recorded as applied. Versions the binary does not know
/// (a newer instance migrated) are ignored.
async fn missing_migrations<C: ConnectionTrait>(db: &C) -> Result<usize, DbErr> {
    let applied = migration_versions(db).await?;
    Ok(Migrator::migrations().iter().filter(|m| !applied.iter().any(|a| a == m.name())).count())
}

/// The migrations recorded as applied (none before the first migration created the table). The table is
/// looked up first: a failing query would abort an open Postgres transaction.
async fn migration_versions<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let exists = match backend {
        DatabaseBackend::Postgres => {
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_tables WHERE tablename = 'seaql_migrations' AND schemaname = current_schema()"
        }
        _ => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'",
    };
    let found = db.query_one_raw(sea_orm::Statement::from_string(backend, exists)).await?;
    if found.and_then(|r| r.try_get::<i64>("", "n").ok()).unwrap_or(0) == 0 {
        return Ok(vec![]);
    }
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await?;
    rows.iter().map(|r| r.try_get::<String>("", "version")).collect()
}
