//! Signing keys: ES256 keys generated on first start and kept in the database so every instance signs
//! and verifies alike, published at `jwks_uri`; or one HS256 secret (`JWT_SECRET`) for the seed setup.
//! Rotation adds a key and retires the old ones, which keep verifying until their tokens have expired.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use crate::clock::UnixTime;
use crate::crypto::{SealError, SecretsKey, sha256_b64};
use crate::store::{ResealedKey, Store, signing_key};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("key material: {0}")]
    Material(String),
    #[error(
        "the signing keys in this database were sealed with secrets key {found}, but the key given is {ours}: \
         start with the key this database was set up with (SECRETS_KEY, SECRETS_KEY_FILE or mcp-gateway.key; \
         every instance on one database needs the same)"
    )]
    OtherSecretsKey { found: String, ours: String },
    #[error("signing key {0} does not open with the secrets key: the row is damaged")]
    Damaged(String),
}

/// The context a signing key's private key is sealed under.
fn sealing_context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// Opens a stored private key.
fn open_private(secrets: &SecretsKey, row: &signing_key::Model) -> Result<String, KeyError> {
    secrets.open(&sealing_context(&row.kid), &row.private_pem).map_err(|e| match e {
        SealError::OtherKey(found) => KeyError::OtherSecretsKey { found, ours: secrets.id().to_owned() },
        SealError::Damaged => KeyError::Damaged(row.kid.clone()),
    })
}

struct LoadedKeys {
    signing: Option<(String, EncodingKey)>,
    verifying: HashMap<String, DecodingKey>,
    jwks: JwkSet,
}

/// The keys this instance signs and verifies with, reloaded from the database when another instance
/// rotated (an unknown `kid`, at most once per `RELOAD_INTERVAL`) and periodically.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<KeyRingInner>,
}

struct KeyRingInner {
    store: Store,
    secrets: Arc<SecretsKey>,
    hmac: Option<(EncodingKey, DecodingKey)>,
    /// How long a retired key keeps verifying: the access-token lifetime and a minute.
    keep_retired: Duration,
    loaded: RwLock<LoadedKeys>,
    /// When a token with an unknown `kid` last caused a reload (periodic reloads do not count, so a key
    /// rotated just after one is still picked up at once).
    last_demand_reload: RwLock<Instant>,
}

const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl KeyRing {
    /// Loads the keys, creating the first ES256 key if the database has none (exactly once across instances).
    /// `keep_retired` is how long a retired key must keep verifying: the access-token lifetime plus the
    /// key reload interval (an instance may sign with the old key until its next reload).
    /// Private keys stored in plaintext by an older version are sealed first, and every stored key must
    /// open with `secrets` (a wrong key stops the start with [`KeyError::OtherSecretsKey`]).
    pub async fn load(
        store: Store,
        secrets: Arc<SecretsKey>,
        jwt_secret: Option<&str>,
        keep_retired: Duration,
    ) -> Result<KeyRing, KeyError> {
        let hmac = jwt_secret.map(|s| (EncodingKey::from_secret(s.as_bytes()), DecodingKey::from_secret(s.as_bytes())));
        seal_plaintext_keys(&store, &secrets).await?;
        if hmac.is_none() && store.insert_first_key(generate_es256(&secrets)?).await? {
            tracing::info!("created the first ES256 signing key");
        }
        let ring = KeyRing {
            inner: Arc::new(KeyRingInner {
                store,
                secrets,
                hmac,
                keep_retired: keep_retired + Duration::from_secs(60),
                loaded: RwLock::new(LoadedKeys {
                    signing: None,
                    verifying: HashMap::new(),
                    jwks: JwkSet { keys: vec![] },
                }),
                last_demand_reload: RwLock::new(
                    Instant::now().checked_sub(RELOAD_INTERVAL).unwrap_or_else(Instant::now),
                ),
            }),
        };
        ring.reload().await?;
        Ok(ring)
    }

    pub fn algorithm(&self) -> Algorithm {
        if self.inner.hmac.is_some() { Algorithm::HS256 } else { Algorithm::ES256 }
    }

    /// Re-reads the keys from the database.
    pub async fn reload(&self) -> Result<(), KeyError> {
        if self.inner.hmac.is_some() {
            return Ok(());
        }
        let rows = self.inner.store.verification_keys(self.inner.keep_retired).await?;
        let mut loaded = LoadedKeys { signing: None, verifying: HashMap::new(), jwks: JwkSet { keys: vec![] } };
        for row in rows {
            let jwk: Jwk = serde_json::from_str(&row.public_jwk).map_err(|e| KeyError::Material(e.to_string()))?;
            let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::Material(e.to_string()))?;
            if row.retired_at.is_none() && loaded.signing.is_none() {
                let pem = open_private(&self.inner.secrets, &row)?;
                let encoding =
                    EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| KeyError::Material(e.to_string()))?;
                loaded.signing = Some((row.kid.clone(), encoding));
            }
            loaded.verifying.insert(row.kid, decoding);
            loaded.jwks.keys.push(jwk);
        }
        if loaded.signing.is_none() {
            return Err(KeyError::Material("no active signing key in the database; run `keys rotate`".into()));
        }
        *self.inner.loaded.write().expect("key lock poisoned") = loaded;
        Ok(())
    }

    /// Reloads when a token names an unknown key, at most once per `RELOAD_INTERVAL` (a flood of
    /// made-up `kid`s cannot turn into a flood of database reads).
    pub async fn reload_if_stale(&self) -> bool {
        {
            let mut last = self.inner.last_demand_reload.write().expect("key lock poisoned");
            if last.elapsed() < RELOAD_INTERVAL {
                return false;
            }
            *last = Instant::now();
        }
        self.reload().await.is_ok()
    }

    /// The key to sign with and its `kid`.
    pub fn signing_key(&self) -> (Option<String>, EncodingKey) {
        if let Some((enc, _)) = &self.inner.hmac {
            return (None, enc.clone());
        }
        let loaded = self.inner.loaded.read().expect("key lock poisoned");
        let (kid, key) = loaded.signing.as_ref().expect("reload guarantees a signing key");
        (Some(kid.clone()), key.clone())
    }

    /// The key that verifies a token with this `kid` (HS256 ignores the kid).
    pub fn verifying_key(&self, kid: Option<&str>) -> Option<DecodingKey> {
        if let Some((_, dec)) = &self.inner.hmac {
            return Some(dec.clone());
        }
        self.inner.loaded.read().expect("key lock poisoned").verifying.get(kid?).cloned()
    }

    /// The public keys (RFC 7517), for `jwks_uri`. Empty with HS256: a shared secret is never published.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.inner.loaded.read().expect("key lock poisoned").jwks.keys.clone() }
    }
}

