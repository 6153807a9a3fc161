//! The audit log: security-relevant events with when, who, which client and from where. Never a secret.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(big_pk_auto(AuditEvents::Id))
                    .col(big_integer(AuditEvents::At))
                    .col(string(AuditEvents::Event))
                    .col(string_null(AuditEvents::UserId))
                    .col(string_null(AuditEvents::ClientId))
                    .col(string_null(AuditEvents::Ip))
                    .col(string_null(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_audit_events_at").table(AuditEvents::Table).col(AuditEvents::At).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditEvents::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Event,
    UserId,
    ClientId,
    Ip,
    Detail,
}
