//! Dynamic client registration (RFC 7591), also used by the CLI for operator-registered clients.
use std::net::IpAddr;

use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use url::Url;

use super::client_auth::{self, METHODS};
use super::redirect_uri::RedirectUri;
use super::scope::Scope;
use crate::crypto::{now, random_token, sha256_hex};
use crate::error::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditKind, ClientUpdate, client};

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

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): the identifiers plus the registered
/// metadata.
#[derive(Debug, Object)]
pub struct ClientInformation {
    pub client_id: String,
    /// Shown once; only its SHA-256 digest is stored.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret_expires_at: Option<i64>,
    /// Bearer token for `registration_client_uri` (RFC 7592). Shown once; only its SHA-256 is stored.
    #[oai(skip_serializing_if_is_none)]
    pub registration_access_token: Option<String>,
    /// Where the client reads, updates and deletes its registration (RFC 7592 §2).
    #[oai(skip_serializing_if_is_none)]
    pub registration_client_uri: Option<String>,
    #[oai(flatten)]
    pub metadata: ClientMetadata,
}

/// An RFC 7592 §2.2 update: the complete new metadata plus the client's identifier.
#[derive(Debug, Clone, Object)]
pub struct ClientUpdateRequest {
    /// Must equal the client_id in the URL.
    pub client_id: String,
    /// If present, must be the client's current secret; the secret itself never changes here.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
    #[oai(flatten)]
    pub metadata: ClientMetadata,
}

/// Where a registration came from: shown as "unverified" on the consent page unless an operator made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationSource {
    /// RFC 7591 at `/oauth/register`: anonymous, managed with its registration access token.
    Dynamic,
    /// A signed-in person on the "My apps" page: managed there by its owner.
    Owner,
    /// The CLI.
    Operator,
    /// A Client ID Metadata Document: the client_id is the document's https URL.
    MetadataDocument,
}

impl RegistrationSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationSource::Dynamic => "dynamic",
            RegistrationSource::Owner => "owner",
            RegistrationSource::Operator => "operator",
            RegistrationSource::MetadataDocument => "metadata_document",
        }
    }
}

/// Who is registering a client.
#[derive(Debug, Clone)]
pub struct Registrant {
    pub source: RegistrationSource,
    /// The signed-in person registering on the apps page.
    pub owner_user_id: Option<String>,
    /// The address an anonymous registration came from.
    pub ip: Option<IpAddr>,
}

impl Registrant {
    pub fn operator() -> Registrant {
        Registrant { source: RegistrationSource::Operator, owner_user_id: None, ip: None }
    }
}

/// How long a repeated anonymous registration is answered with the client it repeats.
const REPEAT_WINDOW_SECS: i64 = 3600;

