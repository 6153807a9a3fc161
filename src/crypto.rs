//! The few primitives every secret goes through: random tokens, SHA-256 digests for high-entropy
//! secrets (codes, refresh tokens, session ids) and argon2id for passwords and client secrets.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::PasswordHashCost;

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

/// base64url SHA-256, used to derive values (such as CSRF tokens) from a secret without storing them.
pub fn sha256_b64(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
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
        self.blocking(move |argon2| {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt length");
            argon2
                .hash_password(secret.as_bytes(), &salt)
                .expect("hashing with valid parameters cannot fail")
                .to_string()
        })
        .await
    }

    /// Constant-time verification (inside argon2); a malformed stored hash simply does not verify.
    pub async fn verify(&self, secret: &str, stored: &str) -> bool {
        let (secret, stored) = (secret.to_owned(), stored.to_owned());
        self.blocking(move |argon2| {
            PasswordHash::new(&stored).is_ok_and(|h| argon2.verify_password(secret.as_bytes(), &h).is_ok())
        })
        .await
    }

    /// Spends the time of a verification, so an unknown username or client is not told apart by timing.
    pub async fn verify_dummy(&self, secret: &str) {
        static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let dummy = DUMMY.get_or_init(|| self.hash("timing-equaliser")).await;
        let _ = self.verify(secret, dummy).await;
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce(&Argon2<'static>) -> T + Send + 'static) -> T {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || work(&argon2)).await.expect("password hashing does not panic")
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_secret() {
        let h = Passwords::new(PasswordHashCost::Low);
        let stored = h.hash("correct horse").await;
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("correct horse", &stored).await);
        assert!(!h.verify("wrong horse", &stored).await);
        assert!(!h.verify("correct horse", "not a hash").await);
    }

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
