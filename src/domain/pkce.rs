//! Proof Key for Code Exchange (RFC 7636), S256 only as OAuth 2.1 and the MCP specification require.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An S256 code challenge: base64url (no padding) of a SHA-256 digest, so exactly 43 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses `code_challenge` and `code_challenge_method` from an authorization request (RFC 7636 §4.3).
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<CodeChallenge, &'static str> {
        let challenge = challenge.ok_or("code_challenge is required (PKCE with S256)")?;
        match method {
            Some("S256") => {}
            None => return Err("code_challenge_method is required and must be S256"),
            Some("plain") => return Err("code_challenge_method plain is not allowed; use S256"),
            Some(_) => return Err("code_challenge_method must be S256"),
        }
        let decodes_to_digest = URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|d| d.len() == 32);
        if challenge.len() != 43 || !decodes_to_digest {
            return Err("code_challenge must be the base64url SHA-256 of the verifier (43 characters)");
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// Rebuilds a challenge stored by this server.
    pub fn from_stored(value: String) -> CodeChallenge {
        CodeChallenge(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.6: the verifier is well formed and hashes to the challenge.
    pub fn is_satisfied_by(&self, verifier: &str) -> bool {
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        is_well_formed_verifier(verifier) && bool::from(computed.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// RFC 7636 §4.1: a verifier is 43–128 characters of `[A-Za-z0-9-._~]`.
pub fn is_well_formed_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_example_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert!(c.is_satisfied_by(VERIFIER));
        assert!(!c.is_satisfied_by(&VERIFIER.replace('d', "e")));
    }

    #[test]
    fn plain_missing_and_unknown_methods_are_rejected() {
        assert!(CodeChallenge::parse(Some(CHALLENGE), Some("plain")).is_err());
        assert!(CodeChallenge::parse(Some(CHALLENGE), None).is_err());
        assert!(CodeChallenge::parse(Some(CHALLENGE), Some("s256")).is_err());
        assert!(CodeChallenge::parse(None, Some("S256")).is_err());
        assert!(CodeChallenge::parse(Some("short"), Some("S256")).is_err());
    }

    #[test]
    fn verifiers_of_wrong_length_or_charset_fail() {
        let short = "abc";
        let c = CodeChallenge::parse(Some(&URL_SAFE_NO_PAD.encode(Sha256::digest(short))), Some("S256")).unwrap();
        assert!(!c.is_satisfied_by(short));
        let spaced = "a ".repeat(30);
        let c = CodeChallenge::parse(Some(&URL_SAFE_NO_PAD.encode(Sha256::digest(&spaced))), Some("S256")).unwrap();
        assert!(!c.is_satisfied_by(&spaced));
    }
}
