//! Token revocation (RFC 7009). Only the client a token was issued to can revoke it; for anyone else,
//! and for unknown tokens, the answer is the same 200 and nothing changes (§2.2).
use std::net::IpAddr;

use poem_openapi::Object;
use serde::Deserialize;

use super::client_auth::{FormCredentials, PresentedClient};
use super::error::OAuthError;
use super::token::TokenService;
use crate::crypto::sha256_hex;

#[derive(Debug, Object, Deserialize)]
pub struct RevokeRequest {
    /// The refresh or access token to revoke.
    pub token: String,
    /// `refresh_token` or `access_token`; a hint only.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, for `private_key_jwt` (RFC 7523 §2.2).
    pub client_assertion_type: Option<String>,
    /// The signed client assertion, for `private_key_jwt`; `client_id` may then be omitted.
    pub client_assertion: Option<String>,
}

impl RevokeRequest {
    /// The client credentials the form carried.
    pub fn credentials(&self) -> FormCredentials<'_> {
        FormCredentials {
            client_id: self.client_id.as_deref(),
            client_secret: self.client_secret.as_deref(),
            client_assertion_type: self.client_assertion_type.as_deref(),
            client_assertion: self.client_assertion.as_deref(),
        }
    }
}

/// An empty JSON object: revocation has nothing to report.
#[derive(Debug, Object)]
pub struct Revoked {}

pub async fn revoke(
    svc: &TokenService,
    authorization: Option<&str>,
    ip: Option<IpAddr>,
    req: RevokeRequest,
) -> Result<Revoked, OAuthError> {
    let presented = PresentedClient::from_request(authorization, req.credentials())?;
    let client = svc.clients.authenticate(&presented, ip).await?;
    // A refresh token revokes its whole grant; an access token revokes the grant it was issued under
    // (the refresh tokens), and expires by itself within its short lifetime.
    let family = match svc.store.find_refresh_token(&sha256_hex(&req.token)).await? {
        Some(t) if t.client_id == client.id => Some(t.family_id),
        Some(_) => None,
        None => match svc.tokens.verify(&req.token).await {
            Ok(claims) if claims.client_id == client.id => Some(claims.grant_id),
            _ => None,
        },
    };
    if let Some(family) = family {
        let revoked = svc.store.revoke_grant(&family).await?;
        svc.metrics.grant_revoked("revocation");
        tracing::info!(client_id = %client.id, revoked, "grant revoked by its client");
    }
    Ok(Revoked {})
}
