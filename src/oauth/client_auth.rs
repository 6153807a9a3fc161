//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3.1):
//! `client_secret_basic`, `client_secret_post`, `private_key_jwt` (RFC 7523 §2.2), or `none` for public
//! clients. Exactly one method per request, and it must be the one the client registered.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::Validation;
use serde::Deserialize;

use super::error::{ErrorCode, OAuthError};
use super::metadata_document::MetadataDocuments;
use crate::clock::UnixTime;
use crate::crypto::{Passwords, is_argon2_hash, matches_sha256, sha256_hex};
use crate::domain::client::{AuthMethod, Client};
use crate::domain::client_keys::{ClientKeys, KeyCache, assertion_algorithm};
use crate::domain::registration::ClientMetadata;
use crate::limits::{Limits, RetryAfter};
use crate::store::Store;

/// RFC 7523 §2.2: the only `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest an assertion may live from now: it is meant for one request.
const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Clock skew tolerated on an assertion's `exp`, `nbf` and `iat`.
const ASSERTION_LEEWAY: i64 = 10;
/// A fetched `jwks_uri` is used at least a minute and at most this long, per its Cache-Control (see
/// [`KeyCache`] for early refetches and the size bound).
const JWKS_MAX_CACHE: Duration = Duration::from_secs(3600);

/// What the form carried to authenticate the client (beside the `Authorization` header).
#[derive(Debug, Default, Clone, Copy)]
pub struct FormCredentials<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
    pub client_assertion_type: Option<&'a str>,
    pub client_assertion: Option<&'a str>,
}

const BASIC_CHALLENGE: &str = r#"Basic realm="mcp-gateway", charset="UTF-8""#;

/// What the request presented: the client id, and the secret with the method used to send it.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    secret: Option<String>,
    /// A `private_key_jwt` assertion, not yet verified.
    assertion: Option<String>,
    method: AuthMethod,
}

/// Checks presented client credentials against the registered clients, under the failure limits.
#[derive(Clone)]
pub struct ClientAuthenticator {
    store: Store,
    limits: Arc<Limits>,
    /// Only for client secrets stored as argon2 hashes by an older version.
    passwords: Passwords,
    /// Fetches `jwks_uri` documents under the metadata-document rules.
    documents: MetadataDocuments,
    /// What an assertion's `aud` may be: the issuer or the token endpoint.
    audiences: Vec<String>,
    /// Fetched `jwks_uri` key sets, by URL.
    jwks: KeyCache,
}

/// The claims of a client assertion this server reads beyond what `jsonwebtoken` validates.
#[derive(Deserialize)]
struct AssertionClaims {
    exp: i64,
    iat: Option<i64>,
    jti: Option<String>,
    /// Checked by `jsonwebtoken`, and here to be one string: an array naming us among others is refused
    /// (an assertion meant for several servers could be replayed at each).
    aud: serde_json::Value,
    iss: serde_json::Value,
}

