//! The few primitives every secret goes through: random tokens, SHA-256 digests for high-entropy
//! secrets (client secrets, codes, refresh tokens, session ids), argon2id for passwords, and the
//! key-encryption key that seals the secrets we must use again (signing keys, upstream credentials).
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use tokio::sync::Semaphore;

/// How expensive argon2id password hashing is. `Low` exists for tests and must never be used in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordHashCost {
    /// OWASP's argon2id recommendation: 19 MiB, 2 passes.
    Default,
    /// 1 MiB, 1 pass: fast enough for test suites.
    Low,
}

/// 256 random bits, base64url without padding (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The lookup key under which a high-entropy secret is stored: hex SHA-256.
pub fn sha256_hex(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `presented` is the high-entropy secret whose [`sha256_hex`] is `stored`, compared in constant time.
pub fn matches_sha256(presented: &str, stored: &str) -> bool {
    bool::from(sha256_hex(presented).as_bytes().ct_eq(stored.as_bytes()))
}

/// Whether a stored secret hash is an argon2 PHC string (client secrets registered before they were
/// stored as SHA-256 digests).
pub fn is_argon2_hash(stored: &str) -> bool {
    stored.starts_with("$argon2")
}

/// base64url SHA-256, used to derive values (such as CSRF tokens) from a secret without storing them.
pub fn sha256_b64(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
}

/// Seals `secret` so that only a holder of `key_material` can open it: AES-256-GCM under
/// SHA-256(`purpose` ‖ `key_material`), a random nonce, base64url(nonce ‖ ciphertext ‖ tag).
/// The key material must itself be a high-entropy secret that is not stored in clear.
pub fn seal_for(purpose: &str, key_material: &str, secret: &str) -> String {
    let key = aead_key(purpose, key_material);
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut in_out = secret.as_bytes().to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::empty(), &mut in_out)
        .expect("AES-GCM sealing of a short secret cannot fail");
    let mut sealed = nonce_bytes.to_vec();
    sealed.extend(in_out);
    URL_SAFE_NO_PAD.encode(sealed)
}

/// Opens what [`seal_for`] sealed with the same purpose and key material; `None` if anything differs.
pub fn open_for(purpose: &str, key_material: &str, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut in_out = ciphertext.to_vec();
    let plain = aead_key(purpose, key_material).open_in_place(nonce, Aad::empty(), &mut in_out).ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

fn aead_key(purpose: &str, key_material: &str) -> LessSafeKey {
    let digest = Sha256::new()
        .chain_update(purpose.as_bytes())
        .chain_update([0u8])
        .chain_update(key_material.as_bytes())
        .finalize();
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &digest).expect("a SHA-256 digest is an AES-256 key"))
}

/// argon2id with parameters chosen by [`PasswordHashCost`]; the parameters are stored in the PHC string,
/// so changing the cost later still verifies old hashes.
///
/// Hashing is deliberately expensive, so it runs on the blocking pool, at most one per core at a time:
/// a flood of login attempts queues here instead of stalling every other request on the async workers.
#[derive(Clone)]
pub struct Passwords {
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
}

