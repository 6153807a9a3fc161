//! The identity providers the operator trusts, as the network sees them: each one's OpenID Connect
//! discovery document and signing keys (fetched under the same rules, cached), and its token endpoint. Used
//! to verify enterprise assertions (ID-JAG) and to sign people in.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use url::Url;

use crate::crypto::SecretsKey;
use crate::domain::client_keys::{ClientKeys, KeyCache};
use crate::store::{ResealedAccount, Store, identity_provider, user};

/// A provider's keys are used this long (fetched again early for a key id they lack, see [`KeyCache`]), and
/// while a refresh fails, up to `STALE_KEYS_FOR`.
const KEYS_FOR: Duration = Duration::from_secs(3600);
const STALE_KEYS_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long a discovery document is used.
const DISCOVERY_FOR: Duration = Duration::from_secs(3600);
/// The most of a discovery document, key set or token response read.
const MAX_DOCUMENT: usize = 256 * 1024;
/// The most keys a provider's set may hold (Entra ID and Google publish several).
const MAX_PROVIDER_KEYS: usize = 50;

/// What a provider's discovery document says that we use.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
}

/// Identity providers, reached over the network.
pub struct Providers {
    http: reqwest::Client,
    keys: KeyCache,
    documents: Mutex<HashMap<String, (serde_json::Value, Instant)>>,
}

