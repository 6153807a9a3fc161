//! An upstream each person reaches with their own credentials: their account there (`--auth oauth`: one rmcp
//! client per person on this instance, made with that person's upstream token, never the MCP client's), or
//! their own values of a program's variables (`--env-per-user`: one process per person, within a cap per
//! instance). A client is made again when the credentials change, and closed when idle. What the upstream offers can only be listed with someone's token, so
//! the last list any person's client saw is kept in the database, for every instance and restart.
#![allow(deprecated)] // logging is deprecated by SEP-2577 but is what upstreams use today
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use rmcp::service::{ClientCacheConfig, RunningService, ServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{Peer, RoleClient};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::catalog::Offer;
use super::connection::{Event, Group, Heard, Program, Relay, fetch_offer, kill_group, start_program};
use crate::clock::now;
use crate::domain::upstream::{Transport, Upstream};
use crate::domain::upstream_accounts::{AccountError, UpstreamAccounts, UpstreamToken};

/// Why a person's call cannot go to the upstream.
#[derive(Debug)]
pub enum LinkError {
    /// The person has no working account there: they connect one at `url` (our own page).
    NeedsAccount {
        url: String,
        why: String,
    },
    Unavailable(String),
}

/// One person's client of the upstream, made with one version of their credentials.
pub struct Link {
    pub peer: Peer<RoleClient>,
    pub relay: Arc<Relay>,
    pub version: i64,
    service: RunningService<RoleClient, Arc<Relay>>,
    last_used: AtomicI64,
    /// The person's own process, and its place in the instance's cap.
    program: Option<(tokio::process::Child, Group, OwnedSemaphorePermit)>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // The process (killed on drop) and whatever it started in its group.
        if let Some((_, group, _)) = &self.program {
            kill_group(*group);
        }
    }
}

/// What a person's client is made with.
enum Credential {
    Token(UpstreamToken),
    Env(BTreeMap<String, String>, i64),
}

impl Credential {
    fn version(&self) -> i64 {
        match self {
            Credential::Token(t) => t.version,
            Credential::Env(_, version) => *version,
        }
    }
}

/// How many per-person processes this instance may run, shared by every such upstream.
#[derive(Clone)]
pub struct ProcessBudget {
    permits: Arc<Semaphore>,
    max: usize,
    /// A person's process stops after this long without a call.
    pub idle: Duration,
}

impl ProcessBudget {
    pub fn new(max: usize, idle: Duration) -> ProcessBudget {
        ProcessBudget { permits: Arc::new(Semaphore::new(max)), max, idle }
    }
}

/// One person's client, made under a lock of its own.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Link>>>>;

/// An upstream reached with each person's own account.
pub struct Personal {
    pub upstream: Upstream,
    accounts: Arc<UpstreamAccounts>,
    /// Each person's client, behind a lock of its own so that one person's slow sign-in there waits alone.
    links: Mutex<HashMap<String, Slot>>,
    learned: RwLock<Option<Arc<Offer>>>,
    heard: mpsc::UnboundedSender<Heard>,
    events: mpsc::UnboundedSender<Event>,
    http: reqwest::Client,
    budget: ProcessBudget,
    stop: CancellationToken,
}