impl PresentedClient {
    /// Reads the credentials from the `Authorization` header and the form's `client_id`, `client_secret`,
    /// `client_assertion_type` and `client_assertion`.
    pub fn from_request(authorization: Option<&str>, form: FormCredentials<'_>) -> Result<PresentedClient, OAuthError> {
        let body_client_id = form.client_id.filter(|s| !s.is_empty());
        let body_secret = form.client_secret.filter(|s| !s.is_empty());
        let assertion = form.client_assertion.filter(|s| !s.is_empty());
        let assertion_type = form.client_assertion_type.filter(|s| !s.is_empty());
        if assertion.is_some() || assertion_type.is_some() {
            if authorization.is_some() || body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: a client assertion and a secret were both sent",
                ));
            }
            if assertion_type != Some(ASSERTION_TYPE) {
                return Err(OAuthError::invalid_request(format!("client_assertion_type must be {ASSERTION_TYPE}")));
            }
            let assertion = assertion.ok_or_else(|| OAuthError::invalid_request("client_assertion is missing"))?;
            let subject = unverified_subject(assertion)
                .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "the client assertion cannot be read"))?;
            if body_client_id.is_some_and(|b| b != subject) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidClient,
                    "client_id differs from the client assertion's subject",
                ));
            }
            return Ok(PresentedClient {
                client_id: subject,
                secret: None,
                assertion: Some(assertion.to_owned()),
                method: AuthMethod::PrivateKeyJwt,
            });
        }
        if let Some(header) = authorization {
            let (id, secret) = parse_basic(header).ok_or_else(|| basic_failure("malformed HTTP Basic credentials"))?;
            if body_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: the secret was sent in the header and the body",
                ));
            }
            if body_client_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request("client_id in the body differs from the authenticated client"));
            }
            return Ok(PresentedClient {
                client_id: id,
                secret: Some(secret),
                assertion: None,
                method: AuthMethod::ClientSecretBasic,
            });
        }
        let client_id = body_client_id
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "client authentication is required"))?;
        let method = if body_secret.is_some() { AuthMethod::ClientSecretPost } else { AuthMethod::None };
        Ok(PresentedClient {
            client_id: client_id.to_owned(),
            secret: body_secret.map(str::to_owned),
            assertion: None,
            method,
        })
    }
}

/// The `sub` of a JWT read without checking anything: only to find the client whose keys then verify it.
fn unverified_subject(assertion: &str) -> Option<String> {
    let mut parts = assertion.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims.get("sub")?.as_str().filter(|s| !s.is_empty() && s.len() <= 2000).map(str::to_owned)
}

impl ClientAuthenticator {
    pub fn new(
        store: Store,
        limits: Arc<Limits>,
        passwords: Passwords,
        documents: MetadataDocuments,
        issuer: &str,
    ) -> ClientAuthenticator {
        let audiences = vec![issuer.to_owned(), format!("{issuer}/oauth/token")];
        ClientAuthenticator { store, limits, passwords, documents, audiences, jwks: KeyCache::default() }
    }

    /// A usable client (registered, enabled, not expired) by its id.
    pub async fn find(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        Ok(self.store.find_client(client_id).await?.and_then(Client::from_row))
    }

    /// Checks the credentials against the registered client, under the token endpoint's failure limits
    /// (see `Limits`): a blocked address is refused before anything is checked, and every failure counts
    /// against the address.
    pub async fn authenticate(&self, presented: &PresentedClient, ip: Option<IpAddr>) -> Result<Client, OAuthError> {
        let limits = &self.limits;
        limits.token_allowed(ip, &presented.client_id).map_err(OAuthError::too_many_requests)?;
        let failure = || {
            if presented.method == AuthMethod::ClientSecretBasic {
                basic_failure("client authentication failed")
            } else {
                OAuthError::new(ErrorCode::InvalidClient, "client authentication failed")
            }
        };
        let failed = || {
            limits.token_client_failed(ip);
            failure()
        };
        let Some(client) = self.find(&presented.client_id).await? else {
            return Err(failed());
        };
        if client.auth_method != presented.method {
            return Err(failed());
        }
        if let Some(assertion) = &presented.assertion {
            return match self.verify_assertion(&client, assertion, ip).await? {
                true => Ok(client),
                false => Err(failed()),
            };
        }
        let verified = match (&client.secret_hash, &presented.secret) {
            (None, None) => client.auth_method == AuthMethod::None,
            (Some(stored), Some(secret)) if is_argon2_hash(stored) => {
                // A secret stored before secrets were SHA-256 digests: argon2 once more, under the limit checked
                // again once a hashing slot is free, then stored as a digest.
                let checked = self
                    .passwords
                    .verify_limited(
                        secret,
                        Some(stored),
                        || limits.token_allowed(ip, &client.id).is_ok(),
                        || limits.token_client_failed(ip),
                    )
                    .await;
                match checked {
                    None => {
                        let retry = limits.token_allowed(ip, &client.id).err();
                        return Err(OAuthError::too_many_requests(retry.unwrap_or(RetryAfter(Duration::from_secs(1)))));
                    }
                    Some(false) => return Err(failure()),
                    Some(true) => {
                        self.store.upgrade_client_secret_hash(&client.id, stored, &sha256_hex(secret)).await?;
                        true
                    }
                }
            }
            (Some(stored), Some(secret)) => matches_sha256(secret, stored),
            _ => false,
        };
        if verified { Ok(client) } else { Err(failed()) }
    }

