//! Token revocation (RFC 7009). Only the client a token was issued to can revoke it; for anyone else,
//! and for unknown tokens, the answer is the same 200 and nothing changes (§2.2).
use std::net::IpAddr;

use poem_openapi::Object;
use serde::Deserialize;

use super::client_auth::PresentedClient;
use crate::crypto::sha256_hex;
use crate::error::OAuthError;
use crate::state::AppState;

#[derive(Debug, Object, Deserialize)]
pub struct RevokeRequest {
    /// The refresh or access token to revoke.
    pub token: String,
    /// `refresh_token` or `access_token`; a hint only.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// An empty JSON object: revocation has nothing to report.
#[derive(Debug, Object)]
pub struct Revoked {}

pub async fn revoke(
    state: &AppState,
    authorization: Option<&str>,
    ip: Option<IpAddr>,
    req: RevokeRequest,
) -> Result<Revoked, OAuthError> {
    let client = PresentedClient::from_request(authorization, req.client_id.as_deref(), req.client_secret.as_deref())?
        .authenticate(state, ip)
        .await?;
    // A refresh token revokes its whole grant; an access token revokes the grant it was issued under
    // (the refresh tokens), and expires by itself within its short lifetime.
    let family = match state.store.find_refresh_token(&sha256_hex(&req.token)).await? {
        Some(t) if t.client_id == client.client_id => Some(t.family_id),
        Some(_) => None,
        None => match state.tokens.verify(&req.token).await {
            Ok(claims) if claims.client_id == client.client_id => Some(claims.grant_id),
            _ => None,
        },
    };
    if let Some(family) = family {
        let revoked = state.store.revoke_grant(&family).await?;
        crate::metrics::metrics().grant_revoked("revocation");
        tracing::info!(client_id = %client.client_id, revoked, "grant revoked by its client");
    }
    Ok(Revoked {})
}