impl Passwords {
    pub fn new(cost: PasswordHashCost) -> Passwords {
        let params = match cost {
            PasswordHashCost::Default => Params::new(19 * 1024, 2, 1, None),
            PasswordHashCost::Low => Params::new(1024, 1, 1, None),
        }
        .expect("argon2 parameters are constants within the library's bounds");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Passwords {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    pub async fn hash(&self, secret: &str) -> String {
        let secret = secret.to_owned();
        self.blocking(move |argon2| hash_with(argon2, &secret)).await
    }

    /// [`Passwords::hash`] under a limit: once a hashing slot is free, `allowed` is asked again, so requests
    /// that queued together cannot all pass a check made before they queued. `None`: refused, nothing hashed.
    pub async fn hash_limited(&self, secret: &str, allowed: impl FnOnce() -> bool) -> Option<String> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        if !allowed() {
            return None;
        }
        let (argon2, secret) = (self.argon2.clone(), secret.to_owned());
        Some(tokio::task::spawn_blocking(move || hash_with(&argon2, &secret)).await.expect("hashing does not panic"))
    }

    /// A sign-in's password check under a limit. `stored` is `None` for an unknown account: a dummy hash is
    /// verified instead, so timing does not tell, and the answer is no. Once a hashing slot is free,
    /// `allowed` is asked again (attempts that queued together cannot all pass a check made before they
    /// queued), and a wrong password is reported through `failed` before the slot is released, so the next
    /// attempt in the queue already sees it. `None`: refused by `allowed`, nothing verified.
    pub async fn verify_limited(
        &self,
        secret: &str,
        stored: Option<&str>,
        allowed: impl FnOnce() -> bool,
        failed: impl FnOnce(),
    ) -> Option<bool> {
        let known = stored.is_some();
        let stored = match stored {
            Some(hash) => hash.to_owned(),
            None => self.dummy_hash().await.to_owned(),
        };
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        if !allowed() {
            return None;
        }
        let (argon2, secret) = (self.argon2.clone(), secret.to_owned());
        let matched = tokio::task::spawn_blocking(move || matches(&argon2, &secret, &stored))
            .await
            .expect("password hashing does not panic");
        let verified = known && matched;
        if !verified {
            failed();
        }
        Some(verified)
    }

    async fn dummy_hash(&self) -> &'static str {
        static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        DUMMY.get_or_init(|| self.hash("timing-equaliser")).await
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static) -> T {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || work(&argon2)).await.expect("password hashing does not panic")
    }
}

fn hash_with(argon2: &Argon2<'static>, secret: &str) -> String {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt length");
    argon2.hash_password(secret.as_bytes(), &salt).expect("hashing with valid parameters cannot fail").to_string()
}

/// Constant-time verification (inside argon2); a malformed stored hash simply does not verify.
fn matches(argon2: &Argon2<'static>, secret: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| argon2.verify_password(secret.as_bytes(), &h).is_ok())
}

/// The key-encryption key (`SECRETS_KEY`): 32 random bytes that seal, with AES-256-GCM, every secret the
/// database keeps and we must use again. A sealed value reads `enc1:<key id>:<base64url(nonce ‖ ciphertext ‖
/// tag)>`; the key id (a digest of the key, never the key) tells a wrong key from a damaged value, and the
/// context each value is sealed under (its table and row) is authenticated, so a value copied into another
/// row does not open.
pub struct SecretsKey {
    key: LessSafeKey,
    id: String,
    /// What [`SecretsKey::derive`] derives from.
    material: [u8; 32],
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("it was sealed with key {0}, not this one")]
    OtherKey(String),
    #[error("it is damaged or belongs to another row")]
    Damaged,
}

const SEALED_PREFIX: &str = "enc1:";

