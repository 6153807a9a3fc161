//! The secrets key (`SECRETS_KEY`, `SECRETS_KEY_FILE`, or `mcp-gateway.key` made on first start), which
//! seals the secrets the database keeps and we must use again.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::config::Secrets;
use crate::crypto::SecretsKey;
use crate::store::Store;

/// The key file used when neither variable is set, in the working directory.
pub const DEFAULT_KEY_FILE: &str = "mcp-gateway.key";

/// The configured key; with none configured, the default key file, created (mode 0600) when missing and
/// `may_create` (the server's start, or a database with nothing sealed yet: nothing can be lost to a key
/// made in the wrong directory), so that `cargo run --release` needs no set-up.
pub fn secrets_key(config: &Secrets, may_create: bool) -> anyhow::Result<Arc<SecretsKey>> {
    if let Some(hex) = &config.key {
        return Ok(Arc::new(SecretsKey::from_hex(hex).map_err(anyhow::Error::msg).context("SECRETS_KEY")?));
    }
    if let Some(path) = &config.key_file {
        return read_key_file(path).with_context(|| format!("SECRETS_KEY_FILE {}", path.display()));
    }
    let path = PathBuf::from(DEFAULT_KEY_FILE);
    if !path.exists() {
        if !may_create {
            bail!(
                "no secrets key: this database keeps sealed secrets, and there is no {DEFAULT_KEY_FILE} here; \
                 run this from the server's working directory, or set SECRETS_KEY or SECRETS_KEY_FILE"
            );
        }
        create_key_file(&path)?;
    }
    read_key_file(&path).with_context(|| format!("{}", path.display()))
}

/// Whether the database keeps no signing key, no upstream and no provider's secret yet (a key made now cannot strand anything).
pub async fn holds_nothing_sealed(store: &Store) -> anyhow::Result<bool> {
    Ok(store.all_keys().await?.is_empty()
        && store.list_upstreams().await?.is_empty()
        && store.list_identity_providers().await?.iter().all(|p| p.client_secret_sealed.is_none()))
}

fn read_key_file(path: &Path) -> anyhow::Result<Arc<SecretsKey>> {
    let text = std::fs::read_to_string(path).context("cannot read the secrets key")?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(file = %path.display(), "the secrets key file can be read by others: chmod 600 it");
        }
    }
    Ok(Arc::new(SecretsKey::from_hex(&text).map_err(anyhow::Error::msg)?))
}

/// Writes a fresh key beside, then links it into place: of instances starting together in one directory
/// exactly one creates the file and every one reads the same key.
fn create_key_file(path: &Path) -> anyhow::Result<()> {
    let temporary = path.with_extension(format!("key.{}", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).with_context(|| format!("cannot create {}", temporary.display()))?;
    file.write_all(format!("{}\n", SecretsKey::generate_hex()).as_bytes())?;
    file.sync_all()?;
    drop(file);
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            tracing::info!(
                file = %path.display(),
                "created the secrets key that seals signing keys and upstream credentials in the database: \
                 keep it (and back it up) with the database; every instance on this database needs the same key"
            );
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => bail!("cannot create {}: {e}", path.display()),
    }
}
