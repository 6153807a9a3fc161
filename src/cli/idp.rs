//! `mcp-gateway idp …`: the identity providers the operator trusts: to sign people in (OpenID Connect, with
//! `--client-id`: "Sign in with NAME" on the login page), and/or for their Identity Assertion JWT
//! Authorization Grants (ID-JAG, `--trust-id-jag`: a client presents one at the token endpoint and gets a
//! token for the person it names, without a consent page).
use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;

use crate::clock::now;
use crate::crypto::SecretsKey;
use crate::domain::identity_providers::check_provider_url;
use crate::store::{AuditEntry, AuditKind, Store, identity_provider};

const GITHUB: &str = "https://github.com";
const GITHUB_API: &str = "https://api.github.com";
const GITHUB_SCOPES: &str = "read:user user:email read:org";
const OIDC_SCOPES: &str = "openid email profile";

#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Trust an identity provider.
    Add {
        /// A short name (letters, digits, dashes), shown in lists and the audit log.
        name: String,
        /// Its issuer, exactly as the `iss` of its tokens (https, or http to this machine). With --github:
        /// GitHub's web address (default https://github.com; a GitHub Enterprise Server's own).
        #[arg(long, required_unless_present = "github")]
        issuer: Option<String>,
        /// GitHub (OAuth, not OpenID Connect): the person and their organizations and teams (as groups
        /// `org` and `org/team`) come from GitHub's API. Needs --client-id and --client-secret.
        #[arg(long, requires_all = ["client_id", "client_secret"], conflicts_with_all = ["trust_id_jag", "groups_claim", "jwks_uri"])]
        github: bool,
        /// With --github: GitHub's REST API (default https://api.github.com, or ISSUER/api/v3 for a GitHub
        /// Enterprise Server).
        #[arg(long, requires = "github")]
        github_api_url: Option<String>,
        /// Where its signing keys are (default: the `jwks_uri` of its OpenID Connect discovery document).
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Accept its ID-JAG assertions (enterprise-managed authorization) at the token endpoint.
        #[arg(long)]
        trust_id_jag: bool,
        /// Space- or comma-separated email domains whose people get an account when first seen.
        #[arg(long, default_value = "")]
        allowed_domains: String,
        /// Anyone it vouches for gets an account when first seen.
        #[arg(long)]
        allow_signup: bool,
        /// Our client id there: people sign in through it ("Sign in with NAME" on the login page).
        #[arg(long)]
        client_id: Option<String>,
        /// The client secret that goes with --client-id (kept sealed).
        #[arg(long, requires = "client_id")]
        client_secret: Option<String>,
        /// The scopes asked of it at sign-in (default "openid email profile"; with --github
        /// "read:user user:email read:org").
        #[arg(long, requires = "client_id")]
        scopes: Option<String>,
        /// The ID token claim that lists a person's groups (kept with the account, refreshed at each sign-in).
        #[arg(long, requires = "client_id")]
        groups_claim: Option<String>,
    },
    /// List the trusted providers.
    List,
    /// Stop trusting a provider (the accounts it made stay, and are found again if it is added back).
    Remove { name: String },
    /// Stop accepting a provider's assertions for now.
    Disable { name: String },
    /// Accept a disabled provider's assertions again.
    Enable { name: String },
}

