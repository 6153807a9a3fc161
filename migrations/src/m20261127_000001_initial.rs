//! Users, browser sessions, clients, grants, authorization codes, consents, refresh tokens and signing keys.
//! Times are Unix seconds (UTC) in BIGINT columns: they compare the same way on SQLite and Postgres.
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string_uniq(Users::Username))
                    .col(string(Users::PasswordHash))
                    .col(boolean(Users::IsAdmin).default(false))
                    .col(boolean(Users::Disabled).default(false))
                    .col(big_integer(Users::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LoginSessions::Table)
                    .col(string(LoginSessions::IdHash).primary_key())
                    .col(string(LoginSessions::UserId))
                    .col(big_integer(LoginSessions::CreatedAt))
                    .col(big_integer(LoginSessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(LoginSessions::Table, LoginSessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(string(Clients::ClientId).primary_key())
                    .col(string_null(Clients::SecretHash))
                    .col(string(Clients::Name))
                    .col(text(Clients::RedirectUris))
                    .col(string(Clients::GrantTypes))
                    .col(string(Clients::ResponseTypes))
                    .col(string(Clients::TokenEndpointAuthMethod))
                    .col(string(Clients::Scope))
                    .col(string(Clients::ApplicationType))
                    .col(text(Clients::Metadata))
                    .col(string(Clients::RegistrationSource))
                    .col(string_null(Clients::OwnerUserId))
                    .col(string_null(Clients::RegistrationAccessTokenHash))
                    .col(string_null(Clients::MetadataUrl))
                    .col(boolean(Clients::Disabled).default(false))
                    .col(big_integer(Clients::CreatedAt))
                    .col(big_integer_null(Clients::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Grants::Table)
                    .col(string(Grants::GrantId).primary_key())
                    .col(string(Grants::UserId))
                    .col(string(Grants::ClientId))
                    .col(text(Grants::Resource))
                    .col(string(Grants::Scope))
                    .col(big_integer(Grants::CreatedAt))
                    .col(big_integer_null(Grants::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_grants_user_client")
                    .table(Grants::Table)
                    .col(Grants::UserId)
                    .col(Grants::ClientId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthorizationCodes::Table)
                    .col(string(AuthorizationCodes::CodeHash).primary_key())
                    .col(string(AuthorizationCodes::ClientId))
                    .col(string(AuthorizationCodes::UserId))
                    .col(text(AuthorizationCodes::RedirectUri))
                    .col(boolean(AuthorizationCodes::RedirectUriExplicit))
                    .col(string(AuthorizationCodes::Scope))
                    .col(text(AuthorizationCodes::Resource))
                    .col(string(AuthorizationCodes::CodeChallenge))
                    .col(string(AuthorizationCodes::FamilyId))
                    .col(big_integer(AuthorizationCodes::ExpiresAt))
                    .col(big_integer_null(AuthorizationCodes::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(string(Consents::UserId))
                    .col(string(Consents::ClientId))
                    .col(string(Consents::Resource))
                    .col(string(Consents::Scope))
                    .col(big_integer(Consents::GrantedAt))
                    .col(big_integer_null(Consents::RevokedAt))
                    .primary_key(Index::create().col(Consents::UserId).col(Consents::ClientId).col(Consents::Resource))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::TokenHash).primary_key())
                    .col(string(RefreshTokens::FamilyId))
                    .col(string(RefreshTokens::ClientId))
                    .col(string(RefreshTokens::UserId))
                    .col(string(RefreshTokens::Scope))
                    .col(text(RefreshTokens::Resource))
                    .col(big_integer(RefreshTokens::IssuedAt))
                    .col(big_integer(RefreshTokens::ExpiresAt))
                    .col(big_integer_null(RefreshTokens::UsedAt))
                    .col(big_integer_null(RefreshTokens::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_family")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string(SigningKeys::Kid).primary_key())
                    .col(string(SigningKeys::Alg))
                    .col(text(SigningKeys::PrivatePem))
                    .col(text(SigningKeys::PublicJwk))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer_null(SigningKeys::RetiredAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SigningKeys::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Consents::Table.into_iden(),
            AuthorizationCodes::Table.into_iden(),
            Grants::Table.into_iden(),
            Clients::Table.into_iden(),
            LoginSessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    PasswordHash,
    IsAdmin,
    Disabled,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LoginSessions {
    Table,
    IdHash,
    UserId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Clients {
    Table,
    ClientId,
    SecretHash,
    Name,
    RedirectUris,
    GrantTypes,
    ResponseTypes,
    TokenEndpointAuthMethod,
    Scope,
    ApplicationType,
    Metadata,
    RegistrationSource,
    OwnerUserId,
    RegistrationAccessTokenHash,
    MetadataUrl,
    Disabled,
    CreatedAt,
    ExpiresAt,
}

/// One authorization a person gave a client: every code, access token and refresh token issued under it
/// carries its id, and revoking it ends them all.
#[derive(DeriveIden)]
enum Grants {
    Table,
    GrantId,
    UserId,
    ClientId,
    Resource,
    Scope,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    CodeHash,
    ClientId,
    UserId,
    RedirectUri,
    RedirectUriExplicit,
    Scope,
    Resource,
    CodeChallenge,
    FamilyId,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    UserId,
    ClientId,
    Resource,
    Scope,
    GrantedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    FamilyId,
    ClientId,
    UserId,
    Scope,
    Resource,
    IssuedAt,
    ExpiresAt,
    UsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    PrivatePem,
    PublicJwk,
    CreatedAt,
    RetiredAt,
}
