//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3.1):
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients. Exactly one method per
//! request, and it must be the one the client registered.
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::{ErrorCode, OAuthError};
use crate::crypto::{Passwords, is_argon2_hash, matches_sha256, sha256_hex};
use crate::domain::client::{AuthMethod, Client};
use crate::limits::{Limits, RetryAfter};
use crate::store::Store;

const BASIC_CHALLENGE: &str = r#"Basic realm="mcp-gateway", charset="UTF-8""#;

/// What the request presented: the client id, and the secret with the method used to send it.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    secret: Option<String>,
    method: AuthMethod,
}

/// Checks presented client credentials against the registered clients, under the failure limits.
#[derive(Clone)]
pub struct ClientAuthenticator {
    store: Store,
    limits: Arc<Limits>,
    /// Only for client secrets stored as argon2 hashes by an older version.
    passwords: Passwords,
}

impl PresentedClient {
    /// Reads the credentials from the `Authorization` header and the form's `client_id`/`client_secret`.
    pub fn from_request(
        authorization: Option<&str>,
        body_client_id: Option<&str>,
        body_secret: Option<&str>,
    ) -> Result<PresentedClient, OAuthError> {
        let body_client_id = body_client_id.filter(|s| !s.is_empty());
        let body_secret = body_secret.filter(|s| !s.is_empty());
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
            return Ok(PresentedClient { client_id: id, secret: Some(secret), method: AuthMethod::ClientSecretBasic });
        }
        let client_id = body_client_id
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "client authentication is required"))?;
        let method = if body_secret.is_some() { AuthMethod::ClientSecretPost } else { AuthMethod::None };
        Ok(PresentedClient { client_id: client_id.to_owned(), secret: body_secret.map(str::to_owned), method })
    }
}

impl ClientAuthenticator {
    pub fn new(store: Store, limits: Arc<Limits>, passwords: Passwords) -> ClientAuthenticator {
        ClientAuthenticator { store, limits, passwords }
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
        let verified = match (&client.secret_hash, &presented.secret) {
            (None, None) => true,
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
        let err = PresentedClient::from_request(Some(&header), None, Some("b")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }
}
