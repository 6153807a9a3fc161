//! What registration hygiene and Client ID Metadata Documents need on `clients`: a hash of the registered
//! metadata and the address it came from (a repeated registration returns the existing client), and when a
//! cached metadata document must be fetched again.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            string_null(Clients::MetadataHash),
            string_null(Clients::RegisteredFrom),
            big_integer_null(Clients::MetadataRefreshAt),
        ] {
            manager.alter_table(Table::alter().table(Clients::Table).add_column(column).to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_clients_metadata_hash")
                    .table(Clients::Table)
                    .col(Clients::MetadataHash)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_clients_owner").table(Clients::Table).col(Clients::OwnerUserId).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_clients_owner").table(Clients::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_clients_metadata_hash").table(Clients::Table).to_owned()).await?;
        for column in [Clients::MetadataRefreshAt, Clients::RegisteredFrom, Clients::MetadataHash] {
            manager.alter_table(Table::alter().table(Clients::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    MetadataHash,
    RegisteredFrom,
    MetadataRefreshAt,
    OwnerUserId,
}
