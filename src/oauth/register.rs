//! Dynamic client registration (RFC 7591), also used by the CLI for operator-registered clients.
use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client_auth::{self, METHODS};
use super::redirect_uri::RedirectUri;
use super::scope::Scope;
use crate::crypto::{now, random_token};
use crate::error::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::store::client;

const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token"];
const MAX_REDIRECT_URIS: usize = 20;
const MAX_TEXT: usize = 2000;

/// Client metadata (RFC 7591 §2). Unknown members are ignored, as §2 requires.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Redirect URIs: https, loopback http (any port at use, RFC 8252), or a private-use scheme.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    /// `none` (public client), `client_secret_basic` (default) or `client_secret_post`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// `authorization_code` (default) and optionally `refresh_token`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// Only `code`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// Shown to people on the consent page.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Space-separated scopes the client may ask for (default: all supported).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// `web` (default) or `native` (OpenID Connect Dynamic Client Registration).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
}

/// The client information response (RFC 7591 §3.2.1): the identifiers plus the registered metadata.
#[derive(Debug, Object)]
pub struct ClientInformation {
    pub client_id: String,
    /// Shown once; only its argon2 hash is stored.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret_expires_at: Option<i64>,
    #[oai(flatten)]
    pub metadata: ClientMetadata,
}

/// Where a registration came from: shown as "unverified" on the consent page unless an operator made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationSource {
    Dynamic,
    Operator,
}

impl RegistrationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationSource::Dynamic => "dynamic",
            RegistrationSource::Operator => "operator",
        }
    }
}

fn metadata_error(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// Validates the metadata (RFC 7591 §2, §3.2.2), fills in the defaults, stores the client and returns
/// what the client must be told. The secret, if any, exists in clear only in this return value.
pub async fn register_client(
    state: &AppState,
    requested: ClientMetadata,
    source: RegistrationSource,
) -> Result<ClientInformation, OAuthError> {
    let metadata = normalize(requested)?;
    let confidential = metadata.token_endpoint_auth_method.as_deref() != Some(client_auth::NONE);
    let secret = confidential.then(random_token);
    let client_id = uuid::Uuid::new_v4().to_string();
    let issued_at = now();
    let secret_hash = match &secret {
        Some(s) => Some(state.passwords.hash(s).await),
        None => None,
    };
    let model = client::Model {
        client_id: client_id.clone(),
        secret_hash,
        name: metadata.client_name.clone().unwrap_or_default(),
        redirect_uris: serde_json::to_string(metadata.redirect_uris.as_deref().unwrap_or_default())
            .map_err(OAuthError::internal)?,
        grant_types: metadata.grant_types.as_deref().unwrap_or_default().join(" "),
        response_types: metadata.response_types.as_deref().unwrap_or_default().join(" "),
        token_endpoint_auth_method: metadata.token_endpoint_auth_method.clone().unwrap_or_default(),
        scope: metadata.scope.clone().unwrap_or_default(),
        application_type: metadata.application_type.clone().unwrap_or_default(),
        metadata: serde_json::to_string(&metadata).map_err(OAuthError::internal)?,
        registration_source: source.as_str().into(),
        owner_user_id: None,
        registration_access_token_hash: None,
        metadata_url: None,
        disabled: false,
        created_at: issued_at,
        expires_at: None,
    };
    state.store.insert_client(model).await?;
    tracing::info!(%client_id, source = source.as_str(), "client registered");
    Ok(ClientInformation {
        client_id,
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: issued_at,
        metadata,
    })
}

fn normalize(mut m: ClientMetadata) -> Result<ClientMetadata, OAuthError> {
    let redirect_uris = m.redirect_uris.take().unwrap_or_default();
    if redirect_uris.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            "redirect_uris must list at least one redirect URI",
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("at most {MAX_REDIRECT_URIS} redirect URIs"),
        ));
    }
    for uri in &redirect_uris {
        RedirectUri::parse(uri).map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, e))?;
    }
    m.redirect_uris = Some(redirect_uris);

    let method = m.token_endpoint_auth_method.take().unwrap_or_else(|| client_auth::CLIENT_SECRET_BASIC.into());
    if !METHODS.contains(&method.as_str()) {
        return Err(metadata_error(format!("token_endpoint_auth_method must be one of {}", METHODS.join(", "))));
    }
    m.token_endpoint_auth_method = Some(method);

    let grant_types = m.grant_types.take().unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(bad) = grant_types.iter().find(|g| !GRANT_TYPES.contains(&g.as_str())) {
        return Err(metadata_error(format!("grant type '{}' is not supported", bad.escape_default())));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(metadata_error("grant_types must include authorization_code"));
    }
    let mut grant_types: Vec<String> =
        GRANT_TYPES.iter().filter(|g| grant_types.iter().any(|x| x == *g)).map(|g| (*g).into()).collect();
    grant_types.dedup();
    m.grant_types = Some(grant_types);

    let response_types = m.response_types.take().unwrap_or_else(|| vec!["code".into()]);
    if response_types.iter().any(|r| r != "code") || response_types.is_empty() {
        return Err(metadata_error("response_types must be [\"code\"]"));
    }
    m.response_types = Some(vec!["code".into()]);

    let scope = match m.scope.take().filter(|s| !s.trim().is_empty()) {
        None => Scope::all(),
        Some(s) => Scope::parse(&s).map_err(metadata_error)?,
    };
    m.scope = Some(scope.to_string());

    m.application_type = Some(match m.application_type.take().as_deref() {
        None | Some("web") => "web".into(),
        Some("native") => "native".into(),
        Some(_) => return Err(metadata_error("application_type must be web or native")),
    });

    for (field, value) in [
        ("client_uri", &m.client_uri),
        ("logo_uri", &m.logo_uri),
        ("tos_uri", &m.tos_uri),
        ("policy_uri", &m.policy_uri),
    ] {
        if let Some(v) = value {
            let ok = v.len() <= MAX_TEXT
                && Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some());
            if !ok {
                return Err(metadata_error(format!("{field} must be an http(s) URL")));
            }
        }
    }
    for (field, value) in
        [("client_name", &m.client_name), ("software_id", &m.software_id), ("software_version", &m.software_version)]
    {
        if value.as_ref().is_some_and(|v| v.len() > 200 || v.chars().any(is_invisible)) {
            return Err(metadata_error(format!("{field} must be at most 200 printable characters")));
        }
    }
    if m.contacts.as_ref().is_some_and(|c| c.len() > 20 || c.iter().any(|x| x.len() > 320)) {
        return Err(metadata_error("contacts: at most 20 addresses"));
    }
    m.client_name = m.client_name.filter(|n| !n.trim().is_empty());
    Ok(m)
}

