//! Enterprise-managed authorization (the MCP "Enterprise-Managed Authorization" extension, an application
//! of draft-ietf-oauth-identity-assertion-authz-grant): a client presents an Identity Assertion JWT
//! Authorization Grant (ID-JAG) that a trusted enterprise identity provider issued for it, with the
//! `urn:ietf:params:oauth:grant-type:jwt-bearer` grant (RFC 7523 §2.1). The provider's policy stands in for
//! the consent page. This module checks the assertion; the token endpoint maps its person and issues.
use std::sync::Arc;

use jsonwebtoken::Validation;
use serde::Deserialize;

use super::error::{ErrorCode, OAuthError};
use crate::clock::UnixTime;
use crate::crypto::sha256_hex;
use crate::domain::client_keys::assertion_algorithm;
use crate::domain::identity_providers::Providers;
use crate::domain::resource::Resource;
use crate::store::{Store, identity_provider};

/// The JWT `typ` of an ID-JAG.
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";
/// Advertised in `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
const LEEWAY: i64 = 10;

/// What a valid ID-JAG says.
#[derive(Debug, Clone)]
pub struct Asserted {
    pub provider: identity_provider::Model,
    pub subject: String,
    pub email: Option<String>,
    /// The scopes the provider's policy allows (empty when it named none).
    pub scope: String,
    pub expires_at: UnixTime,
    /// The provider's `email_verified`, when it sent one.
    pub email_verified: Option<bool>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    client_id: Option<String>,
    resource: Option<serde_json::Value>,
    scope: Option<String>,
    jti: Option<String>,
    exp: i64,
    iat: Option<i64>,
    email: Option<String>,
    email_verified: Option<bool>,
    aud: serde_json::Value,
}

/// Checks ID-JAGs against the providers the operator trusts (`mcp-gateway idp add … --trust-id-jag`).
#[derive(Clone)]
pub struct EnterpriseAssertions {
    store: Store,
    /// The providers' keys.
    providers: Arc<Providers>,
    /// Our issuer: the one audience an ID-JAG may name.
    issuer: String,
    resource: Resource,
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::invalid_grant(description.to_owned())
}

impl EnterpriseAssertions {
    pub fn new(store: Store, providers: Arc<Providers>, issuer: String, resource: Resource) -> EnterpriseAssertions {
        EnterpriseAssertions { store, providers, issuer, resource }
    }

    /// Verifies an ID-JAG presented by `client_id`: `typ` `oauth-id-jag+jwt`; a pinned algorithm; issued by
    /// an enabled provider trusted for ID-JAG and signed by one of its keys; `aud` this issuer alone;
    /// `client_id` the presenting client; `resource`, when present, this MCP server; `exp` ahead, `iat`
    /// not in the future; a `jti` used once on any instance. Every failure is `invalid_grant`.
    pub async fn verify(&self, assertion: &str, client_id: &str) -> Result<Asserted, OAuthError> {
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid_grant("the assertion is not a JWT"))?;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(ID_JAG_TYPE)) {
            return Err(invalid_grant("the assertion is not an ID-JAG (typ must be oauth-id-jag+jwt)"));
        }
        let alg = assertion_algorithm(header.alg)
            .ok_or_else(|| invalid_grant("the assertion's algorithm is not accepted (ES256, RS256 or EdDSA)"))?;
        let issuer = unverified_issuer(assertion).ok_or_else(|| invalid_grant("the assertion names no issuer"))?;
        let provider =
            self.store.enabled_identity_provider(&issuer).await?.filter(|p| p.trust_id_jag).ok_or_else(|| {
                invalid_grant("the assertion's issuer is not an identity provider trusted for ID-JAG")
            })?;
        let kid = header.kid.as_deref();
        let keys = self
            .providers
            .keys(&provider, kid)
            .await
            .ok_or_else(|| invalid_grant("the identity provider's signing keys are not available"))?;
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY as u64;
        validation.validate_nbf = true;
        validation.set_issuer(&[&provider.issuer]);
        validation.set_audience(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = keys
            .candidates(alg, kid)
            .iter()
            .find_map(|key| jsonwebtoken::decode::<Claims>(assertion, key, &validation).ok())
            .map(|d| d.claims)
            .ok_or_else(|| invalid_grant("the assertion's signature, audience or lifetime is not valid"))?;
        let single_audience = match &claims.aud {
            serde_json::Value::String(_) => true,
            serde_json::Value::Array(all) => all.len() == 1,
            _ => false,
        };
        if !single_audience {
            return Err(invalid_grant("the assertion must name this authorization server as its only audience"));
        }
        if claims.client_id.as_deref() != Some(client_id) {
            return Err(invalid_grant("the assertion was issued to another client"));
        }
        match &claims.resource {
            None => {}
            Some(serde_json::Value::String(r)) if self.resource.is_named_by(r) => {}
            Some(_) => {
                return Err(OAuthError::new(ErrorCode::InvalidTarget, "the assertion is for another resource"));
            }
        }
        let now = UnixTime::now().seconds();
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY) {
            return Err(invalid_grant("the assertion is issued in the future"));
        }
        if claims.sub.is_empty() || claims.sub.len() > 255 {
            return Err(invalid_grant("the assertion's subject is empty or too long"));
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty() && j.len() <= 256)
            .ok_or_else(|| invalid_grant("the assertion has no jti"))?;
        let once = sha256_hex(&format!("id-jag\n{}\n{jti}", provider.issuer));
        if !self.store.use_assertion(&once, UnixTime(claims.exp.saturating_add(LEEWAY))).await? {
            tracing::warn!(issuer = %provider.issuer, %client_id, "an ID-JAG was presented again (its jti was used)");
            return Err(invalid_grant("the assertion was used already"));
        }
        Ok(Asserted {
            subject: claims.sub,
            email: claims.email.filter(|e| e.len() <= 320 && e.contains('@')),
            scope: claims.scope.unwrap_or_default(),
            expires_at: UnixTime(claims.exp),
            email_verified: claims.email_verified,
            provider,
        })
    }
}

/// The `iss` of a JWT read without checking anything: only to find the provider whose keys then verify it.
fn unverified_issuer(assertion: &str) -> Option<String> {
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion).ok()?;
    claims.get("iss")?.as_str().filter(|s| !s.is_empty() && s.len() <= 2000).map(str::to_owned)
}
