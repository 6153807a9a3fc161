//! Signing people in through GitHub, which speaks OAuth but not OpenID Connect: a provider's kind
//! (`oidc` or `github`) and, for GitHub, where its REST API answers (api.github.com, or a GitHub
//! Enterprise Server's `/api/v3`).
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(IdentityProviders::Table)
                    .add_column(string(IdentityProviders::Kind).default("oidc"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdentityProviders::Table)
                    .add_column(string_null(IdentityProviders::ApiUrl))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(IdentityProviders::Table).drop_column(IdentityProviders::ApiUrl).to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(IdentityProviders::Table).drop_column(IdentityProviders::Kind).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum IdentityProviders {
    Table,
    Kind,
    ApiUrl,
}
