//! At most one active (not retired) signing key per algorithm, enforced by the database: instances that
//! start together on an empty database each try to insert the first key, and exactly one succeeds.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX idx_signing_keys_one_active ON signing_keys (alg) WHERE retired_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP INDEX idx_signing_keys_one_active").await?;
        Ok(())
    }
}
