//! Dynamic client registration (RFC 7591) and client management (RFC 7592) on the wire: the registration
//! endpoint and `registration_client_uri`. What may be registered and how it is stored is the domain's
//! (`domain::registration`), shared with the apps page and the CLI.
use std::net::IpAddr;
use std::sync::Arc;

use poem_openapi::Object;
use subtle::ConstantTimeEq;

use super::client_auth::ClientAuthenticator;
use super::error::{ErrorCode, OAuthError};
use crate::clock::now;
use crate::crypto::sha256_hex;
use crate::domain::client::{Client, RegistrationSource};
use crate::domain::registration::{ClientMetadata, Registrant, Registrar, RegistrationError};
use crate::limits::Limits;
use crate::store::{AuditEntry, AuditKind, Store};

/// The registration endpoint and the management of registrations.
#[derive(Clone)]
pub struct RegistrationService {
    registrar: Registrar,
    store: Store,
    clients: ClientAuthenticator,
    limits: Arc<Limits>,
    issuer: String,
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

impl RegistrationService {
    pub fn new(
        registrar: Registrar,
        store: Store,
        clients: ClientAuthenticator,
        limits: Arc<Limits>,
        issuer: String,
    ) -> RegistrationService {
        RegistrationService { registrar, store, clients, limits, issuer }
    }

    /// The management URL of a client (RFC 7592 §2).
    fn registration_client_uri(&self, client_id: &str) -> String {
        format!("{}/oauth/register/{client_id}", self.issuer)
    }

    /// RFC 7591 §3: an anonymous registration from `ip`, limited per address.
    pub async fn register(
        &self,
        metadata: ClientMetadata,
        ip: Option<IpAddr>,
    ) -> Result<ClientInformation, OAuthError> {
        if let Some(ip) = ip
            && let Err(retry) = self.limits.register(ip)
        {
            return Err(OAuthError::too_many_requests(retry));
        }
        let registrant = Registrant { source: RegistrationSource::Dynamic, owner_user_id: None, ip };
        let registered = self.registrar.register(metadata, registrant).await?;
        Ok(ClientInformation {
            registration_client_uri: registered
                .registration_access_token
                .as_ref()
                .map(|_| self.registration_client_uri(&registered.client_id)),
            client_id: registered.client_id,
            client_secret_expires_at: registered.client_secret.as_ref().map(|_| 0),
            client_secret: registered.client_secret,
            client_id_issued_at: registered.issued_at.seconds(),
            registration_access_token: registered.registration_access_token,
            metadata: self.registrar.shown(registered.metadata),
        })
    }

    /// What a stored client tells about itself (no secret: only its digest is kept).
    fn client_information(&self, client: &Client) -> ClientInformation {
        let metadata = self.registrar.shown(serde_json::from_str(&client.metadata).unwrap_or_default());
        let managed = client.registration_access_token_hash.is_some();
        ClientInformation {
            client_id: client.id.clone(),
            client_secret: None,
            client_id_issued_at: client.created_at.seconds(),
            client_secret_expires_at: client.secret_hash.as_ref().map(|_| 0),
            registration_access_token: None,
            registration_client_uri: managed.then(|| self.registration_client_uri(&client.id)),
            metadata,
        }
    }

    /// RFC 7592 §2 / RFC 6750: the registration access token must be presented as a bearer token and belong
    /// to this client. Every failure, including an unknown client, is the same 401 (§2.1).
    async fn managed_client(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        even_disabled: bool,
    ) -> Result<Client, OAuthError> {
        let refused = || OAuthError {
            www_authenticate: Some(r#"Bearer error="invalid_token""#.into()),
            ..OAuthError::new(
                ErrorCode::InvalidToken,
                "the registration access token is missing or not valid for this client",
            )
        };
        let presented = bearer.ok_or_else(refused)?;
        let row = if even_disabled {
            self.store.find_any_client(client_id).await?.filter(|c| c.expires_at.is_none_or(|t| t > now()))
        } else {
            self.store.find_client(client_id).await?
        };
        let client = row.and_then(Client::from_row).ok_or_else(refused)?;
        let expected = client.registration_access_token_hash.as_deref().ok_or_else(refused)?;
        if bool::from(sha256_hex(presented).as_bytes().ct_eq(expected.as_bytes())) {
            Ok(client)
        } else {
            Err(refused())
        }
    }

    /// RFC 7592 §2.1: read the current registration.
    pub async fn read(&self, client_id: &str, bearer: Option<&str>) -> Result<ClientInformation, OAuthError> {
        let client = self.managed_client(client_id, bearer, false).await?;
        Ok(self.client_information(&client))
    }

    /// RFC 7592 §2.2: replace the registered metadata. The authentication method cannot change (a public
    /// client has no secret to switch to, and a confidential one keeps its secret).
    pub async fn update(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        request: ClientUpdateRequest,
    ) -> Result<ClientInformation, OAuthError> {
        let client = self.managed_client(client_id, bearer, false).await?;
        if request.client_id != client.id {
            return Err(OAuthError::invalid_request("client_id in the body must match the URL"));
        }
        if let Some(secret) = &request.client_secret
            && !self.clients.is_current_secret(&client, secret).await?
        {
            return Err(
                RegistrationError::InvalidMetadata("client_secret does not match the current secret".into()).into()
            );
        }
        let metadata = self.registrar.replace_metadata(&client, request.metadata, true).await?;
        tracing::info!(%client_id, "client registration updated");
        Ok(ClientInformation { metadata: self.registrar.shown(metadata), ..self.client_information(&client) })
    }

    /// RFC 7592 §2.3: delete the client; its grants and tokens are revoked with it.
    pub async fn delete(&self, client_id: &str, bearer: Option<&str>) -> Result<(), OAuthError> {
        // A client an operator disabled may still delete itself.
        let client = self.managed_client(client_id, bearer, true).await?;
        self.store.delete_client(&client.id).await?;
        tracing::info!(%client_id, "client deleted by its registration access token");
        let entry = AuditEntry {
            client_id: Some(&client.id),
            detail: Some("by its registration access token"),
            ..AuditEntry::default()
        };
        self.store.audit(AuditKind::ClientDeleted, entry).await;
        Ok(())
    }
}