impl SecretsKey {
    /// A key from its 64 hex characters.
    pub fn from_hex(hex: &str) -> Result<SecretsKey, String> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a secrets key is 64 hex characters (32 bytes; `mcp-gateway secrets generate-key`)".into());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        let id = Sha256::new().chain_update(b"mcp-gateway secrets key id\0").chain_update(bytes).finalize();
        let id = id[..6].iter().map(|b| format!("{b:02x}")).collect();
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes are an AES-256 key"));
        Ok(SecretsKey { key, id, material: bytes })
    }

    /// Key material for one purpose (e.g. sealing the gateway's round states), the same on every instance
    /// that has this key and unrelated to the key itself or to any other purpose's.
    pub fn derive(&self, purpose: &str) -> String {
        let digest = Sha256::new()
            .chain_update(b"mcp-gateway derived key\0")
            .chain_update(purpose.as_bytes())
            .chain_update([0u8])
            .chain_update(self.material)
            .finalize();
        URL_SAFE_NO_PAD.encode(digest)
    }

    /// 32 fresh random bytes as 64 hex characters.
    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A short public name of the key (12 hex characters of a digest), to say which key sealed what.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for the row `context` names.
    pub fn seal(&self, context: &str, plain: &str) -> String {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut in_out = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut in_out)
            .expect("AES-GCM sealing cannot fail below its size limit");
        let mut sealed = nonce.to_vec();
        sealed.extend(in_out);
        format!("{SEALED_PREFIX}{}:{}", self.id, URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Opens what [`SecretsKey::seal`] sealed for the same context.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        let Some((id, body)) = sealed.strip_prefix(SEALED_PREFIX).and_then(|rest| rest.split_once(':')) else {
            return Err(SealError::Damaged);
        };
        if id != self.id {
            return Err(SealError::OtherKey(id.to_owned()));
        }
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| SealError::Damaged)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| SealError::Damaged)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Damaged)
    }

    /// Whether a stored value is sealed (older rows hold plaintext until they are sealed on start).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(SEALED_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_in_its_row() {
        let key = SecretsKey::from_hex(&SecretsKey::generate_hex()).unwrap();
        let other = SecretsKey::from_hex(&SecretsKey::generate_hex()).unwrap();
        let sealed = key.seal("upstream:files:headers", "X-API-Key: k-1");
        assert!(SecretsKey::is_sealed(&sealed) && !sealed.contains("k-1"));
        assert_eq!(key.open("upstream:files:headers", &sealed).unwrap(), "X-API-Key: k-1");
        assert_ne!(sealed, key.seal("upstream:files:headers", "X-API-Key: k-1"), "a fresh nonce each time");
        assert_eq!(key.open("upstream:other:headers", &sealed), Err(SealError::Damaged), "bound to its row");
        assert_eq!(other.open("upstream:files:headers", &sealed), Err(SealError::OtherKey(key.id().to_owned())));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open("upstream:files:headers", &String::from_utf8(flipped).unwrap()), Err(SealError::Damaged));
        assert!(SecretsKey::from_hex("00").is_err() && SecretsKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[tokio::test]
    async fn hashes_verify_only_their_secret() {
        let h = Passwords::new(PasswordHashCost::Low);
        let stored = h.hash("correct horse").await;
        assert!(stored.starts_with("$argon2id$") && is_argon2_hash(&stored));
        let verify = |secret: &'static str, stored: String| {
            let h = h.clone();
            async move { h.verify_limited(secret, Some(&stored), || true, || {}).await }
        };
        assert_eq!(verify("correct horse", stored.clone()).await, Some(true));
        assert_eq!(verify("wrong horse", stored.clone()).await, Some(false));
        assert_eq!(verify("correct horse", "not a hash".into()).await, Some(false));
        assert_eq!(h.verify_limited("correct horse", Some(&stored), || false, || {}).await, None, "refused");
        assert_eq!(h.hash_limited("x", || false).await, None);
        assert!(h.hash_limited("x", || true).await.is_some_and(|s| is_argon2_hash(&s)));
    }

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_material_and_purpose() {
        let sealed = seal_for("refresh-successor", "old-token", "new-token");
        assert_eq!(open_for("refresh-successor", "old-token", &sealed).as_deref(), Some("new-token"));
        assert_eq!(open_for("refresh-successor", "other-token", &sealed), None);
        assert_eq!(open_for("other-purpose", "old-token", &sealed), None);
        assert_ne!(sealed, seal_for("refresh-successor", "old-token", "new-token"), "fresh nonce each time");
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open_for("refresh-successor", "old-token", &String::from_utf8(tampered).unwrap()), None);
    }

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(sha256_hex("abc").len(), 64);
        assert!(matches_sha256("abc", &sha256_hex("abc")) && !matches_sha256("abd", &sha256_hex("abc")));
    }
}
