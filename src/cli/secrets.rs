//! `mcp-gateway secrets …`: the key that seals signing keys and upstream credentials in the database.
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::app::secrets::{DEFAULT_KEY_FILE, secrets_key};
use crate::config::Config;
use crate::crypto::SecretsKey;
use crate::domain::identity_providers::resealed_provider_secrets;
use crate::domain::keys::{check_secrets_key, resealed_keys};
use crate::domain::upstream_accounts::resealed_accounts;
use crate::domain::upstreams::resealed_upstreams;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a fresh key (64 hex characters) for SECRETS_KEY or a SECRETS_KEY_FILE.
    GenerateKey,
    /// Seal everything again under a new key, in one transaction. Stop every instance first, then start
    /// them with the new key. With a key file (SECRETS_KEY_FILE or mcp-gateway.key) a fresh key replaces it
    /// (the old one is kept beside it as FILE.old); with SECRETS_KEY give the new key in a file you made
    /// (`secrets generate-key > FILE`) with --new-key-file, then set SECRETS_KEY to it.
    RotateKey {
        /// A file holding the new key (64 hex characters) instead of a fresh one.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

pub async fn run(
    cmd: SecretsCommand,
    config: &Config,
    store: impl AsyncFnOnce() -> anyhow::Result<Store>,
) -> anyhow::Result<()> {
    match cmd {
        SecretsCommand::GenerateKey => println!("{}", SecretsKey::generate_hex()),
        SecretsCommand::RotateKey { new_key_file } => {
            let store = store().await?;
            let current = secrets_key(&config.secrets, false)?;
            check_secrets_key(&store, &current).await?;
            let new_hex = match &new_key_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_owned(),
                None if config.secrets.key.is_some() => bail!(
                    "SECRETS_KEY is set: make the new key first (`mcp-gateway secrets generate-key > FILE`, kept \
                     safe) and give it with --new-key-file FILE"
                ),
                None => SecretsKey::generate_hex(),
            };
            let new = SecretsKey::from_hex(&new_hex).map_err(anyhow::Error::msg).context("the new key")?;
            if new.id() == current.id() {
                bail!("the new key is the key in use");
            }
            let file = match (&config.secrets.key, &config.secrets.key_file) {
                (Some(_), _) => None,
                _ if new_key_file.is_some() => None,
                (None, Some(path)) => Some(path.clone()),
                (None, None) => Some(PathBuf::from(DEFAULT_KEY_FILE)),
            };
            // The new key is on disk before anything is sealed with it.
            let staged = match (&file, &new_key_file) {
                (Some(f), None) => Some(f.with_extension("key.new")),
                _ => None,
            };
            if let Some(staged) = &staged {
                write_private(staged, &new_hex)?;
            }
            let keys = resealed_keys(&store, &current, &new).await?;
            let upstreams = resealed_upstreams(&store, &current, &new).await?;
            let mut accounts = resealed_accounts(&store, &current, &new).await?;
            accounts.extend(resealed_provider_secrets(&store, &current, &new).await?);
            let (key_count, upstream_count, account_count) = (keys.len(), upstreams.len(), accounts.len());
            if !store.replace_sealed(keys, upstreams, accounts).await? {
                bail!("something was changed meanwhile; nothing was re-sealed: stop every instance and run this again");
            }
            match (file, staged) {
                (Some(file), Some(staged)) => {
                    // The old key stays reachable at every moment: linked as FILE.old, then replaced.
                    let old = file.with_extension("key.old");
                    let _ = std::fs::remove_file(&old);
                    std::fs::hard_link(&file, &old)
                        .with_context(|| format!("keeping the old key as {}", old.display()))?;
                    std::fs::rename(&staged, &file)
                        .with_context(|| format!("moving the new key to {}", file.display()))?;
                    println!(
                        "re-sealed {key_count} signing keys, {upstream_count} upstreams and {account_count} upstream \
                         accounts under key {}; {} holds it (the old key is in {}); start every instance with it",
                        new.id(),
                        file.display(),
                        old.display()
                    );
                }
                _ => println!(
                    "re-sealed {key_count} signing keys, {upstream_count} upstreams and {account_count} upstream \
                     accounts under key {}, the key in {}; give it to every instance (SECRETS_KEY or \
                     SECRETS_KEY_FILE) before starting it",
                    new.id(),
                    new_key_file.as_deref().map_or_else(|| "the new key file".into(), |p| p.display().to_string())
                ),
            }
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, hex: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path); // a file left by an earlier run keeps its own mode otherwise
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())?;
    file.sync_all()?;
    Ok(())
}
