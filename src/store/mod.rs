//! Storage: the sea-orm entities and every query the domain needs. Nothing outside this module writes SQL.
//!
//! One code path serves SQLite and Postgres. State changes that must happen once (redeeming a code,
//! rotating a refresh token) are a single conditional `UPDATE … RETURNING`, so exactly one caller wins
//! even when several instances race on the same row.
pub mod entities;

mod audit;
mod clients;
mod codes;
mod consents;
mod grants;
mod identities;
mod keys;
mod mcp_sessions;
mod notes;
mod notify;
mod policy;
mod purge;
mod refresh_tokens;
mod sessions;
mod tasks;
mod upstream_accounts;
mod upstreams;
mod users;

use std::ffi::c_int;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteSynchronous;
use tokio::sync::OwnedMutexGuard;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr,
    TransactionTrait,
};
use sea_orm::{IsolationLevel, SqliteTransactionMode, TransactionOptions};

use crate::config::Database as DatabaseConfig;
pub use audit::{AuditEntry, AuditFilter, AuditKind, OwnedAuditEntry};
pub use clients::ClientUpdate;
pub use entities::{
    audit_event, authorization_code, client, consent, grant, identity, identity_provider, login_session, mcp_session,
    note, policy_rule, refresh_token, signing_key, task, upstream, upstream_account, upstream_client, upstream_flow,
    upstream_offer, upstream_status, upstream_tool, used_assertion, user, user_group,
};
pub use grants::{ENDINGS_CHANNEL, ENTERPRISE_GRANT_PREFIX, GrantHolder, MACHINE_GRANT_USER};
pub use keys::{ResealedAccount, ResealedKey, ResealedUpstream};
pub use purge::{PurgeAfter, Purged};
pub use tasks::{NewTask, TaskChange};
pub mod task_status {
    pub use super::tasks::{CANCELLED, COMPLETED, FAILED, INPUT_REQUIRED, WORKING};
}
pub use upstreams::{UPSTREAMS_CHANNEL, UpstreamRow};

/// The database handle shared by every request.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite only: write transactions of this process take turns (see [`Store::begin_write`]).
    writing: Option<Arc<tokio::sync::Mutex<()>>>,
    endings: Arc<Endings>,
}

/// How many grant revocations and session ends this instance made or heard of: what was read before the
/// latest one may be stale. Open notification streams wait on the channel to check their own grant.
#[derive(Debug)]
struct Endings {
    count: AtomicU64,
    heard: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// Connects with the configured URL, pool size and timeouts.
    pub async fn open(config: &DatabaseConfig) -> Result<Store, DbErr> {
        Store::connect(&config.url, config.max_connections, config.timeout).await
    }

    /// How many endings this instance has made or heard of so far (see [`Store::endings`]).
    pub fn endings_so_far(&self) -> u64 {
        self.endings.count.load(Ordering::Acquire)
    }

    /// Changes each time a grant is revoked or a session ends, on this instance or (on Postgres, as
    /// announced) any other.
    pub fn endings(&self) -> tokio::sync::watch::Receiver<u64> {
        self.endings.heard.subscribe()
    }

    /// Something ended (here, or announced by another instance, or possibly missed while a listener was
    /// away): nothing read before is to be trusted.
    pub fn ended(&self) {
        let count = self.endings.count.fetch_add(1, Ordering::AcqRel) + 1;
        self.endings.heard.send_replace(count);
    }

    pub async fn connect(url: &str, max_connections: u32, timeout: Duration) -> Result<Store, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false).max_connections(max_connections).connect_timeout(timeout).acquire_timeout(timeout);
        // On every pooled SQLite connection, `synchronous=NORMAL`: with WAL it syncs at checkpoints instead of
        // at every commit (the database stays consistent after a crash; a power cut may lose the last
        // commits). Writers wait for the lock: SQLite's busy timeout while connecting, then `wait_for_lock`.
        options.map_sqlx_sqlite_opts(|o| {
            o.synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(15))
                .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
        });
        options.map_sqlx_sqlite_pool_opts(|o| o.after_connect(|conn, _| Box::pin(configure_sqlite(conn))));
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
        let writing = (db.get_database_backend() == DatabaseBackend::Sqlite).then(Arc::default);
        let endings = Arc::new(Endings { count: AtomicU64::new(0), heard: tokio::sync::watch::Sender::new(0) });
        Ok(Store { db, writing, endings })
    }

    /// Begins a transaction that writes. SQLite has one write lock per database; when this process's
    /// connections race for it, the losers sleep in the busy handler and wake to lose again (concurrent
    /// refresh-token rotations ran far slower; bench/RESULTS.md). So on SQLite the transactions of one process
    /// queue here first, and only other processes meet the busy handler. Keep the guard until the transaction
    /// ends. Postgres locks rows, not the database, so there it is a plain `begin`.
    ///
    /// On SQLite the transaction is IMMEDIATE: it takes the write lock at `BEGIN`, waiting in the busy handler
    /// for another process (an operator command beside the server) to finish. A deferred one that reads first
    /// would have to upgrade its read to a write, and SQLite refuses that at once, without waiting, while
    /// another connection writes (`database is locked` after a few milliseconds, seen in CI).
    async fn begin_write(&self) -> Result<(Option<OwnedMutexGuard<()>>, DatabaseTransaction), DbErr> {
        match &self.writing {
            Some(lock) => {
                let turn = lock.clone().lock_owned().await;
                let options = TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                };
                Ok((Some(turn), self.db.begin_with_options(options).await?))
            }
            None => Ok((None, self.db.begin().await?)),
        }
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

