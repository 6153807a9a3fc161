//! Identity providers the operator trusts (OpenID Connect sign-in, and enterprise ID-JAG assertions), and
//! the accounts they vouch for: a person is found by the provider's `iss` + `sub`, never by email alone.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(IdentityProviders::Table)
                    .col(string(IdentityProviders::Name).primary_key())
                    .col(string_uniq(IdentityProviders::Issuer))
                    .col(string_null(IdentityProviders::ClientId))
                    .col(text_null(IdentityProviders::ClientSecretSealed))
                    .col(text_null(IdentityProviders::JwksUri))
                    .col(string(IdentityProviders::AllowedDomains))
                    .col(boolean(IdentityProviders::AllowSignup))
                    .col(boolean(IdentityProviders::TrustIdJag))
                    .col(boolean(IdentityProviders::Disabled))
                    .col(big_integer(IdentityProviders::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Identities::Table)
                    .col(string(Identities::Issuer))
                    .col(string(Identities::Subject))
                    .col(string(Identities::UserId))
                    .col(string_null(Identities::Email))
                    .col(big_integer(Identities::CreatedAt))
                    .primary_key(Index::create().col(Identities::Issuer).col(Identities::Subject))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_identities_user").table(Identities::Table).col(Identities::UserId).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Identities::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(IdentityProviders::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum IdentityProviders {
    Table,
    Name,
    Issuer,
    ClientId,
    ClientSecretSealed,
    JwksUri,
    AllowedDomains,
    AllowSignup,
    TrustIdJag,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    Issuer,
    Subject,
    UserId,
    Email,
    CreatedAt,
}
