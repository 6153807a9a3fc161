//! Tasks (the `io.modelcontextprotocol/tasks` extension): a tool call a client polls instead of waiting for.
//! Kept in the database so any instance answers for any task and a finished task's result survives restarts.
//! What the call asked and answered is sealed (`sealed`); status, owner and times are plain for the queries.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(string(Tasks::Id).primary_key())
                    .col(string(Tasks::OwnerSub))
                    .col(string(Tasks::OwnerClient))
                    .col(string(Tasks::Tool))
                    .col(string(Tasks::Status))
                    .col(text(Tasks::Sealed))
                    .col(big_integer(Tasks::Round))
                    .col(string_null(Tasks::Instance))
                    .col(big_integer(Tasks::HeartbeatAt))
                    .col(boolean(Tasks::CancelRequested))
                    .col(big_integer(Tasks::CreatedAt))
                    .col(big_integer(Tasks::UpdatedAt))
                    .col(big_integer(Tasks::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_owner_status")
                    .table(Tasks::Table)
                    .col(Tasks::OwnerSub)
                    .col(Tasks::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_tasks_expires_at").table(Tasks::Table).col(Tasks::ExpiresAt).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Tasks::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    OwnerSub,
    OwnerClient,
    Tool,
    Status,
    Sealed,
    Round,
    Instance,
    HeartbeatAt,
    CancelRequested,
    CreatedAt,
    UpdatedAt,
    ExpiresAt,
}
