//! Signing people in through an OpenID Connect provider: the scopes asked of it and the claim that carries
//! groups; each person's groups (from a provider's claim, refreshed at each sign-in, or local); and the
//! policy rules that let groups use upstreams (and which of their tools).
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
                    .add_column(string(IdentityProviders::Scopes).default("openid email profile"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(IdentityProviders::Table)
                    .add_column(string_null(IdentityProviders::GroupsClaim))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserGroups::Table)
                    .col(string(UserGroups::UserId))
                    .col(string(UserGroups::Name))
                    .col(string(UserGroups::Source))
                    .primary_key(Index::create().col(UserGroups::UserId).col(UserGroups::Name).col(UserGroups::Source))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PolicyRules::Table)
                    .col(string(PolicyRules::GroupName))
                    .col(string(PolicyRules::Upstream))
                    .col(text(PolicyRules::AllowTools))
                    .col(text(PolicyRules::DenyTools))
                    .primary_key(Index::create().col(PolicyRules::GroupName).col(PolicyRules::Upstream))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PolicyRules::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UserGroups::Table).to_owned()).await?;
        manager
            .alter_table(
                Table::alter().table(IdentityProviders::Table).drop_column(IdentityProviders::GroupsClaim).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(IdentityProviders::Table).drop_column(IdentityProviders::Scopes).to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum IdentityProviders {
    Table,
    Scopes,
    GroupsClaim,
}

#[derive(DeriveIden)]
enum UserGroups {
    Table,
    UserId,
    Name,
    Source,
}

#[derive(DeriveIden)]
enum PolicyRules {
    Table,
    GroupName,
    Upstream,
    AllowTools,
    DenyTools,
}
