//! Client registration (RFC 7591 §2, §3.2): the metadata a client may register, its normalization, and
//! the one place a new client is stored, whoever registers it (the registration endpoint, a signed-in person
//! on the apps page, the operator's CLI). Managing a registration afterwards (RFC 7592) is the OAuth face's.
use std::net::IpAddr;
use std::time::Duration;

use poem_openapi::Object;
use serde::{Deserialize, Serialize};
use url::Url;

use super::client::{AuthMethod, Client, GrantType, GrantTypes, RegistrationSource};
use super::client_keys::ClientKeys;
use super::redirect_uri::RedirectUri;
use super::scope::{Scope, ScopeCatalog};
use crate::clock::UnixTime;
use crate::crypto::{random_token, sha256_hex};
use crate::store::{AuditEntry, AuditKind, ClientUpdate, Store, client};

const MAX_REDIRECT_URIS: usize = 20;
const MAX_TEXT: usize = 2000;
/// How long a repeated anonymous registration is answered with the client it repeats.
const REPEAT_WINDOW: Duration = Duration::from_secs(3600);

/// Client metadata (RFC 7591 §2). Unknown members are ignored, as §2 requires.
#[derive(Debug, Clone, Default, Object, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Redirect URIs: https, loopback http (any port at use, RFC 8252), or a private-use scheme. Required with
    /// the authorization_code grant; none for a client_credentials client.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    /// `none` (public client), `client_secret_basic` (default), `client_secret_post`, or `private_key_jwt`
    /// (RFC 7523 §2.2, with `jwks` or `jwks_uri`; no secret is issued).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The client's public keys as a JWK Set (RFC 7517), for `private_key_jwt`: EC P-256, RSA (2048 bits or
    /// more) or Ed25519, at most 10.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// An https URL serving the client's JWK Set, for `private_key_jwt` (fetched like a metadata document:
    /// public addresses only, no redirects, 5 KB, cached).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `authorization_code` (default) and optionally `refresh_token`; or `client_credentials` (a machine client,
    /// confidential, without redirect URIs; anonymous registration only where `DCR_CLIENT_CREDENTIALS=on`).
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

/// Why metadata cannot be registered (RFC 7591 §3.2.2), or the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    InvalidMetadata(String),
    #[error("storage failed: {0}")]
    Storage(#[from] sea_orm::DbErr),
}

impl RegistrationError {
    /// The RFC 7591 §3.2.2 error code.
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            RegistrationError::InvalidMetadata(_) => "invalid_client_metadata",
            RegistrationError::Storage(_) => "server_error",
        }
    }
}

fn metadata_error(description: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidMetadata(description.into())
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

/// What a new registration must tell its client, once: the secret and the registration access token
/// exist in clear only here.
#[derive(Debug)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub issued_at: UnixTime,
    /// A bearer token for RFC 7592 management (dynamic registrations only).
    pub registration_access_token: Option<String>,
    pub metadata: ClientMetadata,
}

/// Stores new clients and replaces registered metadata.
#[derive(Clone)]
pub struct Registrar {
    store: Store,
    /// Scopes a client may register (the gateway's upstreams add theirs while the server runs).
    scopes: ScopeCatalog,
    /// A dynamically registered client that obtains no token within this time is deleted.
    unused_ttl: Duration,
    /// Whether anonymous registration (RFC 7591) may ask for the client credentials grant
    /// (`DCR_CLIENT_CREDENTIALS`); the operator and signed-in people on the apps page always may.
    dynamic_client_credentials: bool,
}

impl Registrar {
    pub fn new(
        store: Store,
        scopes: ScopeCatalog,
        unused_ttl: Duration,
        dynamic_client_credentials: bool,
    ) -> Registrar {
        Registrar { store, scopes, unused_ttl, dynamic_client_credentials }
    }

    /// Anonymous registrations get the client credentials grant only where the operator allows it: a
    /// machine client needs nobody's consent, so anyone who can reach the endpoint would get tokens.
    fn check_grants(&self, metadata: &ClientMetadata, source: RegistrationSource) -> Result<(), RegistrationError> {
        let machine = metadata.grant_types.iter().flatten().any(|g| g == GrantType::ClientCredentials.as_str());
        if machine && source == RegistrationSource::Dynamic && !self.dynamic_client_credentials {
            return Err(metadata_error(
                "this server does not register client_credentials clients anonymously; ask its operator",
            ));
        }
        Ok(())
    }