    /// RFC 7523 §3: signed by a key of the client's (its `jwks`, or its `jwks_uri` fetched now or cached) with
    /// a pinned algorithm; `iss` and `sub` the client; `aud` this issuer or its token endpoint; an `exp`
    /// at most five minutes ahead; a `jti` seen for the first time on any instance. `Ok(false)` for any
    /// failure (logged without the assertion); `Err` only when the database fails.
    async fn verify_assertion(&self, client: &Client, assertion: &str, ip: Option<IpAddr>) -> Result<bool, OAuthError> {
        let refuse = |why: &str| {
            tracing::info!(client_id = %client.id, why, "client assertion refused");
            Ok(false)
        };
        let Ok(header) = jsonwebtoken::decode_header(assertion) else { return refuse("malformed") };
        let Some(alg) = assertion_algorithm(header.alg) else { return refuse("algorithm not accepted") };
        let kid = header.kid.as_deref();
        let Some(keys) = self.client_keys(client, kid, ip).await else { return refuse("no usable keys") };
        let mut validation = Validation::new(alg);
        validation.leeway = ASSERTION_LEEWAY as u64;
        validation.validate_nbf = true;
        validation.set_issuer(&[&client.id]);
        validation.sub = Some(client.id.clone());
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let verified = keys
            .candidates(alg, kid)
            .iter()
            .find_map(|key| jsonwebtoken::decode::<AssertionClaims>(assertion, key, &validation).ok());
        let Some(claims) = verified.map(|d| d.claims) else { return refuse("signature, issuer, audience or expiry") };
        if !claims.aud.is_string() || !claims.iss.is_string() {
            return refuse("aud and iss must be single strings");
        }
        let now = UnixTime::now().seconds();
        if claims.exp > now + MAX_ASSERTION_LIFETIME + ASSERTION_LEEWAY {
            return refuse("exp is too far ahead");
        }
        if claims.iat.is_some_and(|iat| iat > now + ASSERTION_LEEWAY) {
            return refuse("issued in the future");
        }
        let Some(jti) = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256) else { return refuse("no jti") };
        let once = sha256_hex(&format!("{}\n{jti}", client.id));
        if !self.store.use_assertion(&once, UnixTime(claims.exp + ASSERTION_LEEWAY)).await? {
            tracing::warn!(client_id = %client.id, "client assertion replayed (its jti was used before)");
            return Ok(false);
        }
        Ok(true)
    }

    /// The keys of a `private_key_jwt` client: its registered `jwks`, or its `jwks_uri`'s, cached; fetched
    /// again when the cache is due, or early (at most once a minute) for a key id the cached set lacks.
    async fn client_keys(&self, client: &Client, kid: Option<&str>, ip: Option<IpAddr>) -> Option<ClientKeys> {
        let metadata: ClientMetadata = serde_json::from_str(&client.metadata).ok()?;
        if let Some(jwks) = &metadata.jwks {
            return ClientKeys::parse(jwks).ok();
        }
        let url = metadata.jwks_uri?;
        let fetch = async {
            match self.documents.fetch_json(&url, ip).await {
                Ok((body, cache_for)) => serde_json::from_slice(&body)
                    .ok()
                    .and_then(|v| ClientKeys::parse(&v).ok())
                    .map(|keys| (keys, cache_for.clamp(KeyCache::REFETCH_AFTER, JWKS_MAX_CACHE))),
                Err(e) => {
                    tracing::info!(client_id = %client.id, error = %e, "fetching the client's jwks_uri failed");
                    None
                }
            }
        };
        // A failed fetch leaves a still-fresh set in use, no longer.
        self.jwks.get(&url, kid, Duration::ZERO, fetch).await
    }

    /// An authenticated client presented a dead code or refresh token: counted against it at that address.
    pub fn grant_failed(&self, ip: Option<IpAddr>, client_id: &str) {
        self.limits.token_grant_failed(ip, client_id);
    }

    /// Whether `secret` is the client's current secret (a SHA-256 digest, or an argon2 hash from before,
    /// which is then replaced by the digest). For callers that already authenticated the request another way.
    pub async fn is_current_secret(&self, client: &Client, secret: &str) -> Result<bool, OAuthError> {
        match &client.secret_hash {
            None => Ok(false),
            Some(stored) if is_argon2_hash(stored) => {
                let matched = self.passwords.verify_limited(secret, Some(stored), || true, || {}).await == Some(true);
                if matched {
                    self.store.upgrade_client_secret_hash(&client.id, stored, &sha256_hex(secret)).await?;
                }
                Ok(matched)
            }
            Some(stored) => Ok(matches_sha256(secret, stored)),
        }
    }
}

