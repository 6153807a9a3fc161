//! Token introspection (RFC 7662) for authenticated (confidential) clients, about their own tokens.
use std::net::IpAddr;

use poem_openapi::Object;
use serde::Deserialize;

use super::client_auth::{FormCredentials, PresentedClient};
use super::error::{ErrorCode, OAuthError};
use super::token::TokenService;
use crate::clock::now;
use crate::crypto::sha256_hex;

#[derive(Debug, Object, Deserialize)]
pub struct IntrospectRequest {
    /// The token to describe.
    pub token: String,
    /// `access_token` or `refresh_token`; a hint only.
    pub token_type_hint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, for `private_key_jwt` (RFC 7523 §2.2).
    pub client_assertion_type: Option<String>,
    /// The signed client assertion, for `private_key_jwt`; `client_id` may then be omitted.
    pub client_assertion: Option<String>,
}

impl IntrospectRequest {
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

/// RFC 7662 §2.2. Only `active` is present for an inactive token.
#[derive(Debug, Default, Object)]
pub struct Introspection {
    pub active: bool,
    #[oai(skip_serializing_if_is_none)]
    pub scope: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub client_id: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub sub: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub aud: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub iss: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub exp: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub iat: Option<i64>,
    #[oai(skip_serializing_if_is_none)]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
}

pub async fn introspect(
    svc: &TokenService,
    authorization: Option<&str>,
    ip: Option<IpAddr>,
    req: IntrospectRequest,
) -> Result<Introspection, OAuthError> {
    let presented = PresentedClient::from_request(authorization, req.credentials())?;
    let client = svc.clients.authenticate(&presented, ip).await?;
    if !client.auth_method.is_confidential() {
        return Err(OAuthError::new(
            ErrorCode::InvalidClient,
            "introspection requires an authenticated (confidential) client",
        ));
    }
    if let Ok(claims) = svc.tokens.verify(&req.token).await {
        if claims.client_id != client.id || !svc.store.grant_is_active(&claims.grant_id).await? {
            return Ok(Introspection::default());
        }
        return Ok(Introspection {
            active: true,
            scope: Some(claims.scope),
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            aud: Some(claims.aud),
            iss: Some(claims.iss),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            jti: Some(claims.jti),
            token_type: Some("Bearer".into()),
        });
    }
    let live = match svc.store.find_refresh_token(&sha256_hex(&req.token)).await? {
        Some(t)
            if t.client_id == client.id && t.used_at.is_none() && t.revoked_at.is_none() && t.expires_at > now() =>
        {
            svc.store.grant_is_active(&t.family_id).await?.then_some(t)
        }
        _ => None,
    };
    Ok(match live {
        Some(t) => Introspection {
            active: true,
            scope: Some(t.scope),
            client_id: Some(t.client_id),
            sub: Some(t.user_id),
            aud: Some(t.resource),
            iss: Some(svc.issuer.clone()),
            exp: Some(t.expires_at.seconds()),
            iat: Some(t.issued_at.seconds()),
            token_type: Some("refresh_token".into()),
            ..Default::default()
        },
        None => Introspection::default(),
    })
}