/// Seals every private key an older version stored in plaintext, and checks that every stored one opens
/// with `secrets`.
async fn seal_plaintext_keys(store: &Store, secrets: &SecretsKey) -> Result<(), KeyError> {
    for row in store.all_keys().await? {
        if SecretsKey::is_sealed(&row.private_pem) {
            open_private(secrets, &row)?;
            continue;
        }
        let sealed = secrets.seal(&sealing_context(&row.kid), &row.private_pem);
        if store.replace_private_key(&row.kid, &row.private_pem, &sealed).await? {
            tracing::info!(kid = %row.kid, "sealed a signing key stored in plaintext by an older version");
        }
    }
    Ok(())
}

/// Checks that every sealed private key opens with `secrets` (before an operator command writes anything
/// sealed with it).
pub async fn check_secrets_key(store: &Store, secrets: &SecretsKey) -> Result<(), KeyError> {
    for row in store.all_keys().await? {
        if SecretsKey::is_sealed(&row.private_pem) {
            open_private(secrets, &row)?;
        }
    }
    Ok(())
}

/// Every stored private key sealed again under `to`, for [`Store::replace_sealed`] (`mcp-gateway secrets
/// rotate-key`).
pub async fn resealed_keys(store: &Store, from: &SecretsKey, to: &SecretsKey) -> Result<Vec<ResealedKey>, KeyError> {
    let mut resealed = Vec::new();
    for row in store.all_keys().await? {
        let plain =
            if SecretsKey::is_sealed(&row.private_pem) { open_private(from, &row)? } else { row.private_pem.clone() };
        let sealed = to.seal(&sealing_context(&row.kid), &plain);
        resealed.push(ResealedKey { kid: row.kid, old: row.private_pem, new: sealed });
    }
    Ok(resealed)
}

/// A fresh P-256 key: PKCS#8 PEM for signing (sealed with `secrets`), the public JWK (`kid` = RFC 7638
/// thumbprint) for verifying.
pub fn generate_es256(secrets: &SecretsKey) -> Result<signing_key::Model, KeyError> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| KeyError::Material("key generation failed".into()))?;
    let der = pair.to_pkcs8v1().map_err(|_| KeyError::Material("PKCS#8 encoding failed".into()))?;
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> =
        body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    let private_pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
    let encoding = EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(|e| KeyError::Material(e.to_string()))?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|e| KeyError::Material(e.to_string()))?;
    let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
        return Err(KeyError::Material("expected an EC key".into()));
    };
    // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
    let thumbprint_input = format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, ec.x, ec.y);
    let kid = sha256_b64(thumbprint_input.as_bytes());
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(signing_key::Model {
        alg: "ES256".into(),
        private_pem: secrets.seal(&sealing_context(&kid), &private_pem),
        kid,
        public_jwk: serde_json::to_string(&jwk).map_err(|e| KeyError::Material(e.to_string()))?,
        created_at: UnixTime::now(),
        retired_at: None,
    })
}