impl Providers {
    pub fn new() -> anyhow::Result<Arc<Providers>> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Providers { http, keys: KeyCache::default(), documents: Mutex::default() }))
    }

    /// The provider's discovery document (`{issuer}/.well-known/openid-configuration`), which must name the
    /// provider's own issuer; cached for an hour.
    async fn document(&self, provider: &identity_provider::Model) -> Result<serde_json::Value, String> {
        let key = format!("{}\n{}", provider.issuer, provider.created_at.seconds());
        if let Some((found, at)) = self.documents.lock().expect("documents lock").get(&key)
            && at.elapsed() < DISCOVERY_FOR
        {
            return Ok(found.clone());
        }
        let base = provider.issuer.trim_end_matches('/');
        let document = self.get_json(&format!("{base}/.well-known/openid-configuration")).await?;
        if document.get("issuer").and_then(|v| v.as_str()) != Some(provider.issuer.as_str()) {
            return Err("the discovery document names another issuer".into());
        }
        let mut documents = self.documents.lock().expect("documents lock");
        if documents.len() > 1000 {
            documents.clear();
        }
        documents.insert(key, (document.clone(), Instant::now()));
        Ok(document)
    }

    /// Where a person signs in at the provider and where the code is redeemed: from its discovery document
    /// (OpenID Connect), or GitHub's fixed paths under its web address.
    pub async fn discovery(&self, provider: &identity_provider::Model) -> Result<Discovered, String> {
        if provider.is_github() {
            let base = provider.issuer.trim_end_matches('/');
            return Ok(Discovered {
                authorization_endpoint: format!("{base}/login/oauth/authorize"),
                token_endpoint: format!("{base}/login/oauth/access_token"),
                jwks_uri: String::new(),
            });
        }
        let document = self.document(provider).await?;
        Ok(Discovered {
            authorization_endpoint: endpoint(&document, "authorization_endpoint")?,
            token_endpoint: endpoint(&document, "token_endpoint")?,
            jwks_uri: match &provider.jwks_uri {
                Some(uri) => uri.clone(),
                None => endpoint(&document, "jwks_uri")?,
            },
        })
    }

    /// The provider's signing keys: cached for an hour; fetched again early, at most once a minute, for a key
    /// id the cached set lacks; a failing provider is tried at most once a minute, and while a refresh fails
    /// the last keys serve for a day (a provider's brief outage stops nobody).
    pub async fn keys(&self, provider: &identity_provider::Model, kid: Option<&str>) -> Option<ClientKeys> {
        // Keyed by the provider as configured: removing and adding it again (new keys) starts afresh.
        let key =
            format!("{}\n{}\n{}", provider.issuer, provider.jwks_uri.as_deref().unwrap_or(""), provider.created_at);
        let fetch = async {
            let fetched = match &provider.jwks_uri {
                Some(uri) => self.get_json(uri).await,
                None => match self.document(provider).await.and_then(|d| endpoint(&d, "jwks_uri")) {
                    Ok(uri) => self.get_json(&uri).await,
                    Err(why) => Err(why),
                },
            };
            match fetched.and_then(|set| ClientKeys::parse_usable(&set, MAX_PROVIDER_KEYS)) {
                Ok(keys) => Some((keys, KEYS_FOR)),
                Err(why) => {
                    tracing::warn!(provider = %provider.name, why, "fetching the identity provider's keys failed");
                    None
                }
            }
        };
        self.keys.get(&key, kid, STALE_KEYS_FOR - KEYS_FOR, fetch).await
    }

    /// A token request at `token_endpoint` (form-encoded, with the client authenticated by HTTP Basic when it
    /// has a secret, or in the form with `secret_in_form`, as GitHub documents); the JSON answer, or why not
    /// (also a refusal sent with 200, as GitHub does).
    pub async fn token_request(
        &self,
        token_endpoint: &str,
        client_id: &str,
        client_secret: Option<&str>,
        secret_in_form: bool,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, String> {
        check_provider_url(token_endpoint)?;
        let mut pairs: Vec<(&str, &str)> = form.to_vec();
        let mut request = self.http.post(token_endpoint).header("accept", "application/json");
        match client_secret {
            Some(secret) if secret_in_form => {
                pairs.push(("client_id", client_id));
                pairs.push(("client_secret", secret));
            }
            // RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined.
            Some(secret) => {
                let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                request = request.basic_auth(encode(client_id), Some(encode(secret)));
            }
            None => pairs.push(("client_id", client_id)),
        }
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|_| format!("{token_endpoint} cannot be reached"))?;
        let status = response.status();
        let json = read_json(response, token_endpoint).await?;
        if !status.is_success() || json.get("error").is_some() {
            let error = json.get("error").and_then(|v| v.as_str()).unwrap_or("no error code");
            let error: String = error.chars().filter(char::is_ascii_graphic).take(64).collect();
            return Err(format!("the provider refused the code ({status}, {error})"));
        }
        Ok(json)
    }

    /// Who a GitHub token belongs to, from GitHub's API at `api_url`: the account's numeric id (stable, unlike
    /// its login), login, primary email (vouched when GitHub verified it; needs `user:email`), and the
    /// organizations (`org`) and teams (`org/team`) it belongs to as groups (needs `read:org`; without it,
    /// what GitHub shows publicly). The first 100 of each are read.
    pub async fn github_person(&self, api_url: &str, token: &str) -> Result<GithubPerson, String> {
        let api = api_url.trim_end_matches('/');
        let user = self.github_get(&format!("{api}/user"), token).await?.ok_or("GitHub did not show the account")?;
        let id = match user.get("id") {
            Some(serde_json::Value::Number(n)) if n.is_u64() => n.to_string(),
            _ => return Err("GitHub's account has no numeric id".into()),
        };
        let login = user.get("login").and_then(|v| v.as_str()).map(str::to_owned);
        let emails = self.github_get(&format!("{api}/user/emails?per_page=100"), token).await?;
        let primary = emails
            .as_ref()
            .and_then(|list| list.as_array())
            .and_then(|list| list.iter().find(|e| e.get("primary").and_then(|v| v.as_bool()) == Some(true)));
        let (email, email_verified) = match primary {
            Some(e) => (
                e.get("email").and_then(|v| v.as_str()).map(str::to_owned),
                e.get("verified").and_then(|v| v.as_bool()) == Some(true),
            ),
            // Without `user:email`: the public address, which GitHub does not vouch for here.
            None => (user.get("email").and_then(|v| v.as_str()).map(str::to_owned), false),
        };
        let mut groups = Vec::new();
        if let Some(serde_json::Value::Array(orgs)) =
            self.github_get(&format!("{api}/user/orgs?per_page=100"), token).await?
        {
            groups.extend(orgs.iter().filter_map(|o| o.get("login")?.as_str()).map(str::to_owned));
        }
        if let Some(serde_json::Value::Array(teams)) =
            self.github_get(&format!("{api}/user/teams?per_page=100"), token).await?
        {
            groups.extend(teams.iter().filter_map(|t| {
                let org = t.get("organization")?.get("login")?.as_str()?;
                Some(format!("{org}/{}", t.get("slug")?.as_str()?))
            }));
        }
        Ok(GithubPerson { id, login, email, email_verified, groups })
    }

    /// Gives a GitHub token back once the person is known (we keep none): `DELETE
    /// /applications/{client_id}/token`, authenticated as the app. Best effort.
    pub async fn github_forget(&self, api_url: &str, client_id: &str, client_secret: &str, token: &str) {
        let encoded: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
        let url = format!("{}/applications/{encoded}/token", api_url.trim_end_matches('/'));
        let sent = self
            .http
            .delete(&url)
            .basic_auth(client_id, Some(client_secret))
            .header("accept", "application/vnd.github+json")
            .json(&serde_json::json!({ "access_token": token }))
            .send()
            .await;
        if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
            tracing::info!(status = ?e.status(), "giving a GitHub token back failed");
        }
    }

    /// A GitHub API document, or `None` where the token's scopes do not reach it (403, 404).
    async fn github_get(&self, url: &str, token: &str) -> Result<Option<serde_json::Value>, String> {
        check_provider_url(url)?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|_| format!("{url} cannot be reached"))?;
        match response.status().as_u16() {
            200 => read_json(response, url).await.map(Some),
            403 | 404 => Ok(None),
            status => Err(format!("{url} answered {status}")),
        }
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        check_provider_url(url)?;
        let response = self.http.get(url).send().await.map_err(|_| format!("{url} cannot be reached"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        read_json(response, url).await
    }
}

