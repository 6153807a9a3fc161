//! The public keys a `private_key_jwt` client (RFC 7523 §2.2) signs its assertions with: its registered
//! `jwks`, or what its `jwks_uri` serves. Only public signature keys of the pinned algorithms are accepted;
//! a symmetric (`oct`) key, a private key or another curve is refused, so no key can be guessed or shared.
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The algorithms a client assertion may be signed with (advertised in the AS metadata).
pub const ASSERTION_ALGORITHMS: [&str; 3] = ["ES256", "RS256", "EdDSA"];
/// Most keys one client may register or serve.
const MAX_KEYS: usize = 10;
/// Members that only a private key has (RFC 7517 §9.2 / RFC 7518 §6): a set holding one was a mistake.
const PRIVATE_MEMBERS: [&str; 6] = ["d", "p", "q", "dp", "dq", "qi"];

/// A client's keys, checked.
#[derive(Debug, Clone)]
pub struct ClientKeys(Vec<Jwk>);

impl ClientKeys {
    /// Parses and checks a JWK Set (RFC 7517 §5): 1 to 10 public EC P-256, RSA (2048 bits or more) or
    /// Ed25519 keys, none holding private members.
    pub fn parse(value: &Value) -> Result<ClientKeys, String> {
        let keys = value.get("keys").and_then(Value::as_array).ok_or("jwks must be a JWK Set: {\"keys\": [...]}")?;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(format!("jwks must hold 1 to {MAX_KEYS} keys"));
        }
        if keys.iter().any(|k| PRIVATE_MEMBERS.iter().any(|m| k.get(m).is_some())) {
            return Err("jwks holds a private key: register only the public keys".into());
        }
        let set: JwkSet = serde_json::from_value(value.clone()).map_err(|_| "jwks holds a key that cannot be read")?;
        for jwk in &set.keys {
            check_key(jwk)?;
        }
        Ok(ClientKeys(set.keys))
    }

    /// The usable public signature keys of a set an identity provider publishes (it may list encryption or
    /// other keys beside them, which are skipped), at most `max`; an error when none is usable.
    pub fn parse_usable(value: &serde_json::Value, max: usize) -> Result<ClientKeys, String> {
        let keys = value.get("keys").and_then(Value::as_array).ok_or("not a JWK Set")?;
        let usable: Vec<Jwk> = keys
            .iter()
            .filter(|k| PRIVATE_MEMBERS.iter().all(|m| k.get(m).is_none()))
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|jwk| check_key(jwk).is_ok())
            .take(max)
            .collect();
        if usable.is_empty() { Err("the key set holds no usable signature key".into()) } else { Ok(ClientKeys(usable)) }
    }

    /// The keys that may have signed an assertion with this header: those of its `kid` (all, when it names
    /// none) whose type fits `alg` and whose own `alg`, if any, is `alg`.
    pub fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<DecodingKey> {
        self.0
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .filter(|k| fits(k, alg))
            .filter_map(|k| DecodingKey::from_jwk(k).ok())
            .collect()
    }

    /// Whether a key has this id (an unknown one may mean the client rotated: fetch its `jwks_uri` again).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.0.iter().any(|k| k.common.key_id.as_deref() == Some(kid))
    }
}

/// The assertion algorithm named by a JWT header, if it is one we accept.
pub fn assertion_algorithm(alg: Algorithm) -> Option<Algorithm> {
    matches!(alg, Algorithm::ES256 | Algorithm::RS256 | Algorithm::EdDSA).then_some(alg)
}

fn check_key(jwk: &Jwk) -> Result<(), String> {
    let coordinate = |c: &str| URL_SAFE_NO_PAD.decode(c).is_ok_and(|b| b.len() == 32);
    let usable = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            ec.curve == EllipticCurve::P256 && coordinate(&ec.x) && coordinate(&ec.y)
        }
        AlgorithmParameters::OctetKeyPair(okp) => okp.curve == EllipticCurve::Ed25519 && coordinate(&okp.x),
        // 2048 bits: a modulus of at least 256 bytes, 342 base64url characters.
        AlgorithmParameters::RSA(rsa) => rsa.n.trim_end_matches('=').len() >= 342,
        _ => false,
    };
    let declared_ok = match &jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::ES256 | KeyAlgorithm::RS256 | KeyAlgorithm::EdDSA) => true,
        Some(_) => false,
    };
    // A key for encryption, or one whose operations leave out verifying, is not a signing key.
    let for_signatures = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_)))
        && jwk.common.key_operations.as_ref().is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    if !usable || !declared_ok || !for_signatures || DecodingKey::from_jwk(jwk).is_err() {
        return Err(format!(
            "jwks: every key must be a public EC P-256, RSA (2048 bits or more) or Ed25519 signature key for {}",
            ASSERTION_ALGORITHMS.join(", ")
        ));
    }
    Ok(())
}

fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let by_type = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::OctetKeyPair(okp), Algorithm::EdDSA) => okp.curve == EllipticCurve::Ed25519,
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        _ => false,
    };
    let declared = matches!(
        (&jwk.common.key_algorithm, alg),
        (None, _)
            | (Some(KeyAlgorithm::ES256), Algorithm::ES256)
            | (Some(KeyAlgorithm::RS256), Algorithm::RS256)
            | (Some(KeyAlgorithm::EdDSA), Algorithm::EdDSA)
    );
    by_type && declared
}

/// Key sets fetched from URLs (a client's `jwks_uri`, an identity provider's keys), shared by every request.
/// A set is used while fresh; one that lacks the key id asked for is fetched again early (the owner rotated),
/// and a URL is fetched or tried at most once per [`KeyCache::REFETCH_AFTER`], so neither an unknown key id
/// nor a failing URL causes a fetch on every request. At most [`KeyCache::ENTRIES`] sets are kept.
#[derive(Clone, Default)]
pub struct KeyCache(Arc<Mutex<KeyCacheState>>);

#[derive(Default)]
struct KeyCacheState {
    sets: HashMap<String, FetchedSet>,
    attempts: HashMap<String, Instant>,
}

#[derive(Clone)]
struct FetchedSet {
    keys: ClientKeys,
    at: Instant,
    fresh_for: Duration,
}

impl KeyCache {
    pub const REFETCH_AFTER: Duration = Duration::from_secs(60);
    pub const ENTRIES: usize = 1000;

    /// The keys stored under `key`: the cached set when fresh (and holding `kid`, or fetched less than a
    /// minute ago), else what `fetch` brings (the set and how long it stays fresh), if a fetch is due. When
    /// none is due or it fails, a cached set within its freshness plus `grace` still serves.
    pub async fn get<F>(&self, key: &str, kid: Option<&str>, grace: Duration, fetch: F) -> Option<ClientKeys>
    where
        F: Future<Output = Option<(ClientKeys, Duration)>>,
    {
        let fallback = {
            let mut state = self.0.lock().expect("key cache lock");
            let cached = state.sets.get(key).cloned();
            if let Some(c) = &cached {
                let age = c.at.elapsed();
                let lacks_kid = kid.is_some_and(|k| !c.keys.has_kid(k));
                if age < c.fresh_for && !(lacks_kid && age >= Self::REFETCH_AFTER) {
                    return Some(c.keys.clone());
                }
            }
            let fallback = cached.filter(|c| c.at.elapsed() < c.fresh_for + grace).map(|c| c.keys);
            if state.attempts.get(key).is_some_and(|at| at.elapsed() < Self::REFETCH_AFTER) {
                return fallback;
            }
            if state.attempts.len() >= Self::ENTRIES {
                state.attempts.retain(|_, at| at.elapsed() < Self::REFETCH_AFTER);
            }
            state.attempts.insert(key.to_owned(), Instant::now());
            fallback
        };
        let Some((keys, fresh_for)) = fetch.await else { return fallback };
        let mut state = self.0.lock().expect("key cache lock");
        if state.sets.len() >= Self::ENTRIES {
            state.sets.retain(|_, c| c.at.elapsed() < c.fresh_for);
        }
        while state.sets.len() >= Self::ENTRIES {
            let Some(oldest) = state.sets.iter().min_by_key(|(_, c)| c.at).map(|(k, _)| k.clone()) else { break };
            state.sets.remove(&oldest);
        }
        state.sets.insert(key.to_owned(), FetchedSet { keys: keys.clone(), at: Instant::now(), fresh_for });
        Some(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EC: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn only_public_signature_keys_of_the_pinned_kinds_are_taken() {
        let ec = json!({"kty": "EC", "crv": "P-256", "x": EC, "y": EC_Y, "kid": "a"});
        let keys = ClientKeys::parse(&json!({"keys": [ec.clone()]})).unwrap();
        assert_eq!(keys.candidates(Algorithm::ES256, Some("a")).len(), 1);
        assert!(keys.candidates(Algorithm::ES256, Some("b")).is_empty());
        assert!(keys.candidates(Algorithm::RS256, None).is_empty(), "an EC key never checks RS256");
        assert!(keys.candidates(Algorithm::HS256, None).is_empty());

        let mut private = ec.clone();
        private["d"] = json!("secret");
        for bad in [
            json!({"keys": []}),
            json!([ec]),
            json!({"keys": [private]}),
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-384", "x": EC, "y": EC_Y}]}),
            json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC, "y": EC_Y, "alg": "HS256"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC, "y": EC_Y, "use": "enc"}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": EC, "y": EC_Y, "key_ops": ["encrypt"]}]}),
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": EC_Y}]}),
        ] {
            assert!(ClientKeys::parse(&bad).is_err(), "{bad}");
        }
        assert!(assertion_algorithm(Algorithm::HS256).is_none());
        assert!(assertion_algorithm(Algorithm::PS256).is_none());
    }
}
