//! `mcp-gateway idp …`: the identity providers the operator trusts. Today a provider is trusted for its
//! Identity Assertion JWT Authorization Grants (ID-JAG, `--trust-id-jag`): a client presents one at the
//! token endpoint and gets a token for the person it names, without a consent page.
use anyhow::bail;
use clap::Subcommand;

use crate::clock::now;
use crate::oauth::id_jag::check_provider_url;
use crate::store::{AuditEntry, AuditKind, Store, identity_provider};

#[derive(Debug, Subcommand)]
pub enum IdpCommand {
    /// Trust an identity provider.
    Add {
        /// A short name (letters, digits, dashes), shown in lists and the audit log.
        name: String,
        /// Its issuer, exactly as the `iss` of its tokens (https, or http to this machine).
        #[arg(long)]
        issuer: String,
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

pub async fn run(cmd: IdpCommand, store: Store) -> anyhow::Result<()> {
    match cmd {
        IdpCommand::Add { name, issuer, jwks_uri, trust_id_jag, allowed_domains, allow_signup } => {
            if !(1..=40).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                bail!("the name must be 1–40 letters, digits or dashes");
            }
            if !trust_id_jag {
                bail!(
                    "signing people in through a provider is not available yet; add --trust-id-jag to accept its \
                     ID-JAG assertions"
                );
            }
            check_provider_url(&issuer).map_err(anyhow::Error::msg)?;
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
                client_id: None,
                client_secret_sealed: None,
                jwks_uri,
                allowed_domains: domains.join(" "),
                allow_signup,
                trust_id_jag,
                disabled: false,
                created_at: now(),
            };
            if !store.insert_identity_provider(model).await? {
                bail!("a provider named {name} or with the issuer {issuer} exists already");
            }
            audit(&store, &format!("identity provider {name} added ({issuer}), by the operator")).await;
            println!("trusting {name} ({issuer}) for ID-JAG assertions");
        }
        IdpCommand::List => {
            println!("{:<16} {:<9} {:<9} {:<28} ISSUER", "NAME", "STATUS", "ID-JAG", "NEW ACCOUNTS");
            for p in store.list_identity_providers().await? {
                let signup = p.new_accounts();
                println!(
                    "{:<16} {:<9} {:<9} {:<28} {}",
                    p.name,
                    if p.disabled { "disabled" } else { "enabled" },
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