/// Two settings sqlx does not expose, on every SQLite connection.
/// - The query planner stability guarantee. Without it, a statement whose plan looked at a bound value —
///   every `LIMIT ?` sea-orm writes for `.one()` — is marked expired when sqlx clears its bindings, and
///   SQLite compiles it again on every execution (a noticeable part of a `/mcp` request's CPU). Plans
///   here do not depend on values anyway: the database keeps no statistics.
/// - A busy handler that waits for another connection's write lock in short steps (see [`wait_for_lock`]).
async fn configure_sqlite(conn: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    use libsqlite3_sys::{SQLITE_DBCONFIG_ENABLE_QPSG, SQLITE_OK, sqlite3_busy_handler, sqlite3_db_config};
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: the handle is locked for these calls and stays open. ENABLE_QPSG takes (int, int*) and allows a
    // null int*. The busy handler is a plain function that ignores its (null) argument.
    let (qpsg, busy) = unsafe {
        (
            sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_QPSG, 1, std::ptr::null_mut::<c_int>()),
            sqlite3_busy_handler(db, Some(wait_for_lock), std::ptr::null_mut()),
        )
    };
    if qpsg == SQLITE_OK && busy == SQLITE_OK {
        Ok(())
    } else {
        Err(sea_orm::sqlx::Error::Configuration(format!("configuring SQLite failed ({qpsg}, {busy})").into()))
    }
}

/// Bytes of SQLite write-ahead log kept on disk once a checkpoint lets it start over. The log restarts only
/// when no reader still uses it, so under overlapping reads and writes it grows until the load pauses. When it
/// restarts it is cut back to this size instead of keeping its peak on disk for good.
const JOURNAL_SIZE_LIMIT: u64 = 16 * 1024 * 1024;

/// How long a connection waits for the write lock: about 15 s in all. (5 s was seen too short for an operator
/// command beside a server on a loaded 2-core machine: `database is locked` from `upstream enable`.)
const LOCK_WAIT_ATTEMPTS: c_int = 9_375;

/// SQLite's busy handler: called with the number of earlier calls for this lock; nonzero means try again.
/// It sleeps 100 µs, doubling up to 1.6 ms. SQLite's own busy timeout sleeps 1, 2, 5 … 100 ms, so under
/// concurrent writes (refresh-token rotation, say) a waiter slept long after the lock was free. It runs on
/// sqlx's per-connection worker thread, never on tokio's.
unsafe extern "C" fn wait_for_lock(_: *mut std::ffi::c_void, attempts: c_int) -> c_int {
    if attempts >= LOCK_WAIT_ATTEMPTS {
        return 0;
    }
    std::thread::sleep(Duration::from_micros(100 << attempts.clamp(0, 4)));
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_sqlite_connection_gets_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("settings.db").display());
        let store = Store::connect(&url, 2, Duration::from_secs(5)).await.unwrap();
        let pragma = |name: &str| {
            let statement = sea_orm::Statement::from_string(DatabaseBackend::Sqlite, format!("PRAGMA {name}"));
            let db = store.db.clone();
            async move { db.query_one_raw(statement).await.unwrap().expect("a pragma row") }
        };
        // The pool hands out its connections in turn: ask often enough to meet each of them.
        for _ in 0..4 {
            assert_eq!(pragma("synchronous").await.try_get_by_index::<i64>(0).unwrap(), 1); // NORMAL
            let limit = pragma("journal_size_limit").await.try_get_by_index::<i64>(0).unwrap();
            assert_eq!(limit as u64, JOURNAL_SIZE_LIMIT);
        }
    }

    /// A transaction that reads before it writes waits for another process's write instead of failing at
    /// once (it holds the write lock from `BEGIN`).
    #[tokio::test]
    async fn a_transaction_that_reads_first_waits_for_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("two.db").display());
        // Two pools on one file, as a server and an operator command are.
        let server = Store::connect(&url, 2, Duration::from_secs(5)).await.unwrap();
        let command = Store::connect(&url, 2, Duration::from_secs(5)).await.unwrap();
        server.db.execute_unprepared("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)").await.unwrap();
        let (_turn, writing) = server.begin_write().await.unwrap();
        writing.execute_unprepared("INSERT INTO t VALUES (2)").await.unwrap();
        let waiting = tokio::spawn(async move {
            let (_turn, txn) = command.begin_write().await?;
            let read = sea_orm::Statement::from_string(DatabaseBackend::Sqlite, "SELECT COUNT(*) FROM t".to_owned());
            let count: i64 = txn.query_one_raw(read).await?.expect("a row").try_get_by_index(0)?;
            txn.execute_unprepared(&format!("INSERT INTO t VALUES ({})", count + 10)).await?;
            txn.commit().await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        writing.commit().await.unwrap();
        waiting.await.unwrap().expect("the second writer waited for the first");
        let rows = sea_orm::Statement::from_string(DatabaseBackend::Sqlite, "SELECT MAX(v) FROM t".to_owned());
        let max: i64 = server.db.query_one_raw(rows).await.unwrap().unwrap().try_get_by_index(0).unwrap();
        assert_eq!(max, 12, "it read what the first writer committed");
    }
}
