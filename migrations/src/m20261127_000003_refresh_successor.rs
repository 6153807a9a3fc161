//! The successor of a rotated refresh token, so a caller that lost a harmless race (a retry, two tabs)
//! can be given the same successor within a short grace window. The successor is stored as its hash and
//! sealed under a key derived from the rotated token, which is itself stored only as a hash.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshTokens::Table)
                    .add_column(string_null(RefreshTokens::SuccessorHash))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RefreshTokens::Table)
                    .add_column(text_null(RefreshTokens::SuccessorSealed))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(RefreshTokens::Table).drop_column(RefreshTokens::SuccessorSealed).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(RefreshTokens::Table).drop_column(RefreshTokens::SuccessorHash).to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    SuccessorHash,
    SuccessorSealed,
}