pub async fn run(cmd: IdpCommand, store: Store, secrets: Arc<SecretsKey>) -> anyhow::Result<()> {
    match cmd {
        IdpCommand::Add {
            name,
            issuer,
            github,
            github_api_url,
            jwks_uri,
            trust_id_jag,
            allowed_domains,
            allow_signup,
            client_id,
            client_secret,
            scopes,
            groups_claim,
        } => {
            if !(1..=40).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                bail!("the name must be 1–40 letters, digits or dashes");
            }
            if !trust_id_jag && client_id.is_none() {
                bail!(
                    "say what the provider is trusted for: --client-id (people sign in through it), --trust-id-jag, or both"
                );
            }
            let printable = |v: &str| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control);
            if ![&client_id, &client_secret, &groups_claim].iter().all(|v| v.as_deref().is_none_or(printable)) {
                bail!("the client id, secret and groups claim must be printable text");
            }
            let issuer = issuer.unwrap_or_else(|| GITHUB.to_owned()).trim_end_matches('/').to_owned();
            let scopes = scopes.unwrap_or_else(|| if github { GITHUB_SCOPES } else { OIDC_SCOPES }.to_owned());
            if !github && client_id.is_some() && !scopes.split_whitespace().any(|s| s == "openid") {
                bail!("--scopes must include openid");
            }
            if !printable(&scopes) {
                bail!("--scopes must be printable text");
            }
            check_provider_url(&issuer).map_err(anyhow::Error::msg)?;
            let api_url = github.then(|| {
                github_api_url.map(|u| u.trim_end_matches('/').to_owned()).unwrap_or_else(|| {
                    if issuer == GITHUB { GITHUB_API.to_owned() } else { format!("{issuer}/api/v3") }
                })
            });
            if let Some(url) = &api_url {
                check_provider_url(url).map_err(anyhow::Error::msg)?;
            }
            if let Some(uri) = &jwks_uri {
                check_provider_url(uri).map_err(anyhow::Error::msg)?;
            }
            let domains: Vec<String> = allowed_domains
                .split([' ', ','])
                .filter(|d| !d.is_empty())
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect();
            if let Some(bad) = domains.iter().find(|d| !d.contains('.') || d.contains('@')) {
                bail!("{bad} is not an email domain");
            }
            let model = identity_provider::Model {
                name: name.clone(),
                issuer: issuer.clone(),
                client_secret_sealed: client_secret
                    .as_deref()
                    .map(|secret| secrets.seal(&identity_provider::secret_context(&name), secret)),
                client_id,
                jwks_uri,
                allowed_domains: domains.join(" "),
                allow_signup,
                trust_id_jag,
                disabled: false,
                created_at: now(),
                scopes,
                groups_claim,
                kind: if github { identity_provider::GITHUB } else { identity_provider::OIDC }.to_owned(),
                api_url,
            };
            let model_signs_in = model.client_id.is_some();
            if !store.insert_identity_provider(model).await? {
                bail!("a provider named {name} or with the issuer {issuer} exists already");
            }
            audit(&store, &format!("identity provider {name} added ({issuer}), by the operator")).await;
            let uses: Vec<&str> = [(model_signs_in, "signing people in"), (trust_id_jag, "ID-JAG assertions")]
                .into_iter()
                .filter_map(|(on, what)| on.then_some(what))
                .collect();
            println!("trusting {name} ({issuer}) for {}", uses.join(" and "));
        }
        IdpCommand::List => {
            println!("{:<16} {:<9} {:<8} {:<9} {:<28} ISSUER", "NAME", "STATUS", "SIGN-IN", "ID-JAG", "NEW ACCOUNTS");
            for p in store.list_identity_providers().await? {
                let signup = p.new_accounts();
                println!(
                    "{:<16} {:<9} {:<8} {:<9} {:<28} {}",
                    p.name,
                    if p.disabled { "disabled" } else { "enabled" },
                    match (p.client_id.is_some(), p.is_github()) {
                        (true, true) => "github",
                        (true, false) => "oidc",
                        _ => "-",
                    },
                    if p.trust_id_jag { "trusted" } else { "-" },
                    signup,
                    p.issuer
                );
            }
        }
        IdpCommand::Remove { name } => {
            if !store.remove_identity_provider(&name).await? {
                bail!("no provider named {name}");
            }
            audit(&store, &format!("identity provider {name} removed, by the operator")).await;
            println!("removed {name}");
        }
        IdpCommand::Disable { name } => switch(&store, &name, true).await?,
        IdpCommand::Enable { name } => switch(&store, &name, false).await?,
    }
    Ok(())
}

async fn switch(store: &Store, name: &str, disabled: bool) -> anyhow::Result<()> {
    if !store.set_identity_provider_disabled(name, disabled).await? {
        bail!("no provider named {name}");
    }
    let done = if disabled { "disabled" } else { "enabled" };
    audit(store, &format!("identity provider {name} {done}, by the operator")).await;
    println!("{done} {name}");
    Ok(())
}

async fn audit(store: &Store, detail: &str) {
    store.audit(AuditKind::IdentityProviderChanged, AuditEntry { detail: Some(detail), ..AuditEntry::default() }).await;
}
