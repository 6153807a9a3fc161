//! Client authentication at the token, revocation and introspection endpoints (RFC 6749 §2.3.1):
//! `client_secret_basic`, `client_secret_post`, or `none` for public clients. Exactly one method per
//! request, and it must be the one the client registered.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::store::client;

pub const NONE: &str = "none";
pub const CLIENT_SECRET_BASIC: &str = "client_secret_basic";
pub const CLIENT_SECRET_POST: &str = "client_secret_post";
pub const METHODS: &[&str] = &[NONE, CLIENT_SECRET_BASIC, CLIENT_SECRET_POST];

const BASIC_CHALLENGE: &str = r#"Basic realm="mcp-gateway", charset="UTF-8""#;

/// What the request presented: the client id, and the secret with the method used to send it.
#[derive(Debug)]
pub struct PresentedClient {
    pub client_id: String,
    secret: Option<String>,
    method: &'static str,
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
            return Ok(PresentedClient { client_id: id, secret: Some(secret), method: CLIENT_SECRET_BASIC });
        }
        let client_id = body_client_id
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidClient, "client authentication is required"))?;
        Ok(match body_secret {
            Some(secret) => PresentedClient {
                client_id: client_id.to_owned(),
                secret: Some(secret.to_owned()),
                method: CLIENT_SECRET_POST,
            },
            None => PresentedClient { client_id: client_id.to_owned(), secret: None, method: NONE },
        })
    }

    /// Checks the credentials against the registered client.
    pub async fn authenticate(&self, state: &AppState) -> Result<client::Model, OAuthError> {
        let failure = || {
            if self.method == CLIENT_SECRET_BASIC {
                basic_failure("client authentication failed")
            } else {
                OAuthError::new(ErrorCode::InvalidClient, "client authentication failed")
            }
        };
        let Some(client) = state.store.find_client(&self.client_id).await? else {
            if let Some(secret) = &self.secret {
                state.passwords.verify_dummy(secret).await;
            }
            return Err(failure());
        };
        if client.token_endpoint_auth_method != self.method {
            return Err(failure());
        }
        let verified = match (&client.secret_hash, &self.secret) {
            (None, None) => true,
            (Some(hash), Some(secret)) => state.passwords.verify(secret, hash).await,
            _ => false,
        };
        if verified { Ok(client) } else { Err(failure()) }
    }
}

pub fn is_confidential(client: &client::Model) -> bool {
    client.token_endpoint_auth_method != NONE
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
