//! Each person's own account at an upstream: how an upstream is signed in to (`auth`, and the operator's
//! client settings, sealed; or the environment variables each person gives a program, `env_per_user`), the gateway's registration there (one per upstream, shared by
//! every instance), each person's tokens (sealed, refreshed by one instance at a time), the authorization
//! flows under way, and the last list of what such an upstream offers (it can only be listed with someone's
//! token, so every instance and restart starts from the last one seen).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Upstreams::Table).add_column(string(Upstreams::Auth).default("none")).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Upstreams::Table).add_column(text(Upstreams::Oauth).default("{}")).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Upstreams::Table).add_column(text(Upstreams::EnvPerUser).default("[]")).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamClients::Table)
                    .col(string(UpstreamClients::Upstream).primary_key())
                    .col(text(UpstreamClients::Url))
                    .col(text(UpstreamClients::Metadata))
                    .col(text(UpstreamClients::Resource))
                    .col(text(UpstreamClients::ClientId))
                    .col(text_null(UpstreamClients::ClientSecretSealed))
                    .col(big_integer(UpstreamClients::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamAccounts::Table)
                    .col(string(UpstreamAccounts::UserId))
                    .col(string(UpstreamAccounts::Upstream))
                    .col(text(UpstreamAccounts::CredentialsSealed))
                    .col(big_integer_null(UpstreamAccounts::ExpiresAt))
                    .col(big_integer(UpstreamAccounts::Version))
                    .col(big_integer_null(UpstreamAccounts::RefreshingUntil))
                    .col(string_null(UpstreamAccounts::RefreshClaim))
                    .col(text_null(UpstreamAccounts::Problem))
                    .col(big_integer(UpstreamAccounts::CreatedAt))
                    .col(big_integer(UpstreamAccounts::UpdatedAt))
                    .primary_key(Index::create().col(UpstreamAccounts::UserId).col(UpstreamAccounts::Upstream))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamFlows::Table)
                    .col(string(UpstreamFlows::StateHash).primary_key())
                    .col(string(UpstreamFlows::UserId))
                    .col(string(UpstreamFlows::Upstream))
                    .col(text(UpstreamFlows::FlowSealed))
                    .col(big_integer(UpstreamFlows::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamOffers::Table)
                    .col(string(UpstreamOffers::Upstream).primary_key())
                    .col(text(UpstreamOffers::Offer))
                    .col(big_integer(UpstreamOffers::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(UpstreamOffers::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UpstreamFlows::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UpstreamAccounts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UpstreamClients::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Upstreams::Table).drop_column(Upstreams::EnvPerUser).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Upstreams::Table).drop_column(Upstreams::Oauth).to_owned()).await?;
        manager.alter_table(Table::alter().table(Upstreams::Table).drop_column(Upstreams::Auth).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Upstreams {
    Table,
    Auth,
    Oauth,
    EnvPerUser,
}

#[derive(DeriveIden)]
enum UpstreamClients {
    Table,
    Upstream,
    Url,
    Metadata,
    Resource,
    ClientId,
    ClientSecretSealed,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UpstreamAccounts {
    Table,
    UserId,
    Upstream,
    CredentialsSealed,
    ExpiresAt,
    Version,
    RefreshingUntil,
    RefreshClaim,
    Problem,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UpstreamFlows {
    Table,
    StateHash,
    UserId,
    Upstream,
    FlowSealed,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum UpstreamOffers {
    Table,
    Upstream,
    Offer,
    UpdatedAt,
}
