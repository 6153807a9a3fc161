//! `mcp-gateway secrets …`: the key that seals signing keys and upstream credentials in the database.
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::app::secrets::{DEFAULT_KEY_FILE, secrets_key};
use crate::config::Config;
use crate::crypto::SecretsKey;
use crate::domain::keys::resealed_keys;
use crate::domain::upstreams::resealed_upstreams;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Print a fresh key (64 hex characters) for SECRETS_KEY or a SECRETS_KEY_FILE.
    GenerateKey,
    /// Seal everything again under a new key, in one transaction. Stop every instance first, then start
    /// them with the new key. With a key file (SECRETS_KEY_FILE or mcp-gateway.key) the new key replaces it
    /// (the old one is kept beside it as FILE.old); with SECRETS_KEY the new key is printed.
    RotateKey {
        /// Use this key (64 hex characters) instead of a fresh one.
        #[arg(long)]
        new_key: Option<String>,
    },
}

pub async fn run(
    cmd: SecretsCommand,
    config: &Config,
    store: impl AsyncFnOnce() -> anyhow::Result<Store>,
) -> anyhow::Result<()> {
    match cmd {
        SecretsCommand::GenerateKey => println!("{}", SecretsKey::generate_hex()),
        SecretsCommand::RotateKey { new_key } => {
            let store = store().await?;
            let current = secrets_key(&config.secrets)?;
            let new_hex = new_key.unwrap_or_else(SecretsKey::generate_hex);
            let new = SecretsKey::from_hex(&new_hex).map_err(anyhow::Error::msg).context("--new-key")?;
            if new.id() == current.id() {
                bail!("the new key is the key in use");
            }
            let file = match (&config.secrets.key, &config.secrets.key_file) {
                (Some(_), _) => None,
                (None, Some(path)) => Some(path.clone()),
                (None, None) => Some(PathBuf::from(DEFAULT_KEY_FILE)),
            };
            // The new key is on disk before anything is sealed with it.
            let staged = file.as_ref().map(|f| f.with_extension("key.new"));
            if let Some(staged) = &staged {
                write_private(staged, &new_hex)?;
            }
            let keys = resealed_keys(&store, &current, &new).await?;
            let upstreams = resealed_upstreams(&store, &current, &new).await?;
            let (key_count, upstream_count) = (keys.len(), upstreams.len());
            if !store.replace_sealed(keys, upstreams).await? {
                bail!("something was changed meanwhile; nothing was re-sealed: stop every instance and run this again");
            }
            match (file, staged) {
                (Some(file), Some(staged)) => {
                    let old = file.with_extension("key.old");
                    std::fs::rename(&file, &old).ok();
                    std::fs::rename(&staged, &file)
                        .with_context(|| format!("moving the new key to {}", file.display()))?;
                    println!(
                        "re-sealed {key_count} signing keys and {upstream_count} upstreams under key {}; {} holds it \
                         (the old key is in {}); start every instance with it",
                        new.id(),
                        file.display(),
                        old.display()
                    );
                }
                _ => println!(
                    "re-sealed {key_count} signing keys and {upstream_count} upstreams under key {}; set \
                     SECRETS_KEY={new_hex} on every instance before starting it",
                    new.id()
                ),
            }
        }
    }
    Ok(())
}

fn write_private(path: &std::path::Path, hex: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(format!("{hex}\n").as_bytes())?;
    file.sync_all()?;
    Ok(())
}
