//! Each person's own account at an OAuth-protected upstream. The gateway is an ordinary MCP OAuth client of
//! the upstream (rmcp's authorization client does discovery, registration, PKCE, `resource`, the `iss` check
//! and the token requests): it registers there once for every instance, sends a person through the
//! upstream's own sign-in from /connections, keeps their tokens sealed, and refreshes them with one
//! instance at a time. Nothing here ever reaches an MCP client.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadata, AuthorizationRequest, AuthorizationSession,
    CredentialStore, InMemoryCredentialStore, InMemoryStateStore, OAuthClientConfig, StateStore,
    StoredAuthorizationState, StoredCredentials,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::{UnixTime, now};
use crate::crypto::{SecretsKey, sha256_hex};
use crate::domain::upstream::Upstream;
use crate::store::{ResealedAccount, Store, upstream_account, upstream_client, upstream_flow};

/// How long a person has to finish signing in at the upstream.
const FLOW_LIFETIME: i64 = 600;
/// A token this close to its expiry is refreshed before it is used.
const REFRESH_AHEAD: i64 = 60;
/// How long an instance may hold a refresh before another may take it over.
const REFRESH_CLAIM: i64 = 120;
/// The most a refresh at the upstream may take (well inside the claim).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a call waits for another instance's refresh.
const REFRESH_WAIT: Duration = Duration::from_secs(15);

/// Why a person's upstream account cannot be used (or connected) now.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The person has no account there: they connect one first.
    #[error("not connected")]
    NotConnected,
    /// Their account there stopped working (the upstream refused the refresh): they connect again.
    #[error("the connection needs to be made again: {0}")]
    Expired(String),
    /// The upstream's authorization server failed or answered something unusable.
    #[error("{0}")]
    Upstream(String),
    /// The sign-in at the upstream came back wrong (unknown or used state, another person's flow, a
    /// mismatched issuer, a refused code).
    #[error("{0}")]
    Refused(String),
    #[error("the database failed: {0}")]
    Db(#[from] sea_orm::DbErr),
}

/// A token to call an upstream with, and which of the account's versions it is.
#[derive(Clone)]
pub struct UpstreamToken {
    pub access_token: String,
    pub version: i64,
}

impl std::fmt::Debug for UpstreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamToken").field("version", &self.version).finish_non_exhaustive()
    }
}

/// A connection as the Connections page shows it.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub upstream: String,
    pub connected_at: UnixTime,
    pub scopes: Vec<String>,
    pub problem: Option<String>,
}

/// An authorization under way, sealed in its row.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: StoredAuthorizationState,
    client_id: String,
    return_to: Option<String>,
    /// The authorization server the person was sent to (its code goes back only there) and the resource.
    metadata: AuthorizationMetadata,
    resource: String,
}

/// One refresh at a time of one person's account at one upstream, on this instance.
type RefreshTurn = Arc<tokio::sync::Mutex<()>>;

/// People's upstream accounts, for the pages (connect, disconnect) and the gateway (tokens).
pub struct UpstreamAccounts {
    store: Store,
    secrets: Arc<SecretsKey>,

    /// Our issuer: links to our own pages.
    issuer: String,
    /// The key tying a connect link to the person it was made for.
    link_key: String,
    /// One refresh at a time per account within this instance (the database decides between instances).
    refreshing: Mutex<HashMap<(String, String), RefreshTurn>>,
    http: reqwest::Client,
    /// Whose credentials at which upstream changed on this instance (user id, upstream): the gateway closes
    /// that person's client or process at once, and lists what the upstream offers with new ones.
    changed: tokio::sync::broadcast::Sender<(String, String)>,
}