fn basic_failure(description: &'static str) -> OAuthError {
    OAuthError {
        www_authenticate: Some(BASIC_CHALLENGE.into()),
        ..OAuthError::new(ErrorCode::InvalidClient, description)
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1 form-encodes both parts).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(value.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |s: &str| form_urlencoded_decode(s);
    let (id, secret) = (decode(id)?, decode(secret)?);
    (!id.is_empty()).then_some((id, secret))
}

fn form_urlencoded_decode(s: &str) -> Option<String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(&format!("v={}", s.replace('&', "%26").replace('=', "%3D"))).ok()?;
    pairs.into_iter().next().map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!("Basic {}", STANDARD.encode("my%20client:s%3Acret+x"));
        assert_eq!(parse_basic(&header), Some(("my client".into(), "s:cret x".into())));
        assert_eq!(parse_basic(&format!("basic {}", STANDARD.encode("a:b"))), Some(("a".into(), "b".into())));
    }

    #[test]
    fn malformed_basic_headers_are_rejected() {
        for bad in [
            "Basic",
            "Basic !!!",
            "Bearer abc",
            &format!("Basic {}", STANDARD.encode("no-colon")),
            &format!("Basic {}", STANDARD.encode(":secret")),
        ] {
            assert_eq!(parse_basic(bad), None, "{bad}");
        }
    }

    #[test]
    fn secret_in_header_and_body_is_refused() {
        let header = format!("Basic {}", STANDARD.encode("a:b"));
        let form = FormCredentials { client_secret: Some("b"), ..FormCredentials::default() };
        let err = PresentedClient::from_request(Some(&header), form).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn an_assertion_names_its_client_and_comes_alone() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"machine-1","iss":"machine-1"}"#);
        let assertion = format!("e30.{payload}.c2ln");
        let form = FormCredentials {
            client_assertion_type: Some(ASSERTION_TYPE),
            client_assertion: Some(&assertion),
            ..FormCredentials::default()
        };
        let presented = PresentedClient::from_request(None, form).unwrap();
        assert_eq!((presented.client_id.as_str(), presented.method), ("machine-1", AuthMethod::PrivateKeyJwt));
        let with_secret = FormCredentials { client_secret: Some("s"), ..form };
        assert_eq!(PresentedClient::from_request(None, with_secret).unwrap_err().code, ErrorCode::InvalidRequest);
        let other_type = FormCredentials { client_assertion_type: Some("urn:x"), ..form };
        assert_eq!(PresentedClient::from_request(None, other_type).unwrap_err().code, ErrorCode::InvalidRequest);
        let other_id = FormCredentials { client_id: Some("machine-2"), ..form };
        assert_eq!(PresentedClient::from_request(None, other_id).unwrap_err().code, ErrorCode::InvalidClient);
        let garbage = FormCredentials { client_assertion: Some("a.b"), ..form };
        assert_eq!(PresentedClient::from_request(None, garbage).unwrap_err().code, ErrorCode::InvalidClient);
    }
}
