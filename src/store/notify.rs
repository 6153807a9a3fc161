use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement};

use super::Store;

impl Store {
    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == DatabaseBackend::Postgres
    }

    /// Postgres `NOTIFY` on `channel`: every instance listening there receives `payload`.
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), DbErr> {
        self.db
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [channel.into(), payload.into()],
            ))
            .await?;
        Ok(())
    }

    /// A dedicated Postgres connection listening on `channel`.
    pub async fn listen(&self, channel: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
        let mut listener = PgListener::connect_with(self.db.get_postgres_connection_pool()).await?;
        listener.listen(channel).await?;
        Ok(listener)
    }
}
