//! Counting one person's live MCP sessions (the per-person cap) reads `mcp_sessions` by subject.
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_mcp_sessions_subject")
                    .table(McpSessions::Table)
                    .col(McpSessions::Subject)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_mcp_sessions_subject").table(McpSessions::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum McpSessions {
    Table,
    Subject,
}
