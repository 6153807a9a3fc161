//! A registered OAuth client, converted once from its row into typed values: its redirect URIs parsed
//! (RFC 6749 §3.1.2), its grant types, token endpoint authentication method (RFC 7591 §2) and where its
//! registration came from. Every rule reads these, never the stored strings.
use std::fmt;

use super::redirect_uri::RedirectUri;
use super::scope::Scope;
use crate::clock::UnixTime;
use crate::store::client;

/// How a client authenticates at the token, revocation and introspection endpoints (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A public client: no secret.
    None,
    ClientSecretBasic,
    ClientSecretPost,
    /// RFC 7523 §2.2: a JWT the client signs with a key of its registered `jwks` or `jwks_uri`.
    PrivateKeyJwt,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 4] =
        [AuthMethod::None, AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost, AuthMethod::PrivateKeyJwt];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(value: &str) -> Option<AuthMethod> {
        AuthMethod::ALL.into_iter().find(|m| m.as_str() == value)
    }

    /// Whether the client authenticates (a secret or a key); `none` is a public client.
    pub fn is_confidential(self) -> bool {
        self != AuthMethod::None
    }

    /// Whether the client holds a secret we issued (and can rotate).
    pub fn has_secret(self) -> bool {
        matches!(self, AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth grant type this server issues tokens for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    /// RFC 6749 §4.4: a confidential client acting for itself (an unattended agent, a service), no person.
    ClientCredentials,
    /// RFC 7523 §2.1 with an Identity Assertion JWT Authorization Grant (ID-JAG) from a trusted enterprise
    /// identity provider: a person, whom the provider's policy lets this client act for.
    JwtBearer,
}

impl GrantType {
    pub const ALL: [GrantType; 4] =
        [GrantType::AuthorizationCode, GrantType::RefreshToken, GrantType::ClientCredentials, GrantType::JwtBearer];
    /// What a client that signs people in registers by default.
    pub const INTERACTIVE: [GrantType; 2] = [GrantType::AuthorizationCode, GrantType::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        }
    }

    pub fn parse(value: &str) -> Option<GrantType> {
        GrantType::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

/// The grant types a client registered, in a fixed order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantTypes(Vec<GrantType>);

impl GrantTypes {
    pub fn new(grants: impl IntoIterator<Item = GrantType>) -> GrantTypes {
        let mut grants: Vec<GrantType> = grants.into_iter().collect();
        grants.sort();
        grants.dedup();
        GrantTypes(grants)
    }

    /// The stored form: names separated by single spaces. Unknown names are dropped.
    pub fn from_stored(value: &str) -> GrantTypes {
        GrantTypes::new(value.split(' ').filter_map(GrantType::parse))
    }

    pub fn to_stored(&self) -> String {
        self.names().join(" ")
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|g| g.as_str()).collect()
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.0.contains(&grant)
    }

    /// Whether a person takes part (authorization code): such a client needs redirect URIs.
    pub fn is_interactive(&self) -> bool {
        self.allows(GrantType::AuthorizationCode)
    }

    /// The same grant types without `grant`.
    pub fn without(&self, grant: GrantType) -> GrantTypes {
        GrantTypes(self.0.iter().copied().filter(|g| *g != grant).collect())
    }
}

/// Where a registration came from: shown as "unverified" on the consent page unless an operator made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    pub const ALL: [RegistrationSource; 4] = [
        RegistrationSource::Dynamic,
        RegistrationSource::Owner,
        RegistrationSource::Operator,
        RegistrationSource::MetadataDocument,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationSource::Dynamic => "dynamic",
            RegistrationSource::Owner => "owner",
            RegistrationSource::Operator => "operator",
            RegistrationSource::MetadataDocument => "metadata_document",
        }
    }

    pub fn parse(value: &str) -> Option<RegistrationSource> {
        RegistrationSource::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether someone other than the operator chose everything about the client (name, redirect URIs):
    /// shown as unverified, and never redirected to before the person has seen the consent page.
    pub fn is_self_registered(self) -> bool {
        self != RegistrationSource::Operator
    }
}

/// A registered client, as every rule sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    pub id: String,
    pub name: String,
    /// The registered redirect URIs that are still acceptable (RFC 8252 §7.1 may refuse older rows).
    pub redirect_uris: Vec<RedirectUri>,
    pub grant_types: GrantTypes,
    pub auth_method: AuthMethod,
    /// The scopes the client registered; `None`: any scope the server offers.
    pub scope: Option<Scope>,
    pub source: RegistrationSource,
    /// SHA-256 hex of the secret (or an argon2 hash from before secrets were digests).
    pub secret_hash: Option<String>,
    pub owner_user_id: Option<String>,
    pub registration_access_token_hash: Option<String>,
    /// For a Client ID Metadata Document: the document's URL (also the client id).
    pub metadata_url: Option<String>,
    /// The registered metadata as JSON (RFC 7591 §3.2.1 echoes it).
    pub metadata: String,
    pub metadata_hash: Option<String>,
    pub disabled: bool,
    pub created_at: UnixTime,
    /// A dynamically registered client that has not yet obtained a token goes away at this time.
    pub expires_at: Option<UnixTime>,
}