/// Control characters and the invisible formatting characters (bidirectional overrides, zero-width
/// characters) that could make a name on the consent page read as something else.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The redirect URIs a client registered.
pub fn registered_redirect_uris(client: &client::Model) -> Vec<RedirectUri> {
    serde_json::from_str::<Vec<String>>(&client.redirect_uris)
        .unwrap_or_default()
        .iter()
        .filter_map(|u| RedirectUri::parse(u).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_uris(uris: &[&str]) -> ClientMetadata {
        ClientMetadata { redirect_uris: Some(uris.iter().map(|u| (*u).into()).collect()), ..Default::default() }
    }

    #[test]
    fn defaults_follow_rfc_7591() {
        let m = normalize(with_uris(&["https://app.example/cb"])).unwrap();
        assert_eq!(m.token_endpoint_auth_method.as_deref(), Some("client_secret_basic"));
        assert_eq!(m.grant_types, Some(vec!["authorization_code".into()]));
        assert_eq!(m.response_types, Some(vec!["code".into()]));
        assert_eq!(m.scope.as_deref(), Some("mcp:read mcp:write"));
    }

    #[test]
    fn bad_metadata_gets_the_rfc_error_code() {
        assert_eq!(normalize(with_uris(&[])).unwrap_err().code, ErrorCode::InvalidRedirectUri);
        assert_eq!(normalize(with_uris(&["javascript:alert(1)"])).unwrap_err().code, ErrorCode::InvalidRedirectUri);
        let implicit =
            ClientMetadata { grant_types: Some(vec!["implicit".into()]), ..with_uris(&["https://a.example/cb"]) };
        assert_eq!(normalize(implicit).unwrap_err().code, ErrorCode::InvalidClientMetadata);
        let method = ClientMetadata {
            token_endpoint_auth_method: Some("private_key_jwt".into()),
            ..with_uris(&["https://a.example/cb"])
        };
        assert_eq!(normalize(method).unwrap_err().code, ErrorCode::InvalidClientMetadata);
        let spoof =
            ClientMetadata { client_name: Some("Claude\u{202E}resu".into()), ..with_uris(&["https://a.example/cb"]) };
        assert_eq!(normalize(spoof).unwrap_err().code, ErrorCode::InvalidClientMetadata);
    }
}