impl Personal {
    pub fn start(
        upstream: Upstream,
        accounts: Arc<UpstreamAccounts>,
        events: mpsc::UnboundedSender<Event>,
        budget: ProcessBudget,
    ) -> Arc<Personal> {
        let (heard, heard_rx) = mpsc::unbounded_channel();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("an HTTP client builds");
        let personal = Arc::new(Personal {
            upstream,
            accounts,
            links: Mutex::default(),
            learned: RwLock::default(),
            heard,
            events,
            http,
            budget,
            stop: CancellationToken::new(),
        });
        tokio::spawn(personal.clone().run(heard_rx));
        personal
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// What the upstream offers, as last seen by anyone's client.
    pub fn offer(&self) -> Option<Arc<Offer>> {
        self.learned.read().expect("learned lock").clone()
    }

    /// Our page where `user_id` connects their account here.
    pub fn connect_url(&self, user_id: &str) -> String {
        self.accounts.connect_url(user_id, &self.upstream.name)
    }

    /// How many people's clients are open on this instance.
    pub fn open_links(&self) -> usize {
        self.links.lock().expect("links lock").len()
    }

    async fn run(self: Arc<Personal>, mut heard: mpsc::UnboundedReceiver<Heard>) {
        let mut changes = self.accounts.changes();
        let mut sweep =
            tokio::time::interval((self.budget.idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)));
        // Until it knows what the upstream offers, it looks for what another instance learned.
        let mut unknown = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                _ = sweep.tick() => self.close_idle(),
                _ = unknown.tick(), if self.offer().is_none() => {
                    self.load_offer().await;
                    // Nobody's list is kept yet, but someone gave credentials (perhaps before this instance
                    // served the upstream): their client lists what it offers.
                    if self.offer().is_none()
                        && let Ok(Some(user_id)) = self.accounts.someone_at(&self.upstream.name).await
                        && let Err(e) = self.link(&user_id).await
                    {
                        tracing::debug!(upstream = %self.upstream.name, error = ?e, "listing with someone's credentials failed");
                    }
                }
                Ok((user_id, upstream)) = changes.recv() => {
                    if upstream != self.upstream.name {
                        continue;
                    }
                    // Someone's credentials changed here: their old client or process goes at once (a
                    // disconnect leaves nothing of theirs running), and a new one lists what the upstream offers.
                    self.links.lock().expect("links lock").remove(&user_id);
                    match self.link(&user_id).await {
                        Ok(_) | Err(LinkError::NeedsAccount { .. }) => {}
                        Err(e) => tracing::warn!(upstream = %self.upstream.name, error = ?e, "new credentials could not be used"),
                    }
                }
                Some(what) = heard.recv() => match what {
                    // One list for everyone: listed again through an open client, off this loop.
                    Heard::ToolsChanged | Heard::PromptsChanged => {
                        tokio::spawn(self.clone().relist());
                    }
                    Heard::ResourcesChanged => {
                        let _ = self.events.send(Event::ResourcesChanged);
                    }
                    // Nothing of such an upstream is subscribed to.
                    Heard::ResourceUpdated(_) => {}
                },
            }
        }
        self.links.lock().expect("links lock").clear();
    }

    async fn load_offer(&self) {
        match self.accounts.saved_offer(&self.upstream.name).await {
            Ok(Some(text)) => match serde_json::from_str::<Offer>(&text) {
                Ok(offer) => self.learn(offer, false).await,
                Err(e) => {
                    tracing::warn!(upstream = %self.upstream.name, error = %e, "the kept list of what it offers is damaged");
                }
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(upstream = %self.upstream.name, error = %e, "reading what it offers failed"),
        }
    }

    /// A person's client heard that the upstream's tools or prompts changed: what it offers is listed again
    /// through an open client (the list is everyone's), and clients are told if it changed.
    async fn relist(self: Arc<Personal>) {
        let open = self.links.lock().expect("links lock").values().find_map(|slot| {
            slot.try_lock().ok().and_then(|link| link.clone()).filter(|link| !link.service.is_closed())
        });
        let Some(link) = open else {
            return;
        };
        match tokio::time::timeout(self.upstream.timeout(), fetch_offer(&link.peer)).await {
            Ok(Ok(offer)) => self.learn(offer, true).await,
            Ok(Err(e)) => {
                tracing::warn!(upstream = %self.upstream.name, error = %e, "re-listing after a change failed")
            }
            Err(_) => tracing::warn!(upstream = %self.upstream.name, "re-listing after a change took too long"),
        }
    }

    fn close_idle(&self) {
        let cutoff = now().seconds() - i64::try_from(self.budget.idle.as_secs()).unwrap_or(i64::MAX);
        self.links.lock().expect("links lock").retain(|_, slot| match slot.try_lock() {
            Ok(link) => link.as_ref().is_some_and(|l| l.last_used.load(Ordering::Relaxed) > cutoff),
            Err(_) => true,
        });
    }

    async fn learn(&self, offer: Offer, save: bool) {
        let same = self.offer().is_some_and(|known| same_offer(&known, &offer));
        if same {
            return;
        }
        if save
            && let Ok(text) = serde_json::to_string(&offer)
            && let Err(e) = self.accounts.save_offer(&self.upstream.name, text).await
        {
            tracing::warn!(upstream = %self.upstream.name, error = %e, "keeping what it offers failed");
        }
        *self.learned.write().expect("learned lock") = Some(Arc::new(offer));
        let _ = self.events.send(Event::Changed);
    }

    /// The client for `user_id`'s calls, made (or made again, after their credentials changed) as needed.
    pub async fn link(&self, user_id: &str) -> Result<Arc<Link>, LinkError> {
        let credential = match &self.upstream.transport {
            Transport::Http { .. } => Credential::Token(
                self.accounts.token(user_id, &self.upstream).await.map_err(|e| self.account_error(user_id, e))?,
            ),
            Transport::Stdio { .. } => {
                let (env, version) =
                    self.accounts.env_of(user_id, &self.upstream).await.map_err(|e| self.account_error(user_id, e))?;
                Credential::Env(env, version)
            }
        };
        self.link_with(user_id, credential).await
    }

    /// After the upstream refused the token of `stale` (401): refreshed once (by one instance), then a new
    /// client.
    pub async fn relink(&self, user_id: &str, stale: &Link) -> Result<Arc<Link>, LinkError> {
        let token = self
            .accounts
            .refresh(user_id, &self.upstream, stale.version)
            .await
            .map_err(|e| self.account_error(user_id, e))?;
        self.link_with(user_id, Credential::Token(token)).await
    }

    async fn link_with(&self, user_id: &str, credential: Credential) -> Result<Arc<Link>, LinkError> {
        let slot = self.links.lock().expect("links lock").entry(user_id.to_owned()).or_default().clone();
        let mut current = slot.lock().await;
        if let Some(link) = current.as_ref()
            && link.version == credential.version()
            && !link.service.is_closed()
            && !link.service.is_transport_closed()
        {
            link.last_used.store(now().seconds(), Ordering::Relaxed);
            return Ok(link.clone());
        }
        *current = None;
        let link = match self.connect(&credential).await {
            Ok(link) => link,
            Err(Connect::Refused) => {
                // The upstream refused a token we thought good: one refresh, one more try.
                let fresh = self
                    .accounts
                    .refresh(user_id, &self.upstream, credential.version())
                    .await
                    .map_err(|e| self.account_error(user_id, e))?;
                match self.connect(&Credential::Token(fresh)).await {
                    Ok(link) => link,
                    Err(Connect::Refused) => {
                        return Err(LinkError::NeedsAccount {
                            url: self.accounts.connect_url(user_id, &self.upstream.name),
                            why: format!(
                                "upstream {} refuses your account's token; connect it again",
                                self.upstream.name
                            ),
                        });
                    }
                    Err(Connect::Failed(why)) => return Err(LinkError::Unavailable(why)),
                }
            }
            Err(Connect::Failed(why)) => return Err(LinkError::Unavailable(why)),
        };
        let link = Arc::new(link);
        *current = Some(link.clone());
        drop(current);
        match tokio::time::timeout(self.upstream.timeout(), fetch_offer(&link.peer)).await {
            Ok(Ok(offer)) => self.learn(offer, true).await,
            Ok(Err(e)) => tracing::warn!(upstream = %self.upstream.name, error = %e, "listing what it offers failed"),
            Err(_) => tracing::warn!(upstream = %self.upstream.name, "listing what it offers took too long"),
        }
        Ok(link)
    }

    async fn connect(&self, credential: &Credential) -> Result<Link, Connect> {
        let relay = Arc::new(Relay::new(&self.upstream.name, self.heard.clone()));
        let wait = self.upstream.timeout().max(Duration::from_secs(30));
        let (service, program) = match (&self.upstream.transport, credential) {
            (Transport::Http { url, headers }, Credential::Token(token)) => {
                let mut custom = HashMap::new();
                for (name, value) in headers {
                    let (Ok(name), Ok(value)) = (
                        reqwest::header::HeaderName::try_from(name.as_str()),
                        reqwest::header::HeaderValue::try_from(value.as_str()),
                    ) else {
                        return Err(Connect::Failed("a configured header is invalid".into()));
                    };
                    custom.insert(name, value);
                }
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(custom)
                    .auth_header(token.access_token.clone())
                    .max_concurrent_requests(1024)
                    .reinit_on_expired_session(true);
                let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
                match tokio::time::timeout(wait, relay.clone().serve(transport)).await {
                    Ok(Ok(service)) => (service, None),
                    Ok(Err(e)) if e.is_authorization_required() => return Err(Connect::Refused),
                    Ok(Err(e)) => return Err(Connect::Failed(format!("initialize failed: {e}"))),
                    Err(_) => {
                        return Err(Connect::Failed(format!(
                            "it did not answer initialize within {} s",
                            wait.as_secs()
                        )));
                    }
                }
            }
            (Transport::Stdio { command, args, env, cwd }, Credential::Env(values, _)) => {
                let permit = self.budget.permits.clone().try_acquire_owned().map_err(|_| {
                    Connect::Failed(format!(
                        "this instance already runs {} per-person programs (UPSTREAM_PERSONAL_MAX); try again when \
                         one has been idle for {} s",
                        self.budget.max,
                        self.budget.idle.as_secs()
                    ))
                })?;
                let program = Program { name: &self.upstream.name, command, args, cwd: cwd.as_deref(), personal: true };
                let (service, child, group) = start_program(
                    &program,
                    env.iter().chain(values.iter()),
                    relay.clone(),
                    wait,
                )
                .await
                .map_err(|why| {
                    // What the program said is the operator's to read (it may quote the environment).
                    tracing::warn!(upstream = %self.upstream.name, problem = %why, "a person's process did not start");
                    Connect::Failed("its program did not start (the gateway's log says why)".into())
                })?;
                (service, Some((child, group, permit)))
            }
            _ => return Err(Connect::Failed("its credentials do not fit how it is reached".into())),
        };
        let peer = service.peer().clone();
        peer.set_response_cache_config(ClientCacheConfig::disabled()).await;
        if peer.peer_info().is_some_and(|i| i.capabilities.logging.is_some()) {
            let _ = peer.set_level(SetLevelRequestParams::new(LoggingLevel::Debug)).await;
        }
        Ok(Link {
            peer,
            relay,
            version: credential.version(),
            service,
            last_used: AtomicI64::new(now().seconds()),
            program,
        })
    }

    fn account_error(&self, user_id: &str, error: AccountError) -> LinkError {
        let name = &self.upstream.name;
        match error {
            AccountError::NotConnected if self.upstream.oauth.is_none() => LinkError::NeedsAccount {
                url: self.accounts.connect_url(user_id, name),
                why: format!(
                    "upstream {name} needs values of your own ({}); give them first",
                    self.upstream.env_per_user.join(", ")
                ),
            },
            AccountError::NotConnected => LinkError::NeedsAccount {
                url: self.accounts.connect_url(user_id, name),
                why: format!("upstream {name} acts on your own account there; connect it first"),
            },
            AccountError::Expired(why) => LinkError::NeedsAccount {
                url: self.accounts.connect_url(user_id, name),
                why: format!("your connection to upstream {name} stopped working ({why}); connect it again"),
            },
            other => LinkError::Unavailable(other.to_string()),
        }
    }
}

enum Connect {
    /// The upstream answered 401: the token is not (or no longer) good there.
    Refused,
    Failed(String),
}

fn same_offer(a: &Offer, b: &Offer) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}