/// A stored client whose method or source this version does not know: it cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("client {client_id} has an unknown {what} '{value}'")]
pub struct UnknownClientValue {
    pub client_id: String,
    pub what: &'static str,
    pub value: String,
}

impl TryFrom<client::Model> for Client {
    type Error = UnknownClientValue;

    fn try_from(row: client::Model) -> Result<Client, UnknownClientValue> {
        let unknown =
            |what, value: &str| UnknownClientValue { client_id: row.client_id.clone(), what, value: value.into() };
        let auth_method = AuthMethod::parse(&row.token_endpoint_auth_method)
            .ok_or_else(|| unknown("token endpoint authentication method", &row.token_endpoint_auth_method))?;
        let source = RegistrationSource::parse(&row.registration_source)
            .ok_or_else(|| unknown("registration source", &row.registration_source))?;
        let redirect_uris = serde_json::from_str::<Vec<String>>(&row.redirect_uris)
            .unwrap_or_default()
            .iter()
            .filter_map(|u| RedirectUri::parse(u).ok())
            .collect();
        Ok(Client {
            name: row.name,
            redirect_uris,
            grant_types: GrantTypes::from_stored(&row.grant_types),
            auth_method,
            scope: (!row.scope.trim().is_empty()).then(|| Scope::parse(&row.scope).unwrap_or_default()),
            source,
            secret_hash: row.secret_hash,
            owner_user_id: row.owner_user_id,
            registration_access_token_hash: row.registration_access_token_hash,
            metadata_url: row.metadata_url,
            metadata: row.metadata,
            metadata_hash: row.metadata_hash,
            disabled: row.disabled,
            created_at: row.created_at,
            expires_at: row.expires_at,
            id: row.client_id,
        })
    }
}

impl Client {
    /// A stored row as a client, or `None` (logged) when it holds a value this version does not know.
    pub fn from_row(row: client::Model) -> Option<Client> {
        Client::try_from(row).inspect_err(|e| tracing::error!(error = %e, "unusable client row")).ok()
    }

    /// What kind of client this is, in a word for people: `enterprise` (ID-JAG assertions, no redirects),
    /// `machine` (client credentials only: it acts for itself), `confidential` or `public`.
    pub fn kind(&self) -> &'static str {
        if !self.grant_types.is_interactive() && self.grant_types.allows(GrantType::JwtBearer) {
            "enterprise"
        } else if !self.grant_types.is_interactive() {
            "machine"
        } else if self.auth_method.is_confidential() {
            "confidential"
        } else {
            "public"
        }
    }

    /// Whether the client may get tokens for itself (client credentials).
    pub fn has_machine_access(&self) -> bool {
        self.grant_types.allows(GrantType::ClientCredentials)
    }

    /// The name shown to people.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() { "An unnamed application" } else { &self.name }
    }

    /// The registered redirect URI `requested` names, exactly (loopback: any port, RFC 8252 §7.3).
    pub fn redirect_uri_matching(&self, requested: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|r| r.matches(requested))
    }

    /// The redirect URIs as registered, for display.
    pub fn redirect_uri_strings(&self) -> Vec<String> {
        self.redirect_uris.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// The host publishing the client's metadata document, for a client named by its document URL.
    pub fn document_host(&self) -> Option<String> {
        let url = url::Url::parse(self.metadata_url.as_deref()?).ok()?;
        url.host_str().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_convert_once_and_unknown_ones_are_refused() {
        assert_eq!(AuthMethod::parse("client_secret_post"), Some(AuthMethod::ClientSecretPost));
        assert_eq!(AuthMethod::parse("private_key_jwt"), Some(AuthMethod::PrivateKeyJwt));
        assert_eq!(AuthMethod::parse("client_secret_jwt"), None);
        let grants = GrantTypes::from_stored("refresh_token authorization_code implicit");
        assert_eq!(grants.to_stored(), "authorization_code refresh_token");
        assert!(grants.allows(GrantType::RefreshToken));
        assert!(!GrantTypes::from_stored("authorization_code").allows(GrantType::RefreshToken));
        assert!(RegistrationSource::Dynamic.is_self_registered());
        assert!(!RegistrationSource::Operator.is_self_registered());
        assert_eq!(RegistrationSource::parse("metadata_document"), Some(RegistrationSource::MetadataDocument));
    }
}