fn metadata_error(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// The management URL of a client (RFC 7592 §2).
pub fn registration_client_uri(state: &AppState, client_id: &str) -> String {
    format!("{}/oauth/register/{client_id}", state.config.issuer)
}

/// Validates the metadata (RFC 7591 §2, §3.2.2), fills in the defaults, stores the client and returns
/// what the client must be told. The secret and the registration access token exist in clear only in
/// this return value.
///
/// A repeated anonymous registration (the same normalized metadata of a public client, from the same IP
/// address, within an hour, while the first client is still unused) returns the existing client instead
/// of adding a row. From then on nobody can manage that client with a registration access token: the
/// first registrant's token stops working, so whoever registered first cannot later redirect a client
/// that others now use.
pub async fn register_client(
    state: &AppState,
    requested: ClientMetadata,
    registrant: Registrant,
) -> Result<ClientInformation, OAuthError> {
    let metadata = normalize(requested)?;
    let confidential = metadata.token_endpoint_auth_method.as_deref() != Some(client_auth::NONE);
    let dynamic = registrant.source == RegistrationSource::Dynamic;
    let columns = stored_columns(&metadata).map_err(OAuthError::internal)?;
    let metadata_hash = dynamic.then(|| sha256_hex(&columns.metadata));
    let registered_from = registrant.ip.filter(|_| dynamic).map(|ip| ip.to_string());
    let issued_at = now();
    if let (Some(hash), Some(from), false) = (&metadata_hash, &registered_from, confidential)
        && let Some(existing) =
            state.store.find_repeated_registration(hash, from, issued_at - REPEAT_WINDOW_SECS).await?
    {
        state.store.forget_registration_access_token(&existing.client_id).await?;
        tracing::info!(client_id = %existing.client_id, "repeated registration answered with the existing client");
        return Ok(ClientInformation {
            client_id: existing.client_id,
            client_secret: None,
            client_id_issued_at: existing.created_at,
            client_secret_expires_at: None,
            registration_access_token: None,
            registration_client_uri: None,
            metadata,
        });
    }
    let secret = confidential.then(random_token);
    let access_token = dynamic.then(random_token);
    let client_id = uuid::Uuid::new_v4().to_string();
    let secret_hash = secret.as_deref().map(sha256_hex);
    let model = client::Model {
        client_id: client_id.clone(),
        secret_hash,
        name: columns.name,
        redirect_uris: columns.redirect_uris,
        grant_types: columns.grant_types,
        response_types: metadata.response_types.as_deref().unwrap_or_default().join(" "),
        token_endpoint_auth_method: metadata.token_endpoint_auth_method.clone().unwrap_or_default(),
        scope: columns.scope,
        application_type: columns.application_type,
        metadata: columns.metadata,
        registration_source: registrant.source.as_str().into(),
        owner_user_id: registrant.owner_user_id.clone(),
        registration_access_token_hash: access_token.as_deref().map(sha256_hex),
        metadata_url: None,
        disabled: false,
        created_at: issued_at,
        expires_at: dynamic.then(|| issued_at + state.config.client_unused_ttl.as_secs() as i64),
        metadata_hash,
        registered_from,
        metadata_refresh_at: None,
    };
    state.store.insert_client(model).await?;
    tracing::info!(%client_id, source = registrant.source.as_str(), "client registered");
    let entry = AuditEntry {
        user_id: registrant.owner_user_id.as_deref(),
        client_id: Some(&client_id),
        ip: registrant.ip,
        detail: Some(registrant.source.as_str()),
    };
    state.store.audit(AuditKind::ClientRegistered, entry).await;
    Ok(ClientInformation {
        registration_client_uri: access_token.as_ref().map(|_| registration_client_uri(state, &client_id)),
        client_id,
        client_secret_expires_at: secret.as_ref().map(|_| 0),
        client_secret: secret,
        client_id_issued_at: issued_at,
        registration_access_token: access_token,
        metadata,
    })
}

/// The `clients` columns that follow from normalized metadata (`metadata_hash` left to the caller).
pub fn stored_columns(metadata: &ClientMetadata) -> Result<ClientUpdate, serde_json::Error> {
    Ok(ClientUpdate {
        name: metadata.client_name.clone().unwrap_or_default(),
        redirect_uris: serde_json::to_string(metadata.redirect_uris.as_deref().unwrap_or_default())?,
        grant_types: metadata.grant_types.as_deref().unwrap_or_default().join(" "),
        scope: metadata.scope.clone().unwrap_or_default(),
        application_type: metadata.application_type.clone().unwrap_or_default(),
        metadata: serde_json::to_string(metadata)?,
        metadata_hash: None,
    })
}

/// What a stored client tells about itself (no secret: only its hash is kept).
pub fn client_information(state: &AppState, client: &client::Model) -> ClientInformation {
    let metadata = serde_json::from_str(&client.metadata).unwrap_or_default();
    let managed = client.registration_access_token_hash.is_some();
    ClientInformation {
        client_id: client.client_id.clone(),
        client_secret: None,
        client_id_issued_at: client.created_at,
        client_secret_expires_at: client.secret_hash.as_ref().map(|_| 0),
        registration_access_token: None,
        registration_client_uri: managed.then(|| registration_client_uri(state, &client.client_id)),
        metadata,
    }
}

/// RFC 7592 §2 / RFC 6750: the registration access token must be presented as a bearer token and belong
/// to this client. Every failure, including an unknown client, is the same 401 (§2.1).
async fn managed_client(
    state: &AppState,
    client_id: &str,
    authorization: Option<&str>,
    even_disabled: bool,
) -> Result<client::Model, OAuthError> {
    let refused = || OAuthError {
        www_authenticate: Some(r#"Bearer error="invalid_token""#.into()),
        ..OAuthError::new(
            ErrorCode::InvalidToken,
            "the registration access token is missing or not valid for this client",
        )
    };
    let presented = authorization
        .and_then(|h| h.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(refused)?;
    let client = if even_disabled {
        state.store.find_any_client(client_id).await?.filter(|c| c.expires_at.is_none_or(|t| t > now()))
    } else {
        state.store.find_client(client_id).await?
    }
    .ok_or_else(refused)?;
    let expected = client.registration_access_token_hash.as_deref().ok_or_else(refused)?;
    if bool::from(sha256_hex(presented).as_bytes().ct_eq(expected.as_bytes())) { Ok(client) } else { Err(refused()) }
}

/// RFC 7592 §2.1: read the current registration.
pub async fn read_registration(
    state: &AppState,
    client_id: &str,
    authorization: Option<&str>,
) -> Result<ClientInformation, OAuthError> {
    let client = managed_client(state, client_id, authorization, false).await?;
    Ok(client_information(state, &client))
}

/// RFC 7592 §2.2: replace the registered metadata. The authentication method cannot change (a public
/// client has no secret to switch to, and a confidential one keeps its secret).
pub async fn update_registration(
    state: &AppState,
    client_id: &str,
    authorization: Option<&str>,
    request: ClientUpdateRequest,
) -> Result<ClientInformation, OAuthError> {
    let client = managed_client(state, client_id, authorization, false).await?;
    if request.client_id != client.client_id {
        return Err(OAuthError::invalid_request("client_id in the body must match the URL"));
    }
    if let Some(secret) = &request.client_secret
        && !client_auth::is_current_secret(state, &client, secret).await?
    {
        return Err(metadata_error("client_secret does not match the current secret"));
    }
    let metadata = replace_metadata(state, &client, request.metadata, true).await?;
    tracing::info!(%client_id, "client registration updated");
    Ok(ClientInformation { metadata, ..client_information(state, &client) })
}

/// Validates new metadata for an existing client and stores it; returns the normalized metadata.
pub async fn replace_metadata(
    state: &AppState,
    client: &client::Model,
    requested: ClientMetadata,
    dynamic_hash: bool,
) -> Result<ClientMetadata, OAuthError> {
    let metadata = normalize(requested)?;
    if metadata.token_endpoint_auth_method.as_deref() != Some(client.token_endpoint_auth_method.as_str()) {
        return Err(metadata_error("token_endpoint_auth_method cannot change; register a new client instead"));
    }
    let mut update = stored_columns(&metadata).map_err(OAuthError::internal)?;
    update.metadata_hash = (dynamic_hash && client.metadata_hash.is_some()).then(|| sha256_hex(&update.metadata));
    // A consent given for codes going to the old redirect URIs is withdrawn with the change (see the store).
    state.store.update_client(&client.client_id, update).await?;
    Ok(metadata)
}

/// RFC 7592 §2.3: delete the client; its grants and tokens are revoked with it.
pub async fn delete_registration(
    state: &AppState,
    client_id: &str,
    authorization: Option<&str>,
) -> Result<(), OAuthError> {
    // A client an operator disabled may still delete itself.
    let client = managed_client(state, client_id, authorization, true).await?;
    state.store.delete_client(&client.client_id).await?;
    tracing::info!(%client_id, "client deleted by its registration access token");
    let entry = AuditEntry {
        client_id: Some(&client.client_id),
        detail: Some("by its registration access token"),
        ..AuditEntry::default()
    };
    state.store.audit(AuditKind::ClientDeleted, entry).await;
    Ok(())
}

pub fn normalize(mut m: ClientMetadata) -> Result<ClientMetadata, OAuthError> {
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
