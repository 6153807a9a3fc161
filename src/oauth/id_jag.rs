//! Enterprise-managed authorization (the MCP "Enterprise-Managed Authorization" extension, an application
//! of draft-ietf-oauth-identity-assertion-authz-grant): a client presents an Identity Assertion JWT
//! Authorization Grant (ID-JAG) that a trusted enterprise identity provider issued for it, with the
//! `urn:ietf:params:oauth:grant-type:jwt-bearer` grant (RFC 7523 §2.1). The provider's policy stands in for
//! the consent page. This module checks the assertion; the token endpoint maps its person and issues.
use std::time::Duration;

use jsonwebtoken::Validation;
use serde::Deserialize;
use url::Url;

use super::error::{ErrorCode, OAuthError};
use crate::clock::UnixTime;
use crate::crypto::sha256_hex;
use crate::domain::client_keys::{ClientKeys, KeyCache, assertion_algorithm};
use crate::domain::resource::Resource;
use crate::store::{Store, identity_provider};

/// The JWT `typ` of an ID-JAG.
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";
/// Advertised in `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";
const LEEWAY: i64 = 10;
/// A provider's keys are used this long (fetched again early for a key id they lack, see [`KeyCache`]), and
/// while a refresh fails, up to `STALE_KEYS_FOR`.
const KEYS_FOR: Duration = Duration::from_secs(3600);
const STALE_KEYS_FOR: Duration = Duration::from_secs(24 * 3600);
/// The most of a discovery document or key set read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The most keys a provider's set may hold (Entra ID and Google publish several).
const MAX_PROVIDER_KEYS: usize = 50;

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
    http: reqwest::Client,
    /// Our issuer: the one audience an ID-JAG may name.
    issuer: String,
    resource: Resource,
    /// Providers' key sets, by provider as configured.
    keys: KeyCache,
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::invalid_grant(description.to_owned())
}

impl EnterpriseAssertions {
    pub fn new(store: Store, issuer: String, resource: Resource) -> anyhow::Result<EnterpriseAssertions> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .user_agent(concat!("mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(EnterpriseAssertions { store, http, issuer, resource, keys: KeyCache::default() })
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
        let keys = self.provider_keys(&provider, kid).await?;
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

    /// The provider's signing keys: cached for an hour; fetched again early, at most once a minute, for a key
    /// id the cached set lacks; a failing provider is tried at most once a minute.
    async fn provider_keys(
        &self,
        provider: &identity_provider::Model,
        kid: Option<&str>,
    ) -> Result<ClientKeys, OAuthError> {
        // Keyed by the provider as configured: removing and adding it again (new keys) starts afresh.
        let key =
            format!("{}\n{}\n{}", provider.issuer, provider.jwks_uri.as_deref().unwrap_or(""), provider.created_at);
        let fetch = async {
            match self.fetch_keys(provider).await {
                Ok(keys) => Some((keys, KEYS_FOR)),
                Err(why) => {
                    tracing::warn!(provider = %provider.name, why, "fetching the identity provider's keys failed");
                    None
                }
            }
        };
        // While a refresh fails, the last keys serve for a day: a provider's brief outage stops nobody.
        self.keys
            .get(&key, kid, STALE_KEYS_FOR - KEYS_FOR, fetch)
            .await
            .ok_or_else(|| invalid_grant("the identity provider's signing keys are not available"))
    }

    /// The key set at the provider's `jwks_uri`, configured or from its discovery document.
    async fn fetch_keys(&self, provider: &identity_provider::Model) -> Result<ClientKeys, String> {
        let jwks_uri = match &provider.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let base = provider.issuer.trim_end_matches('/');
                let discovery = self.get_json(&format!("{base}/.well-known/openid-configuration")).await?;
                if discovery.get("issuer").and_then(|v| v.as_str()) != Some(provider.issuer.as_str()) {
                    return Err("the discovery document names another issuer".into());
                }
                discovery
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or("the discovery document names no jwks_uri")?
                    .to_owned()
            }
        };
        let set = self.get_json(&jwks_uri).await?;
        ClientKeys::parse_usable(&set, MAX_PROVIDER_KEYS)
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        check_provider_url(url)?;
        let mut response = self.http.get(url).send().await.map_err(|_| format!("{url} cannot be reached"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| format!("{url} broke off"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT {
                return Err(format!("{url} sent more than {MAX_DOCUMENT} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|_| format!("{url} did not send JSON"))
    }
}

/// A provider URL: https, or http to this machine (a provider on loopback while developing). The operator
/// chose the provider, so internal hosts are allowed.
pub fn check_provider_url(url: &str) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|_| format!("{url} is not a URL"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("{url} must be https (or http to this machine)")),
    }
}

/// The `iss` of a JWT read without checking anything: only to find the provider whose keys then verify it.
fn unverified_issuer(assertion: &str) -> Option<String> {
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion).ok()?;
    claims.get("iss")?.as_str().filter(|s| !s.is_empty() && s.len() <= 2000).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::check_provider_url;

    #[test]
    fn provider_urls_are_https_or_this_machine() {
        assert!(check_provider_url("https://login.example.com/.well-known/openid-configuration").is_ok());
        assert!(check_provider_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_provider_url("http://localhost/jwks").is_ok());
        assert!(check_provider_url("http://idp.example.com/jwks").is_err());
        assert!(check_provider_url("file:///etc/passwd").is_err());
    }
}
