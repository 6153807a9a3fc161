//! Gateway mode: the upstream MCP servers every instance serves (their configuration, so a change on one
//! instance reaches all), per-tool scope overrides, and each instance's view of each upstream's health.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Upstreams::Table)
                    .col(string(Upstreams::Name).primary_key())
                    .col(string(Upstreams::Kind))
                    .col(string_null(Upstreams::Command))
                    .col(text(Upstreams::Args))
                    .col(text(Upstreams::Env))
                    .col(string_null(Upstreams::Cwd))
                    .col(string_null(Upstreams::Url))
                    .col(text(Upstreams::Headers))
                    .col(string(Upstreams::Prefix))
                    .col(string_null(Upstreams::Scope))
                    .col(big_integer(Upstreams::TimeoutSecs))
                    .col(boolean(Upstreams::Enabled))
                    .col(big_integer(Upstreams::CreatedAt))
                    .col(big_integer(Upstreams::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamTools::Table)
                    .col(string(UpstreamTools::Upstream))
                    .col(string(UpstreamTools::Tool))
                    .col(string(UpstreamTools::Access))
                    .primary_key(Index::create().col(UpstreamTools::Upstream).col(UpstreamTools::Tool))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UpstreamStatus::Table)
                    .col(string(UpstreamStatus::Instance))
                    .col(string(UpstreamStatus::Upstream))
                    .col(string(UpstreamStatus::State))
                    .col(text_null(UpstreamStatus::Error))
                    .col(text(UpstreamStatus::Tools))
                    .col(big_integer(UpstreamStatus::UpdatedAt))
                    .primary_key(Index::create().col(UpstreamStatus::Instance).col(UpstreamStatus::Upstream))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [UpstreamStatus::Table.into_iden(), UpstreamTools::Table.into_iden(), Upstreams::Table.into_iden()]
        {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Upstreams {
    Table,
    Name,
    Kind,
    Command,
    Args,
    Env,
    Cwd,
    Url,
    Headers,
    Prefix,
    Scope,
    TimeoutSecs,
    Enabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UpstreamTools {
    Table,
    Upstream,
    Tool,
    Access,
}

#[derive(DeriveIden)]
enum UpstreamStatus {
    Table,
    Instance,
    Upstream,
    State,
    Error,
    Tools,
    UpdatedAt,
}
