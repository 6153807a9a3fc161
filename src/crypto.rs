//! The few primitives every secret goes through: random tokens, SHA-256 digests for high-entropy
//! secrets (codes, refresh tokens, session ids) and argon2id for passwords and client secrets.
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

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
#[derive(Clone)]
pub struct PasswordHasherConfig {
    argon2: Argon2<'static>,
}

impl PasswordHasherConfig {
    pub fn new(cost: PasswordHashCost) -> PasswordHasherConfig {
        let params = match cost {
            PasswordHashCost::Default => Params::new(19 * 1024, 2, 1, None),
            PasswordHashCost::Low => Params::new(1024, 1, 1, None),
        }
        .expect("argon2 parameters are constants within the library's bounds");
        PasswordHasherConfig {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        }
    }

    pub fn hash(&self, secret: &str) -> String {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .expect("16 bytes is a valid salt length");
        self.argon2
            .hash_password(secret.as_bytes(), &salt)
            .expect("hashing with valid parameters and salt cannot fail")
            .to_string()
    }

    /// Constant-time verification (inside argon2); a malformed stored hash simply does not verify.
    pub fn verify(&self, secret: &str, stored: &str) -> bool {
        PasswordHash::new(stored)
            .is_ok_and(|h| self.argon2.verify_password(secret.as_bytes(), &h).is_ok())
    }

    /// Burns the same time as a verification, so an unknown username is not told apart by timing.
    pub fn verify_dummy(&self, secret: &str) {
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| self.hash("timing-equaliser"));
        let _ = self.verify(secret, dummy);
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_secret() {
        let h = PasswordHasherConfig::new(PasswordHashCost::Low);
        let stored = h.hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("correct horse", &stored));
        assert!(!h.verify("wrong horse", &stored));
        assert!(!h.verify("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
