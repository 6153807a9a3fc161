//! `private_key_jwt` client assertions (RFC 7523 §3): each `jti` is accepted once while the assertion
//! lives, on every instance, so a captured assertion cannot be replayed.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UsedAssertions::Table)
                    .col(string(UsedAssertions::JtiHash).primary_key())
                    .col(big_integer(UsedAssertions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_used_assertions_expires_at")
                    .table(UsedAssertions::Table)
                    .col(UsedAssertions::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UsedAssertions::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum UsedAssertions {
    Table,
    JtiHash,
    ExpiresAt,
}