    /// Metadata as told to the client (RFC 7591 §3.2.1): a client that named no scope is told every scope
    /// offered now (it may use any, now or later).
    pub fn shown(&self, mut metadata: ClientMetadata) -> ClientMetadata {
        if metadata.scope.is_none() {
            metadata.scope = Some(self.scopes.all().to_string());
        }
        metadata
    }

    /// A registered scope must be one this server offers (RFC 7591 §2: the server may refuse others).
    fn check_scope(&self, metadata: &ClientMetadata) -> Result<(), RegistrationError> {
        match metadata.scope.as_deref() {
            Some(scope) => self.scopes.parse_known(scope).map(drop).map_err(metadata_error),
            None => Ok(()),
        }
    }

    /// Validates the metadata (RFC 7591 §2, §3.2.2), fills in the defaults, stores the client and returns
    /// what the client must be told.
    ///
    /// A repeated anonymous registration (the same normalized metadata of a public client, from the same IP
    /// address, within an hour, while the first client is still unused) returns the existing client instead
    /// of adding a row. From then on nobody can manage that client with a registration access token: the
    /// first registrant's token stops working, so whoever registered first cannot later redirect a client
    /// that others now use.
    pub async fn register(
        &self,
        requested: ClientMetadata,
        registrant: Registrant,
    ) -> Result<Registered, RegistrationError> {
        let metadata = normalize(requested)?;
        self.check_scope(&metadata)?;
        self.check_grants(&metadata, registrant.source)?;
        let method = metadata.auth_method();
        let dynamic = registrant.source == RegistrationSource::Dynamic;
        let columns = stored_columns(&metadata);
        let metadata_hash = dynamic.then(|| sha256_hex(&columns.metadata));
        let registered_from = registrant.ip.filter(|_| dynamic).map(|ip| ip.to_string());
        let issued_at = UnixTime::now();
        if let (Some(hash), Some(from), false) = (&metadata_hash, &registered_from, method.is_confidential())
            && let Some(existing) = self.store.find_repeated_registration(hash, from, issued_at - REPEAT_WINDOW).await?
        {
            self.store.forget_registration_access_token(&existing.client_id).await?;
            tracing::info!(client_id = %existing.client_id, "repeated registration answered with the existing client");
            return Ok(Registered {
                client_id: existing.client_id,
                client_secret: None,
                issued_at: existing.created_at,
                registration_access_token: None,
                metadata,
            });
        }
        let secret = method.has_secret().then(random_token);
        let access_token = dynamic.then(random_token);
        let client_id = uuid::Uuid::new_v4().to_string();
        let model = client::Model {
            client_id: client_id.clone(),
            secret_hash: secret.as_deref().map(sha256_hex),
            name: columns.name,
            redirect_uris: columns.redirect_uris,
            grant_types: columns.grant_types,
            response_types: metadata.response_types.as_deref().unwrap_or_default().join(" "),
            token_endpoint_auth_method: method.as_str().into(),
            scope: columns.scope,
            application_type: columns.application_type,
            metadata: columns.metadata,
            registration_source: registrant.source.as_str().into(),
            owner_user_id: registrant.owner_user_id.clone(),
            registration_access_token_hash: access_token.as_deref().map(sha256_hex),
            metadata_url: None,
            disabled: false,
            created_at: issued_at,
            expires_at: dynamic.then(|| issued_at + self.unused_ttl),
            metadata_hash,
            registered_from,
            metadata_refresh_at: None,
        };
        self.store.insert_client(model).await?;
        tracing::info!(%client_id, source = registrant.source.as_str(), "client registered");
        let entry = AuditEntry {
            user_id: registrant.owner_user_id.as_deref(),
            client_id: Some(&client_id),
            ip: registrant.ip,
            detail: Some(registrant.source.as_str()),
        };
        self.store.audit(AuditKind::ClientRegistered, entry).await;
        Ok(Registered {
            client_id,
            client_secret: secret,
            issued_at,
            registration_access_token: access_token,
            metadata,
        })
    }

