//! MCP: sessions any instance can serve (bound to the token's subject) and the notes the tools manage.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(McpSessions::Table)
                    .col(string(McpSessions::SessionId).primary_key())
                    .col(string_null(McpSessions::Subject))
                    .col(string_null(McpSessions::ClientId))
                    .col(text_null(McpSessions::State))
                    .col(big_integer(McpSessions::CreatedAt))
                    .col(big_integer(McpSessions::LastSeen))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mcp_sessions_last_seen")
                    .table(McpSessions::Table)
                    .col(McpSessions::LastSeen)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Notes::Table)
                    .col(string(Notes::Id).primary_key())
                    .col(string(Notes::UserId))
                    .col(string(Notes::Title))
                    .col(text(Notes::Body))
                    .col(big_integer(Notes::CreatedAt))
                    .col(big_integer(Notes::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Notes::Table, Notes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_notes_user_updated")
                    .table(Notes::Table)
                    .col(Notes::UserId)
                    .col(Notes::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Notes::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(McpSessions::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum McpSessions {
    Table,
    SessionId,
    /// The `sub` of the token that created the session; another subject presenting it gets 404.
    Subject,
    ClientId,
    /// rmcp's session state (the client's `initialize` parameters), so another instance can restore it.
    State,
    CreatedAt,
    LastSeen,
}

#[derive(DeriveIden)]
enum Notes {
    Table,
    Id,
    UserId,
    Title,
    Body,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