/// A URL a discovery document names, under the provider URL rules.
fn endpoint(document: &serde_json::Value, name: &str) -> Result<String, String> {
    let value =
        document.get(name).and_then(|v| v.as_str()).ok_or_else(|| format!("the discovery document names no {name}"))?;
    check_provider_url(value)?;
    Ok(value.to_owned())
}

async fn read_json(mut response: reqwest::Response, url: &str) -> Result<serde_json::Value, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| format!("{url} broke off"))? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_DOCUMENT {
            return Err(format!("{url} sent more than {MAX_DOCUMENT} bytes"));
        }
    }
    serde_json::from_slice(&body).map_err(|_| format!("{url} did not send JSON"))
}

/// What GitHub's API says of a person.
#[derive(Debug, Clone)]
pub struct GithubPerson {
    pub id: String,
    pub login: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub groups: Vec<String>,
}

/// Why a person a provider vouches for gets no account here.
#[derive(Debug, thiserror::Error)]
pub enum PersonRefused {
    /// Nobody here is linked to them, and the provider may not add accounts for them.
    #[error("nobody here is linked to this person, and the identity provider may not add accounts for them")]
    NotAllowed,
    #[error("this person's account is disabled")]
    Disabled,
    #[error("the database failed: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// The account of the person a provider knows as `subject`: the one linked to its `iss` + `sub` (never found
/// by email), or a new one where the provider allows sign-up (`--allow-signup`, or the email's domain in
/// `--allowed-domains`, and then only for an email the provider vouches for). A disabled account gets nothing.
pub async fn person_for(
    store: &Store,
    provider: &identity_provider::Model,
    subject: &str,
    email: Option<&str>,
    email_vouched: bool,
    preferred_username: Option<&str>,
) -> Result<user::Model, PersonRefused> {
    let user = match store.find_identity(&provider.issuer, subject).await? {
        Some(link) => store.find_user(&link.user_id).await?,
        None => {
            let domain = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
            let domain_allowed = email_vouched
                && domain.is_some_and(|d| provider.allowed_domains.split(' ').any(|a| a.eq_ignore_ascii_case(&d)));
            if !(provider.allow_signup || domain_allowed) {
                return Err(PersonRefused::NotAllowed);
            }
            let wanted = username_for(preferred_username.or_else(|| email.and_then(|e| e.split('@').next())), subject);
            let user = store.create_user_for_identity(&provider.issuer, subject, email, &wanted).await?;
            tracing::info!(provider = %provider.name, user_id = %user.id, "account made for a person an identity provider vouched for");
            Some(user)
        }
    };
    user.filter(|u| !u.disabled).ok_or(PersonRefused::Disabled)
}

/// A username for a new account: `wanted` (a preferred username, or the email's local part) or the subject,
/// in the username alphabet.
fn username_for(wanted: Option<&str>, subject: &str) -> String {
    let base = wanted.filter(|w| !w.is_empty()).unwrap_or(subject);
    let mut name: String = base
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .take(48)
        .collect();
    if name.len() < 3 {
        name = format!("user-{name}");
    }
    name
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

/// Every provider's client secret, sealed again under `to` (for `mcp-gateway secrets rotate-key`).
pub async fn resealed_provider_secrets(
    store: &Store,
    from: &SecretsKey,
    to: &SecretsKey,
) -> anyhow::Result<Vec<ResealedAccount>> {
    let mut resealed = Vec::new();
    for provider in store.list_identity_providers().await? {
        if let Some(old) = provider.client_secret_sealed {
            let context = identity_provider::secret_context(&provider.name);
            let plain = from.open(&context, &old).map_err(|_| {
                anyhow::anyhow!("the client secret of identity provider {} does not open", provider.name)
            })?;
            resealed.push(ResealedAccount::ProviderSecret { new: to.seal(&context, &plain), name: provider.name, old });
        }
    }
    Ok(resealed)
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