    /// Validates new metadata for an existing client and stores it; returns the normalized metadata. The
    /// authentication method cannot change (a public client has no secret to switch to, and a confidential
    /// one keeps its secret). Consents given for the old redirect URIs are withdrawn with the change.
    pub async fn replace_metadata(
        &self,
        client: &Client,
        requested: ClientMetadata,
        dynamic_hash: bool,
    ) -> Result<ClientMetadata, RegistrationError> {
        let metadata = normalize(requested)?;
        self.check_scope(&metadata)?;
        self.check_grants(&metadata, client.source)?;
        let machine = metadata.grant_types.iter().flatten().any(|g| g == GrantType::ClientCredentials.as_str());
        if machine && !client.grant_types.allows(GrantType::ClientCredentials) {
            // Machine access is given at registration and, once revoked, stays revoked.
            return Err(metadata_error("client_credentials cannot be added to a registration; register a new client"));
        }
        if metadata.auth_method() != client.auth_method {
            return Err(metadata_error("token_endpoint_auth_method cannot change; register a new client instead"));
        }
        let mut update = stored_columns(&metadata);
        update.metadata_hash = (dynamic_hash && client.metadata_hash.is_some()).then(|| sha256_hex(&update.metadata));
        self.store.update_client(&client.id, update).await?;
        Ok(metadata)
    }
}

impl ClientMetadata {
    /// The authentication method of normalized metadata.
    pub fn auth_method(&self) -> AuthMethod {
        self.token_endpoint_auth_method.as_deref().and_then(AuthMethod::parse).unwrap_or(AuthMethod::ClientSecretBasic)
    }
}

/// The `clients` columns that follow from normalized metadata (`metadata_hash` left to the caller).
pub fn stored_columns(metadata: &ClientMetadata) -> ClientUpdate {
    ClientUpdate {
        name: metadata.client_name.clone().unwrap_or_default(),
        redirect_uris: serde_json::to_string(metadata.redirect_uris.as_deref().unwrap_or_default())
            .expect("strings serialize"),
        grant_types: metadata.grant_types.as_deref().unwrap_or_default().join(" "),
        scope: metadata.scope.clone().unwrap_or_default(),
        application_type: metadata.application_type.clone().unwrap_or_default(),
        metadata: serde_json::to_string(metadata).expect("metadata serializes"),
        metadata_hash: None,
    }
}

/// Validates client metadata (RFC 7591 §2, §3.2.2) and fills in the defaults: a confidential client
/// (`client_secret_basic`), the authorization code grant, `code`, every scope, a web application. A client
/// of the client credentials grant alone (a machine) is confidential and has no redirect URIs.
pub fn normalize(mut m: ClientMetadata) -> Result<ClientMetadata, RegistrationError> {
    let method = match m.token_endpoint_auth_method.take() {
        None => AuthMethod::ClientSecretBasic,
        Some(method) => AuthMethod::parse(&method).ok_or_else(|| {
            let names: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
            metadata_error(format!("token_endpoint_auth_method must be one of {}", names.join(", ")))
        })?,
    };
    m.token_endpoint_auth_method = Some(method.as_str().into());
    check_keys(&m, method)?;

    let asked = m.grant_types.take().unwrap_or_else(|| vec![GrantType::AuthorizationCode.as_str().into()]);
    let mut grants = Vec::new();
    for name in &asked {
        grants.push(
            GrantType::parse(name)
                .ok_or_else(|| metadata_error(format!("grant type '{}' is not supported", name.escape_default())))?,
        );
    }
    let grants = GrantTypes::new(grants);
    if !grants.is_interactive() && !grants.allows(GrantType::ClientCredentials) && !grants.allows(GrantType::JwtBearer)
    {
        return Err(metadata_error(
            "grant_types must include authorization_code, client_credentials or urn:ietf:params:oauth:grant-type:jwt-bearer",
        ));
    }
    if grants.allows(GrantType::RefreshToken) && !grants.is_interactive() {
        return Err(metadata_error(
            "refresh_token needs authorization_code: client_credentials issues no refresh tokens (RFC 6749 §4.4.3)",
        ));
    }
    if grants.allows(GrantType::JwtBearer) && !method.is_confidential() {
        // draft-ietf-oauth-identity-assertion-authz-grant §8.1: without client authentication, anyone holding
        // an unspent assertion could redeem it.
        return Err(metadata_error(
            "the jwt-bearer (ID-JAG) grant is for confidential clients: choose client_secret_basic, \
             client_secret_post or private_key_jwt",
        ));
    }
    if grants.allows(GrantType::ClientCredentials) && !method.is_confidential() {
        return Err(metadata_error(
            "client_credentials is for confidential clients: choose client_secret_basic, client_secret_post or \
             private_key_jwt",
        ));
    }
    m.grant_types = Some(grants.names().into_iter().map(str::to_owned).collect());

    let redirect_uris = m.redirect_uris.take().unwrap_or_default();
    if grants.is_interactive() && redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri("redirect_uris must list at least one redirect URI".into()));
    }
    if !grants.is_interactive() && !redirect_uris.is_empty() {
        return Err(RegistrationError::InvalidRedirectUri(
            "redirect_uris are for the authorization_code grant; a client without it has none".into(),
        ));
    }
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(RegistrationError::InvalidRedirectUri(format!("at most {MAX_REDIRECT_URIS} redirect URIs")));
    }
    for uri in &redirect_uris {
        RedirectUri::parse(uri).map_err(RegistrationError::InvalidRedirectUri)?;
    }
    m.redirect_uris = Some(redirect_uris);

    m.response_types = if grants.is_interactive() {
        let response_types = m.response_types.take().unwrap_or_else(|| vec!["code".into()]);
        if response_types.iter().any(|r| r != "code") || response_types.is_empty() {
            return Err(metadata_error("response_types must be [\"code\"]"));
        }
        Some(vec!["code".into()])
    } else {
        if m.response_types.take().is_some_and(|r| !r.is_empty()) {
            return Err(metadata_error("response_types must be empty without the authorization_code grant"));
        }
        Some(vec![])
    };

    // No scope: any scope the server offers, now or later (an upstream added to the gateway brings its own).
    m.scope = match m.scope.take().filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(s) => Some(Scope::parse(&s).map_err(metadata_error)?.to_string()),
    };

    m.application_type = Some(match m.application_type.take().as_deref() {
        None | Some("web") => "web".into(),
        Some("native") => "native".into(),
        Some(_) => return Err(metadata_error("application_type must be web or native")),
    });

    check_descriptive_fields(&m)?;
    m.client_name = m.client_name.filter(|n| !n.trim().is_empty());
    Ok(m)
}

