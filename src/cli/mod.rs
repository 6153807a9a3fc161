//! The command line: `serve` (default) and the operator commands. Every command reads the same
//! configuration as the server.
mod groups;
mod idp;
mod secrets;
mod upstream;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::app::{Application, openapi_service, passwords};
use crate::clock::UnixTime;
use crate::config::Config;
use crate::domain::accounts::{validate_password, validate_username};
use crate::domain::client::{AuthMethod, GrantType};
use crate::domain::keys::generate_es256;
use crate::domain::registration::{ClientMetadata, Registrant};
use crate::oauth::token::mint_for_operator;
use crate::store::{AuditEntry, AuditFilter, AuditKind, Store};

#[derive(Debug, Parser)]
#[command(name = "mcp-gateway", version, about = "An MCP server that is its own OAuth 2.1 authorization server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the people who can sign in.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the keys that sign access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Issue access tokens for operators and scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Delete expired codes, refresh tokens, browser sessions and idle MCP sessions.
    Purge,
    /// List audit events, newest first: logins, consents, clients, token reuse, key rotation, admin actions.
    Audit {
        /// Only this event, e.g. login_failed.
        #[arg(long)]
        event: Option<String>,
        /// Only events of this user id.
        #[arg(long)]
        user: Option<String>,
        /// Only events of this client.
        #[arg(long)]
        client: Option<String>,
        /// Only events of the last N seconds.
        #[arg(long)]
        since: Option<u32>,
        /// At most this many events.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        limit: u64,
    },
    /// The OpenAPI description.
    #[command(subcommand)]
    Openapi(OpenapiCommand),
    /// Manage the MCP servers the gateway puts behind its OAuth (every instance serves the same set).
    #[command(subcommand)]
    Upstream(upstream::UpstreamCommand),
    /// The key that seals signing keys and upstream credentials in the database.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// The identity providers this server trusts (sign-in, enterprise ID-JAG assertions).
    #[command(subcommand)]
    Idp(Box<idp::IdpCommand>),
    /// Local groups (beside those identity providers send).
    #[command(subcommand)]
    Group(groups::GroupCommand),
    /// Which groups may use which upstream and tools.
    #[command(subcommand)]
    Policy(groups::PolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prompts for the password when --password is omitted.
    Add {
        username: String,
        #[arg(long)]
        password: Option<String>,
        /// May use the admin views.
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Stop a user from signing in (their sessions and refresh tokens stop working too).
    Disable { username: String },
    /// Allow a disabled user to sign in again.
    Enable { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client as the operator (shown without the "unverified" mark on the consent page).
    Add {
        #[arg(long)]
        name: String,
        /// A redirect URI; repeat for several (needed by the authorization_code grant).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A confidential client with a secret (client_secret_basic); the secret is printed once.
        #[arg(long)]
        confidential: bool,
        /// A grant type the client may use; repeat for several (default: authorization_code and
        /// refresh_token). `--grant client_credentials` alone makes a machine client: confidential, no
        /// redirect URIs, tokens that act for the client itself.
        #[arg(long = "grant", value_parser = ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:jwt-bearer"])]
        grants: Vec<String>,
        /// Space-separated scopes (default: any scope the server offers, now or later).
        #[arg(long)]
        scope: Option<String>,
    },
    /// List clients.
    List,
    /// Delete a client.
    Remove { client_id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List signing keys.
    List,
    /// Create a new signing key; older keys keep verifying until their tokens expire.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print an access token for USER through CLIENT, signed like the token endpoint's.
    Mint {
        #[arg(long)]
        user: String,
        #[arg(long)]
        client: String,
        /// Space-separated scopes, e.g. "mcp:read mcp:write".
        #[arg(long)]
        scope: String,
        /// Lifetime in seconds (default: ACCESS_TOKEN_TTL; at most 30 days).
        #[arg(long, value_parser = clap::value_parser!(u32).range(60..=2_592_000))]
        ttl: Option<u32>,
        /// Also issue a refresh token (printed after the access token, separated by a space).
        #[arg(long)]
        refresh: bool,
        /// How many tokens (each its own grant), one per line.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        count: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum OpenapiCommand {
    /// Write openapi.json and openapi.yaml into a directory.
    Export {
        #[arg(long, default_value = "openapi")]
        dir: PathBuf,
    },
}

/// Runs a non-serve command.
pub async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => unreachable!("serve is handled by main"),
        Command::Openapi(OpenapiCommand::Export { dir }) => export_openapi(&dir),
        Command::Migrate => {
            let store = Store::open(&config.database).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => user(cmd, &config).await,
        Command::Purge => {
            let app = Application::build(config).await?;
            let purged = app.state().store.purge_expired(app.state().purge_after).await?;
            println!(
                "purged {} codes, {} refresh tokens, {} browser sessions, {} MCP sessions, {} consents, {} grants, {} unused clients, {} audit events, {} used client assertions, {} abandoned upstream sign-ins, {} expired tasks",
                purged.codes,
                purged.refresh_tokens,
                purged.login_sessions,
                purged.mcp_sessions,
                purged.consents,
                purged.grants,
                purged.unused_clients,
                purged.audit_events,
                purged.used_assertions,
                purged.upstream_flows,
                purged.tasks
            );
            Ok(())
        }
        Command::Audit { event, user, client, since, limit } => {
            let since = since.map(|s| UnixTime::now() - std::time::Duration::from_secs(u64::from(s)));
            let filter = AuditFilter { event, user_id: user, client_id: client, since, limit };
            println!("{:<25} {:<22} {:<36} {:<36} {:<15} detail", "time (UTC)", "event", "user", "client", "ip");
            for e in store(&config).await?.audit_events(&filter).await? {
                println!(
                    "{:<25} {:<22} {:<36} {:<36} {:<15} {}",
                    e.at.rfc3339(),
                    e.event,
                    e.user_id.as_deref().unwrap_or("-"),
                    e.client_id.as_deref().unwrap_or("-"),
                    e.ip.as_deref().unwrap_or("-"),
                    e.detail.as_deref().unwrap_or("")
                );
            }
            Ok(())
        }
        Command::Client(cmd) => client(cmd, config).await,
        Command::Upstream(cmd) => {
            let store = store(&config).await?;
            let secrets = secrets_key(&config, &store).await?;
            upstream::run(cmd, store, secrets).await
        }
        Command::Secrets(cmd) => secrets::run(cmd, &config, async || store(&config).await).await,
        Command::Idp(cmd) => {
            let store = store(&config).await?;
            let secrets = secrets_key(&config, &store).await?;
            idp::run(*cmd, store, secrets).await
        }
        Command::Group(cmd) => groups::run_group(cmd, store(&config).await?).await,
        Command::Policy(cmd) => groups::run_policy(cmd, store(&config).await?).await,
        Command::Keys(cmd) => keys(cmd, &config).await,
        Command::Token(TokenCommand::Mint { user, client, scope, ttl, refresh, count }) => {
            let ttl = ttl.map_or(config.tokens.access_token_ttl, |t| std::time::Duration::from_secs(u64::from(t)));
            let app = Application::build(config).await?;
            let tokens = &app.state().token_service;
            app.state().scopes.parse_known(&scope).map_err(anyhow::Error::msg)?;
            for _ in 0..count {
                let (token, refresh_token) = mint_for_operator(tokens, &user, &client, &scope, ttl, refresh).await?;
                match refresh_token {
                    Some(r) => println!("{token} {r}"),
                    None => println!("{token}"),
                }
            }
            Ok(())
        }
    }
}

/// The secrets key for a command that seals something, checked against what the database already keeps.
async fn secrets_key(config: &Config, store: &Store) -> anyhow::Result<std::sync::Arc<crate::crypto::SecretsKey>> {
    let may_create = crate::app::secrets::holds_nothing_sealed(store).await?;
    let secrets = crate::app::secrets::secrets_key(&config.secrets, may_create)?;
    crate::domain::keys::check_secrets_key(store, &secrets).await?;
    Ok(secrets)
}

async fn store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::open(&config.database).await.context("connecting to the database")?;
    // Only when something is missing: migrating takes the write lock, which a command that only reads
    // (`upstream list` beside a busy server on one SQLite file) should never wait for.
    if store.pending_migrations().await.context("reading the applied migrations")? > 0 {
        store.migrate().await.context("applying migrations")?;
    }
    Ok(store)
}

pub fn export_openapi(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let api = openapi_service();
    std::fs::write(dir.join("openapi.json"), api.spec() + "\n")?;
    std::fs::write(dir.join("openapi.yaml"), api.spec_yaml())?;
    println!("wrote {}/openapi.json and openapi.yaml", dir.display());
    Ok(())
}

async fn user(cmd: UserCommand, config: &Config) -> anyhow::Result<()> {
    let store = store(config).await?;
    match cmd {
        UserCommand::Add { username, password, admin } => {
            let username = validate_username(&username).map_err(anyhow::Error::msg)?;
            let password = match password {
                Some(p) => p,
                None => {
                    let first = rpassword::prompt_password(format!("Password for {username}: "))?;
                    if rpassword::prompt_password("Repeat the password: ")? != first {
                        bail!("the passwords are not the same");
                    }
                    first
                }
            };
            validate_password(&password).map_err(anyhow::Error::msg)?;
            let hash = passwords(config.accounts.password_hash_cost).hash(&password).await;
            match store.create_user(&username, hash, admin).await? {
                Some(user) => println!("created user {} ({})", user.username, user.id),
                None => bail!("a user named {username} exists already"),
            }
        }
        UserCommand::List => {
            println!("{:<24} {:<36} {:<6} {:<8}", "USERNAME", "ID", "ADMIN", "STATUS");
            for u in store.list_users().await? {
                println!(
                    "{:<24} {:<36} {:<6} {:<8}",
                    u.username,
                    u.id,
                    u.is_admin,
                    if u.disabled { "disabled" } else { "active" }
                );
            }
        }
        UserCommand::Disable { username } => {
            if !store.set_user_disabled(&username.to_ascii_lowercase(), true).await? {
                bail!("no user named {username}");
            }
            let detail = format!("account {username}, by the operator");
            store.audit(AuditKind::UserDisabled, AuditEntry { detail: Some(&detail), ..AuditEntry::default() }).await;
            println!("disabled {username}");
        }
        UserCommand::Enable { username } => {
            if !store.set_user_disabled(&username.to_ascii_lowercase(), false).await? {
                bail!("no user named {username}");
            }
            let detail = format!("account {username}, by the operator");
            store.audit(AuditKind::UserEnabled, AuditEntry { detail: Some(&detail), ..AuditEntry::default() }).await;
            println!("enabled {username}");
        }
    }
    Ok(())
}

async fn client(cmd: ClientCommand, config: Config) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Add { name, redirect_uris, confidential, grants, scope } => {
            let app = Application::build(config).await?;
            let grants = if grants.is_empty() {
                GrantType::INTERACTIVE.iter().map(|g| g.as_str().into()).collect()
            } else {
                grants
            };
            let machine = grants.iter().any(|g| g == GrantType::ClientCredentials.as_str());
            let method = if confidential || machine { AuthMethod::ClientSecretBasic } else { AuthMethod::None };
            let metadata = ClientMetadata {
                client_name: Some(name),
                redirect_uris: Some(redirect_uris),
                token_endpoint_auth_method: Some(method.as_str().into()),
                grant_types: Some(grants),
                scope,
                ..Default::default()
            };
            let info = app
                .state()
                .registrar
                .register(metadata, Registrant::operator())
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            println!("client_id: {}", info.client_id);
            if let Some(secret) = info.client_secret {
                println!("client_secret: {secret}");
                println!("(the secret is shown only now; store it safely)");
            }
        }
        ClientCommand::List => {
            let store = store(&config).await?;
            println!("{:<36} {:<20} {:<20} {:<10} REDIRECT URIS", "CLIENT ID", "NAME", "AUTH METHOD", "SOURCE");
            for c in store.list_clients().await? {
                println!(
                    "{:<36} {:<20} {:<20} {:<10} {}",
                    c.client_id, c.name, c.token_endpoint_auth_method, c.registration_source, c.redirect_uris
                );
            }
        }
        ClientCommand::Remove { client_id } => {
            let store = store(&config).await?;
            if !store.delete_client(&client_id).await? {
                bail!("no client {client_id}");
            }
            let entry =
                AuditEntry { client_id: Some(&client_id), detail: Some("by the operator"), ..AuditEntry::default() };
            store.audit(AuditKind::ClientDeleted, entry).await;
            println!("removed {client_id}");
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, config: &Config) -> anyhow::Result<()> {
    let store = store(config).await?;
    match cmd {
        KeysCommand::List => {
            println!("{:<44} {:<6} {:<22} STATUS", "KID", "ALG", "CREATED");
            for k in store.all_keys().await? {
                let status = match k.retired_at {
                    None => "signing".to_owned(),
                    Some(t) => format!("retired {t}"),
                };
                println!("{:<44} {:<6} {:<22} {status}", k.kid, k.alg, k.created_at);
            }
            if config.tokens.jwt_secret.is_some() {
                println!("(JWT_SECRET is set: access tokens are HS256 and these keys are not used)");
            }
        }
        KeysCommand::Rotate => {
            let key = generate_es256(&*secrets_key(config, &store).await?)?;
            let kid = key.kid.clone();
            store.rotate_in_key(key).await?;
            store.audit(AuditKind::KeyRotated, AuditEntry { detail: Some(&kid), ..AuditEntry::default() }).await;
            println!("new signing key {kid}; older keys verify until their tokens expire");
        }
    }
    Ok(())
}