impl UpstreamAccounts {
    pub fn new(store: Store, secrets: Arc<SecretsKey>, issuer: &str) -> Arc<UpstreamAccounts> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client builds");
        Arc::new(UpstreamAccounts {
            link_key: secrets.derive("upstream connect links"),
            store,
            secrets,
            issuer: issuer.to_owned(),
            refreshing: Mutex::default(),
            http,
            changed: tokio::sync::broadcast::channel(64).0,
        })
    }

    /// The page that connects `user_id`'s account at `upstream`: our own, never the upstream's, and only for
    /// that person (the link names them by a keyed tag, so it cannot be aimed at someone else).
    pub fn connect_url(&self, user_id: &str, upstream: &str) -> String {
        format!("{}/connections/connect?upstream={upstream}&for={}", self.issuer, self.tag(user_id))
    }

    /// Whether a connect link's `for` names `user_id`.
    pub fn link_is_for(&self, user_id: &str, tag: &str) -> bool {
        crate::crypto::matches_sha256(tag, &sha256_hex(&self.tag(user_id))) && !tag.is_empty()
    }

    fn tag(&self, user_id: &str) -> String {
        sha256_hex(&format!("{}\0{user_id}", self.link_key))[..32].to_owned()
    }

    /// Starts connecting `user_id`'s account at `upstream`: discovers its authorization server, registers
    /// the gateway there if it has not yet, and returns where to send the browser.
    pub async fn start(
        &self,
        user_id: &str,
        upstream: &Upstream,
        return_to: Option<String>,
    ) -> Result<String, AccountError> {
        let (Some(settings), Some(url)) = (&upstream.oauth, upstream.url()) else {
            return Err(AccountError::Refused(format!("upstream {} does not sign people in", upstream.name)));
        };
        let mut manager = AuthorizationManager::new(url).await.map_err(|e| upstream_failure("its URL", &e))?;
        let resolution = manager.resolve_metadata().await.map_err(|e| upstream_failure("discovery", &e))?;
        if !resolution.source.is_discovered() {
            return Err(AccountError::Upstream(format!(
                "upstream {} publishes no OAuth metadata (RFC 9728 or RFC 8414)",
                upstream.name
            )));
        }
        let metadata = resolution.metadata;
        manager.set_metadata(metadata.clone());
        let states = InMemoryStateStore::new();
        manager.set_state_store(states.clone());

        let kept = match self.store.upstream_client(&upstream.name).await? {
            Some(row) if row.url == url && issuer_of(&row) == metadata.issuer => Some(row),
            Some(row) => {
                self.store.forget_upstream_client(&upstream.name, &row.url).await?;
                None
            }
            None => None,
        };
        let https = self.issuer.starts_with("https://");
        let mut request = AuthorizationRequest::new(callback_url(&self.issuer, &upstream.name))
            .with_client_name(format!("mcp-gateway ({})", host_of(&self.issuer)))
            .with_application_type(if https { "web" } else { "native" });
        if let Some(scopes) = &settings.scopes {
            request = request.with_scopes(scopes.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
        }
        let secret = match (&settings.client_id, &kept) {
            (Some(id), _) => {
                request = request.with_preregistered_client(id.clone());
                settings.client_secret.clone()
            }
            (None, Some(row)) => {
                request = request.with_preregistered_client(row.client_id.clone());
                self.open_client_secret(row)?
            }
            (None, None) => {
                if https {
                    request = request.with_client_metadata_url(client_document_url(&self.issuer, &upstream.name));
                }
                None
            }
        };
        if let Some(secret) = &secret {
            request = request.with_client_secret(secret.clone());
        }
        let session =
            AuthorizationSession::new(manager, request).await.map_err(|(_, e)| upstream_failure("registration", &e))?;
        let auth_url = session.get_authorization_url().to_owned();
        let (client_id, _) = session.get_credentials().await.map_err(|e| upstream_failure("registration", &e))?;
        let parsed =
            Url::parse(&auth_url).map_err(|_| AccountError::Upstream("the authorization URL is not a URL".into()))?;
        let query = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
        let (Some(csrf), Some(resource)) = (query("state"), query("resource")) else {
            return Err(AccountError::Upstream("the authorization URL lacks state or resource".into()));
        };
        let flow_resource = resource.clone();
        let state = states
            .load(&csrf)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| AccountError::Upstream("the authorization state was not kept".into()))?;

        if kept.is_none() {
            // What discovery found and who we are there, for the callback and refreshes on any instance.
            let row = upstream_client::Model {
                upstream: upstream.name.clone(),
                url: url.to_owned(),
                metadata: serde_json::to_string(&metadata).expect("metadata serializes"),
                resource,
                client_id: client_id.clone(),
                client_secret_sealed: None,
                created_at: now(),
            };
            self.store.keep_upstream_client(row).await?;
        }
        let flow = Flow { state, client_id, return_to, metadata, resource: flow_resource };
        let sealed = self
            .secrets
            .seal(&flow_context(user_id, &upstream.name), &serde_json::to_string(&flow).expect("a flow serializes"));
        self.store
            .save_upstream_flow(upstream_flow::Model {
                state_hash: sha256_hex(&csrf),
                user_id: user_id.to_owned(),
                upstream: upstream.name.clone(),
                flow_sealed: sealed,
                expires_at: UnixTime(now().seconds() + FLOW_LIFETIME),
            })
            .await?;
        Ok(auth_url)
    }

    /// Finishes a sign-in the upstream sent the browser back from: the `state` must be one this person
    /// started and not used yet; rmcp checks the `iss` (RFC 9207) and redeems the code with the PKCE
    /// verifier. Returns the upstream's name and where to go next.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        user_id: &str,
        upstreams: &[Upstream],
        came_back_to: &str,
        state: &str,
        code: &str,
        iss: Option<&str>,
    ) -> Result<(String, Option<String>), AccountError> {
        // Another person's `state` (a planted or stolen link) is refused without spending their flow.
        let Some(row) = self.store.take_upstream_flow(&sha256_hex(state), user_id).await? else {
            return Err(AccountError::Refused(
                "this sign-in is unknown, used, expired or another account's; connect again".into(),
            ));
        };
        // Each upstream has its own way back: a code another authorization server sent to this one's is
        // refused (mix-up, RFC 9700 §4.4), whatever `iss` says.
        if row.upstream != came_back_to {
            return Err(AccountError::Refused(format!(
                "this sign-in was for upstream {}, but came back to {came_back_to}'s address",
                row.upstream
            )));
        }
        let Some(upstream) = upstreams.iter().find(|u| u.name == row.upstream && u.enabled && u.oauth.is_some()) else {
            return Err(AccountError::Refused(format!("upstream {} is no longer served", row.upstream)));
        };
        let text = self
            .secrets
            .open(&flow_context(user_id, &row.upstream), &row.flow_sealed)
            .map_err(|_| AccountError::Refused("this sign-in's state does not open".into()))?;
        let flow: Flow =
            serde_json::from_str(&text).map_err(|_| AccountError::Refused("damaged sign-in state".into()))?;
        let states = InMemoryStateStore::new();
        let _ = states.save(state, flow.state).await;
        let credentials = InMemoryCredentialStore::new();
        let secret = self.secret_for(upstream, &flow.client_id).await?;
        let mut manager = self.manager(upstream, flow.metadata, &flow.resource, &flow.client_id, secret).await?;
        manager.set_state_store(states);
        manager.set_credential_store(credentials.clone());
        manager
            .exchange_code_for_token_with_issuer(code, state, iss)
            .await
            .map_err(|e| AccountError::Refused(format!("upstream {} refused the sign-in: {}", upstream.name, e)))?;
        let stored = credentials
            .load()
            .await
            .ok()
            .flatten()
            .ok_or_else(|| AccountError::Upstream("no tokens came back".into()))?;
        let (sealed, expires_at) = self.seal_credentials(user_id, &upstream.name, &stored);
        self.store.save_upstream_account(user_id, &upstream.name, sealed, expires_at).await?;
        let _ = self.changed.send((user_id.to_owned(), upstream.name.clone()));
        Ok((upstream.name.clone(), flow.return_to))
    }

    /// A manager that knows the upstream's authorization server and our client there, without asking
    /// anything over the network.
    async fn manager(
        &self,
        upstream: &Upstream,
        metadata: AuthorizationMetadata,
        resource: &str,
        client_id: &str,
        secret: Option<String>,
    ) -> Result<AuthorizationManager, AccountError> {
        // The manager sends its base URL as `resource` (RFC 8707) once it has metadata: the upstream's
        // canonical URI, as its protected-resource metadata gave it.
        let mut manager =
            AuthorizationManager::new(resource).await.map_err(|e| upstream_failure("its resource", &e))?;
        manager.set_metadata(metadata);
        let mut config = OAuthClientConfig::new(client_id, callback_url(&self.issuer, &upstream.name));
        if let Some(secret) = secret {
            config = config.with_client_secret(secret);
        }
        manager.configure_client(config).map_err(|e| upstream_failure("its client", &e))?;
        Ok(manager)
    }

    /// The secret of our client `client_id` at the upstream: the operator's, or one kept from registration.
    async fn secret_for(&self, upstream: &Upstream, client_id: &str) -> Result<Option<String>, AccountError> {
        if let Some(settings) = &upstream.oauth
            && settings.client_id.as_deref() == Some(client_id)
        {
            return Ok(settings.client_secret.clone());
        }
        match self.store.upstream_client(&upstream.name).await? {
            Some(row) if row.client_id == client_id => self.open_client_secret(&row),
            _ => Ok(None),
        }
    }

    fn open_client_secret(&self, row: &upstream_client::Model) -> Result<Option<String>, AccountError> {
        row.client_secret_sealed
            .as_deref()
            .map(|sealed| {
                self.secrets
                    .open(&format!("upstream-client:{}", row.upstream), sealed)
                    .map_err(|_| AccountError::Upstream("the stored client secret does not open".into()))
            })
            .transpose()
    }

    fn seal_credentials(
        &self,
        user_id: &str,
        upstream: &str,
        stored: &StoredCredentials,
    ) -> (String, Option<UnixTime>) {
        let expires_at = stored.token_response.as_ref().and_then(|t| {
            use oauth2::TokenResponse;
            t.expires_in().map(|e| {
                UnixTime(
                    i64::try_from(stored.token_received_at.unwrap_or(0))
                        .unwrap_or(0)
                        .saturating_add(i64::try_from(e.as_secs()).unwrap_or(i64::MAX)),
                )
            })
        });
        let text = serde_json::to_string(stored).expect("credentials serialize");
        (self.secrets.seal(&account_context(user_id, upstream), &text), expires_at)
    }

    fn open_credentials(&self, row: &upstream_account::Model) -> Result<StoredCredentials, AccountError> {
        let text = self
            .secrets
            .open(&account_context(&row.user_id, &row.upstream), &row.credentials_sealed)
            .map_err(|_| AccountError::Expired("the stored tokens do not open".into()))?;
        serde_json::from_str(&text).map_err(|_| AccountError::Expired("the stored tokens are damaged".into()))
    }

    /// Keeps the values `user_id` gives a program's per-person variables (all of them, none empty), sealed;
    /// their process is started again with them.
    pub async fn save_env(
        &self,
        user_id: &str,
        upstream: &Upstream,
        values: BTreeMap<String, String>,
    ) -> Result<(), AccountError> {
        let wanted: Vec<&String> = upstream.env_per_user.iter().collect();
        if wanted.is_empty() {
            return Err(AccountError::Refused(format!("upstream {} takes no values from people", upstream.name)));
        }
        for key in &wanted {
            match values.get(*key) {
                Some(v) if !v.is_empty() && v.len() <= 8192 && !v.contains('\0') => {}
                Some(v) if v.is_empty() => return Err(AccountError::Refused(format!("give a value for {key}"))),
                Some(_) => return Err(AccountError::Refused(format!("the value of {key} is too long or not text"))),
                None => return Err(AccountError::Refused(format!("give a value for {key}"))),
            }
        }
        if values.len() != wanted.len() {
            return Err(AccountError::Refused("only the upstream's own variables may be given".into()));
        }
        let text = serde_json::json!({ "env": values }).to_string();
        let sealed = self.secrets.seal(&account_context(user_id, &upstream.name), &text);
        self.store.save_upstream_account(user_id, &upstream.name, sealed, None).await?;
        let _ = self.changed.send((user_id.to_owned(), upstream.name.clone()));
        Ok(())
    }

    /// The values `user_id` gave a program's per-person variables, and which version of them.
    pub async fn env_of(
        &self,
        user_id: &str,
        upstream: &Upstream,
    ) -> Result<(BTreeMap<String, String>, i64), AccountError> {
        let row = self.store.upstream_account(user_id, &upstream.name).await?.ok_or(AccountError::NotConnected)?;
        let text = self
            .secrets
            .open(&account_context(&row.user_id, &row.upstream), &row.credentials_sealed)
            .map_err(|_| AccountError::Expired("the stored values do not open".into()))?;
        #[derive(Deserialize)]
        struct Stored {
            env: BTreeMap<String, String>,
        }
        let stored: Stored =
            serde_json::from_str(&text).map_err(|_| AccountError::Expired("the stored values are damaged".into()))?;
        // A variable the operator added since: the person gives it first.
        if upstream.env_per_user.iter().any(|k| !stored.env.contains_key(k)) {
            return Err(AccountError::Expired(format!("{} asks for a value you have not given yet", upstream.name)));
        }
        // Only the variables the upstream takes now: one the operator has since removed (or made shared) is
        // never passed.
        let env = stored.env.into_iter().filter(|(k, _)| upstream.env_per_user.contains(k)).collect();
        Ok((env, row.version))
    }

    /// The token to call `upstream` with for `user_id`, refreshed first when it is about to expire.
    pub async fn token(&self, user_id: &str, upstream: &Upstream) -> Result<UpstreamToken, AccountError> {
        let row = self.store.upstream_account(user_id, &upstream.name).await?.ok_or(AccountError::NotConnected)?;
        if let Some(problem) = &row.problem {
            return Err(AccountError::Expired(problem.clone()));
        }
        let expiring = row.expires_at.is_some_and(|at| at.seconds() - REFRESH_AHEAD <= now().seconds());
        if expiring {
            return self.refresh(user_id, upstream, row.version).await;
        }
        Ok(UpstreamToken { access_token: access_token_of(&self.open_credentials(&row)?)?, version: row.version })
    }

    /// Replaces the token at `stale` (expiring, or refused by the upstream with a 401) with a fresh one.
    /// Of every call on every instance that finds the same stale token, one refreshes; the others wait for
    /// its result.
    pub async fn refresh(&self, user_id: &str, upstream: &Upstream, stale: i64) -> Result<UpstreamToken, AccountError> {
        let lock = {
            let mut locks = self.refreshing.lock().expect("refresh locks");
            if locks.len() > 10_000 {
                locks.retain(|_, l| Arc::strong_count(l) > 1);
            }
            locks.entry((user_id.to_owned(), upstream.name.clone())).or_default().clone()
        };
        let _turn = lock.lock().await;
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        loop {
            let row = self.store.upstream_account(user_id, &upstream.name).await?.ok_or(AccountError::NotConnected)?;
            if let Some(problem) = &row.problem {
                return Err(AccountError::Expired(problem.clone()));
            }
            if row.version != stale {
                // Someone refreshed meanwhile.
                return Ok(UpstreamToken {
                    access_token: access_token_of(&self.open_credentials(&row)?)?,
                    version: row.version,
                });
            }
            let until = UnixTime(now().seconds() + REFRESH_CLAIM);
            let claim = crate::crypto::random_token();
            if self.store.claim_upstream_refresh(user_id, &upstream.name, stale, until, &claim).await? {
                return self.refresh_claimed(upstream, row, &claim).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AccountError::Upstream(format!(
                    "another instance is still refreshing the token for upstream {}",
                    upstream.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn refresh_claimed(
        &self,
        upstream: &Upstream,
        row: upstream_account::Model,
        claim: &str,
    ) -> Result<UpstreamToken, AccountError> {
        let (user_id, version) = (row.user_id.clone(), row.version);
        let outcome = async {
            let stored = self.open_credentials(&row)?;
            // The refresh token goes only to the authorization server that issued it, with the client it
            // was issued to: after the upstream named another server, the person connects again.
            let client = self.store.upstream_client(&upstream.name).await?.ok_or_else(|| {
                AccountError::Expired(format!("the registration at upstream {} is gone", upstream.name))
            })?;
            let metadata: AuthorizationMetadata = serde_json::from_str(&client.metadata)
                .map_err(|_| AccountError::Upstream("the stored authorization server metadata is damaged".into()))?;
            let ours = client.client_id == stored.client_id
                || upstream.oauth.as_ref().and_then(|o| o.client_id.as_deref()) == Some(stored.client_id.as_str());
            if stored.issuer.is_none() || stored.issuer != metadata.issuer || !ours {
                return Err(AccountError::Expired(format!(
                    "upstream {}'s authorization server or our client there changed",
                    upstream.name
                )));
            }
            let credentials = InMemoryCredentialStore::new();
            let _ = credentials.save(stored.clone()).await;
            let secret = self.secret_for(upstream, &stored.client_id).await?;
            let mut manager = self.manager(upstream, metadata, &client.resource, &stored.client_id, secret).await?;
            manager.set_credential_store(credentials.clone());
            let refreshed = tokio::time::timeout(REFRESH_TIMEOUT, manager.refresh_token()).await.map_err(|_| {
                AccountError::Upstream(format!("upstream {}'s token endpoint did not answer in time", upstream.name))
            })?;
            match refreshed {
                Ok(_) => {}
                Err(e @ (AuthError::TokenRefreshRejected(_) | AuthError::AuthorizationRequired)) => {
                    return Err(AccountError::Expired(format!("upstream {} refused the refresh: {e}", upstream.name)));
                }
                Err(e) => return Err(upstream_failure("the refresh", &e)),
            }
            credentials.load().await.ok().flatten().ok_or_else(|| AccountError::Upstream("no tokens came back".into()))
        }
        .await;
        match outcome {
            Ok(fresh) => {
                let (sealed, expires_at) = self.seal_credentials(&user_id, &upstream.name, &fresh);
                if !self
                    .store
                    .store_upstream_refresh(&user_id, &upstream.name, version, claim, sealed, expires_at)
                    .await?
                {
                    return Err(AccountError::NotConnected);
                }
                tracing::info!(upstream = %upstream.name, %user_id, "upstream token refreshed");
                Ok(UpstreamToken { access_token: access_token_of(&fresh)?, version: version + 1 })
            }
            Err(AccountError::Expired(problem)) => {
                tracing::warn!(upstream = %upstream.name, %user_id, %problem, "upstream refresh refused");
                self.store.end_upstream_refresh(&user_id, &upstream.name, version, claim, Some(&problem)).await?;
                Err(AccountError::Expired(problem))
            }
            Err(other) => {
                self.store.end_upstream_refresh(&user_id, &upstream.name, version, claim, None).await?;
                Err(other)
            }
        }
    }

    /// Ends a person's connection: revoked at the upstream where it offers revocation (RFC 7009), and
    /// deleted here whatever the upstream says. `false` when there was none.
    pub async fn disconnect(&self, user_id: &str, upstream: &str) -> Result<bool, AccountError> {
        let Some(row) = self.store.delete_upstream_account(user_id, upstream).await? else {
            return Ok(false);
        };
        let _ = self.changed.send((user_id.to_owned(), upstream.to_owned()));
        let Ok(stored) = self.open_credentials(&row) else {
            return Ok(true);
        };
        if let Some(client) = self.store.upstream_client(upstream).await?
            && let Ok(metadata) = serde_json::from_str::<AuthorizationMetadata>(&client.metadata)
            && let Some(endpoint) = metadata.additional_fields.get("revocation_endpoint").and_then(|v| v.as_str())
            && beside_token_endpoint(endpoint, &metadata.token_endpoint)
            && stored.issuer == metadata.issuer
            && let Some(tokens) = &stored.token_response
        {
            use oauth2::TokenResponse;
            let secret = self.open_client_secret(&client).ok().flatten();
            let mut to_revoke: Vec<(&str, String)> =
                tokens.refresh_token().map(|t| ("refresh_token", t.secret().clone())).into_iter().collect();
            to_revoke.push(("access_token", tokens.access_token().secret().clone()));
            for (hint, token) in to_revoke {
                let mut form = vec![("token", token), ("token_type_hint", hint.to_owned())];
                let mut request = self.http.post(endpoint);
                match &secret {
                    Some(secret) => request = request.basic_auth(&stored.client_id, Some(secret)),
                    None => form.push(("client_id", stored.client_id.clone())),
                }
                let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
                let request = request.header("content-type", "application/x-www-form-urlencoded").body(body);
                match request.send().await {
                    Ok(response) if response.status().is_success() => {}
                    Ok(response) => {
                        tracing::warn!(%upstream, status = %response.status(), "revoking at the upstream failed");
                    }
                    Err(e) => tracing::warn!(%upstream, error = %e, "revoking at the upstream failed"),
                }
            }
        }
        Ok(true)
    }

    /// Someone with working credentials at `upstream`, if anyone.
    pub async fn someone_at(&self, upstream: &str) -> Result<Option<String>, sea_orm::DbErr> {
        self.store.someone_at_upstream(upstream).await
    }

    /// Hears whose credentials at which upstream change on this instance.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<(String, String)> {
        self.changed.subscribe()
    }

    /// The last list of what a per-person upstream offers (JSON), kept for every instance.
    pub async fn saved_offer(&self, upstream: &str) -> Result<Option<String>, sea_orm::DbErr> {
        Ok(self.store.upstream_offer(upstream).await?.map(|row| row.offer))
    }

    pub async fn save_offer(&self, upstream: &str, offer: String) -> Result<(), sea_orm::DbErr> {
        self.store.save_upstream_offer(upstream, offer).await
    }

    /// A person's connections.
    pub async fn accounts_of(&self, user_id: &str) -> Result<Vec<AccountView>, AccountError> {
        Ok(self
            .store
            .upstream_accounts_of(user_id)
            .await?
            .into_iter()
            .map(|row| AccountView {
                scopes: self.open_credentials(&row).map(|c| c.granted_scopes).unwrap_or_default(),
                upstream: row.upstream,
                connected_at: row.created_at,
                problem: row.problem,
            })
            .collect())
    }
}

/// Every person's upstream tokens and every client secret at an upstream, sealed again under `to` (for
/// `mcp-gateway secrets rotate-key`).
pub async fn resealed_accounts(
    store: &Store,
    from: &SecretsKey,
    to: &SecretsKey,
) -> Result<Vec<ResealedAccount>, AccountError> {
    let mut resealed = Vec::new();
    for row in store.all_upstream_accounts().await? {
        let context = account_context(&row.user_id, &row.upstream);
        let plain = from.open(&context, &row.credentials_sealed).map_err(|_| {
            AccountError::Expired(format!("the tokens of {} at upstream {} do not open", row.user_id, row.upstream))
        })?;
        resealed.push(ResealedAccount::Tokens {
            new: to.seal(&context, &plain),
            user_id: row.user_id,
            upstream: row.upstream,
            old: row.credentials_sealed,
        });
    }
    for row in store.upstream_clients().await? {
        if let Some(old) = row.client_secret_sealed {
            let context = format!("upstream-client:{}", row.upstream);
            let plain = from.open(&context, &old).map_err(|_| {
                AccountError::Upstream(format!("the client secret at upstream {} does not open", row.upstream))
            })?;
            resealed.push(ResealedAccount::ClientSecret {
                new: to.seal(&context, &plain),
                upstream: row.upstream,
                old,
            });
        }
    }
    Ok(resealed)
}

/// Where the browser comes back from `upstream`'s sign-in: one address per upstream, so that a code can
/// come back only from where it was sent (against mix-up, RFC 9700 §4.4).
pub fn callback_url(issuer: &str, upstream: &str) -> String {
    format!("{issuer}/connections/callback/{upstream}")
}

/// Where the gateway's Client ID Metadata Document for `upstream` is: its client id there, when the upstream
/// accepts those (one per upstream, each naming only that upstream's way back).
pub fn client_document_url(issuer: &str, upstream: &str) -> String {
    format!("{issuer}/oauth/upstream-clients/{upstream}")
}

/// The gateway's Client ID Metadata Document for `upstream`, which upstreams that support those fetch
/// instead of our registering there (draft-ietf-oauth-client-id-metadata-document). `None` for a name no
/// upstream could have.
pub fn client_document(issuer: &str, upstream: &str) -> Option<serde_json::Value> {
    let valid = (1..=32).contains(&upstream.len())
        && upstream.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then(|| {
        serde_json::json!({
            "client_id": client_document_url(issuer, upstream),
            "client_name": format!("mcp-gateway ({})", host_of(issuer)),
            "client_uri": issuer,
            "redirect_uris": [callback_url(issuer, upstream)],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "web",
        })
    })
}

/// Whether a revocation endpoint from the upstream's metadata is on the same origin as its token endpoint
/// (which discovery checked): the gateway posts tokens there, and must not be sent anywhere else (SSRF).
fn beside_token_endpoint(endpoint: &str, token_endpoint: &str) -> bool {
    match (Url::parse(endpoint), Url::parse(token_endpoint)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin() && matches!(a.scheme(), "https" | "http"),
        _ => false,
    }
}

fn access_token_of(stored: &StoredCredentials) -> Result<String, AccountError> {
    use oauth2::TokenResponse;
    stored
        .token_response
        .as_ref()
        .map(|t| t.access_token().secret().clone())
        .ok_or_else(|| AccountError::Expired("no access token is kept".into()))
}

fn issuer_of(row: &upstream_client::Model) -> Option<String> {
    serde_json::from_str::<AuthorizationMetadata>(&row.metadata).ok().and_then(|m| m.issuer)
}

fn host_of(url: &str) -> String {
    Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| url.to_owned())
}

fn flow_context(user_id: &str, upstream: &str) -> String {
    format!("upstream-flow:{user_id}:{upstream}")
}

fn account_context(user_id: &str, upstream: &str) -> String {
    format!("upstream-account:{user_id}:{upstream}")
}

/// An rmcp authorization error, as a sentence naming the step (never a token: rmcp's errors carry none).
fn upstream_failure(step: &str, error: &AuthError) -> AccountError {
    AccountError::Upstream(format!("{step} failed: {error}"))
}