/// `private_key_jwt` needs exactly one of `jwks` (checked here) and `jwks_uri` (an https URL of a named
/// host; fetched, and checked again, at use); no other method takes either.
fn check_keys(m: &ClientMetadata, method: AuthMethod) -> Result<(), RegistrationError> {
    match (method, &m.jwks, &m.jwks_uri) {
        (AuthMethod::PrivateKeyJwt, Some(jwks), None) => ClientKeys::parse(jwks).map(drop).map_err(metadata_error),
        (AuthMethod::PrivateKeyJwt, None, Some(uri)) => {
            // As fetched: canonical (the string is the URL), a path, no credentials or fragment.
            let ok = uri.len() <= MAX_TEXT
                && Url::parse(uri).is_ok_and(|u| {
                    u.scheme() == "https"
                        && matches!(u.host(), Some(url::Host::Domain(_)))
                        && u.as_str() == uri
                        && u.path() != "/"
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.fragment().is_none()
                });
            if ok { Ok(()) } else { Err(metadata_error("jwks_uri must be an https URL of a named host with a path")) }
        }
        (AuthMethod::PrivateKeyJwt, _, _) => {
            Err(metadata_error("private_key_jwt needs exactly one of jwks and jwks_uri"))
        }
        (_, None, None) => Ok(()),
        _ => Err(metadata_error("jwks and jwks_uri are only for token_endpoint_auth_method private_key_jwt")),
    }
}

/// The URLs and names a client describes itself with (RFC 7591 §2): http(s) URLs, printable names of
/// bounded length (no invisible characters that could make a name read as another), a few contacts.
fn check_descriptive_fields(m: &ClientMetadata) -> Result<(), RegistrationError> {
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
    Ok(())
}

/// Control characters and the invisible formatting characters (bidirectional overrides, zero-width
/// characters) that could make a name on the consent page read as something else.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
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
        assert_eq!(m.scope, None, "no scope: any the server offers, now or later");
    }

    #[test]
    fn bad_metadata_gets_the_rfc_error_code() {
        assert!(matches!(normalize(with_uris(&[])), Err(RegistrationError::InvalidRedirectUri(_))));
        assert!(matches!(
            normalize(with_uris(&["javascript:alert(1)"])),
            Err(RegistrationError::InvalidRedirectUri(_))
        ));
        let implicit =
            ClientMetadata { grant_types: Some(vec!["implicit".into()]), ..with_uris(&["https://a.example/cb"]) };
        assert_eq!(normalize(implicit).unwrap_err().code(), "invalid_client_metadata");
        let method = ClientMetadata {
            token_endpoint_auth_method: Some("private_key_jwt".into()),
            ..with_uris(&["https://a.example/cb"])
        };
        assert_eq!(normalize(method).unwrap_err().code(), "invalid_client_metadata");
        let spoof =
            ClientMetadata { client_name: Some("Claude\u{202E}resu".into()), ..with_uris(&["https://a.example/cb"]) };
        assert_eq!(normalize(spoof).unwrap_err().code(), "invalid_client_metadata");
    }
}
