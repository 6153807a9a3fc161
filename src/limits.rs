//! Rate limits on what an attacker repeats (README, "Security model"; RFC 9700 §4.9): keyed token buckets from
//! `governor`, one per kind of event, kept in this instance's memory. With N instances behind a load
//! balancer an attacker gets at most N times the configured rate.
//!
//! Registrations and metadata fetches count every request. Logins and token requests count failures only
//! (`Failures`), so a busy client or a person who types the password right is never slowed down.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use poem::Request;
use poem::http::HeaderMap;

/// `count` events per `per`, with bursts up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The configurable limits (`RATE_LIMITS=register=20/h,...`); each applies per instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Dynamic client registrations per client IP address.
    pub register: Rate,
    /// Fetches of Client ID Metadata Documents caused by one client IP address.
    pub metadata_fetch: Rate,
    /// Failed logins per client IP address (ten times this per account name).
    pub login: Rate,
    /// Failed client authentication per client IP address, and invalid grants per client at one address.
    pub token: Rate,
    /// Sign-up attempts (each may create an account or learn that a name is taken) per client IP address.
    pub signup: Rate,
}

impl Default for RateLimits {
    fn default() -> RateLimits {
        RateLimits {
            register: Rate { count: 20, per: Duration::from_secs(3600) },
            metadata_fetch: Rate { count: 30, per: Duration::from_secs(60) },
            login: Rate { count: 10, per: Duration::from_secs(600) },
            token: Rate { count: 30, per: Duration::from_secs(60) },
            signup: Rate { count: 5, per: Duration::from_secs(3600) },
        }
    }
}

type Keyed<K = IpAddr> = DefaultKeyedRateLimiter<K>;

pub struct Limits {
    register: Option<Keyed>,
    metadata_fetch: Option<Keyed>,
    login_by_address: Option<Failures>,
    login_by_account: Option<Failures>,
    token_by_address: Option<Failures>,
    token_by_client: Option<Failures>,
    signup: Option<Failures>,
}

/// A failed sign-in counts against the address at the `login` rate, and against the account name at ten
/// times that rate: enough to stop guessing spread over many addresses, while one address cannot keep an
/// account locked (it is itself blocked long before the account is).
const ACCOUNT_RATE_FACTOR: u32 = 10;

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum FailureKey {
    /// A client address, bucketed as in [`bucket`].
    Ip(IpAddr),
    /// An account name (lowercased by the caller, and only a valid one).
    Account(String),
    /// A client at one address.
    ClientAt(String, IpAddr),
}

/// Failures of one kind. Each failure takes a token from the key's bucket; the failure that finds the bucket
/// empty blocks the key until the bucket has a token again, and while a key is blocked its requests are
/// refused before any password or secret is checked.
struct Failures {
    counted: Keyed<FailureKey>,
    blocked: Mutex<HashMap<FailureKey, Instant>>,
}

impl Failures {
    fn new(rate: Rate) -> Failures {
        Failures { counted: keyed(rate), blocked: Mutex::default() }
    }

    fn check(&self, key: &FailureKey) -> Result<(), RetryAfter> {
        let now = Instant::now();
        match self.blocked.lock().expect("failure limits lock").get(key) {
            Some(until) if *until > now => Err(RetryAfter(*until - now)),
            _ => Ok(()),
        }
    }

    /// Counts a failure; `Some` when this one blocked the key.
    fn failed(&self, key: FailureKey) -> Option<RetryAfter> {
        let not_until = self.counted.check_key(&key).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        self.blocked.lock().expect("failure limits lock").insert(key, Instant::now() + wait);
        Some(RetryAfter(wait))
    }

    fn forget_idle(&self) {
        self.counted.retain_recent();
        self.counted.shrink_to_fit();
        let now = Instant::now();
        self.blocked.lock().expect("failure limits lock").retain(|_, until| *until > now);
    }
}

impl FailureKey {
    fn address(ip: IpAddr) -> FailureKey {
        FailureKey::Ip(bucket(ip))
    }

    fn client_at(client_id: &str, ip: IpAddr) -> FailureKey {
        FailureKey::ClientAt(client_id.to_owned(), bucket(ip))
    }
}

/// Whether every key is free to try; otherwise the longest wait among the blocked ones.
fn check_each<'a>(
    checks: impl IntoIterator<Item = (&'a Option<Failures>, Option<FailureKey>)>,
) -> Result<(), RetryAfter> {
    let waits = checks.into_iter().filter_map(|(failures, key)| failures.as_ref()?.check(&key?).err());
    waits.max_by_key(|w| w.0).map_or(Ok(()), Err)
}

/// Counts a failure against every key; `Some` with the longest wait when it started a block.
fn fail_each<'a>(failures: impl IntoIterator<Item = (&'a Option<Failures>, Option<FailureKey>)>) -> Option<RetryAfter> {
    failures.into_iter().filter_map(|(failures, key)| failures.as_ref()?.failed(key?)).max_by_key(|w| w.0)
}

/// The limit was hit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds for the `Retry-After` header, never 0.
    pub fn seconds(self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

fn keyed<K: Clone + Eq + std::hash::Hash>(rate: Rate) -> Keyed<K> {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(rate.per / count.get()).unwrap_or_else(|| Quota::per_second(count));
    RateLimiter::keyed(quota.allow_burst(count))
}

/// The bucket of an address: IPv4 addresses each have their own; IPv6 addresses share one per /64, the
/// block a single host or home network usually gets.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

fn check(limiter: &Option<Keyed>, ip: IpAddr) -> Result<(), RetryAfter> {
    match limiter {
        None => Ok(()),
        Some(l) => l
            .check_key(&bucket(ip))
            .map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now()))),
    }
}

/// The reverse proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`), as request data (in an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

/// The address a request comes from (an extractor): the TCP peer, unless the peer is a trusted proxy; then
/// the nearest address in `X-Forwarded-For` that is not a trusted proxy (addresses further left are the
/// client's own claims and could be forged). `None` for a peer that is not an IP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<'a> poem::FromRequest<'a> for ClientAddress {
    async fn from_request(req: &'a Request, _body: &mut poem::RequestBody) -> poem::Result<ClientAddress> {
        Ok(ClientAddress::of(req))
    }
}

impl ClientAddress {
    pub fn of(req: &Request) -> ClientAddress {
        let proxies = req.data::<std::sync::Arc<TrustedProxies>>().map(|p| p.0.as_slice()).unwrap_or_default();
        ClientAddress(req.remote_addr().as_socket_addr().map(|a| forwarded_for(a.ip(), req.headers(), proxies)))
    }
}

fn forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    forwarded.into_iter().rev().find(|ip| !trusted(ip)).unwrap_or(peer)
}

impl Limits {
    /// The limits with these rates; none at all for `None` (`RATE_LIMITS=off`).
    pub fn new(config: Option<&RateLimits>) -> Limits {
        let times = |rate: Rate, factor: u32| Rate { count: rate.count.saturating_mul(factor), per: rate.per };
        Limits {
            register: config.map(|c| keyed(c.register)),
            metadata_fetch: config.map(|c| keyed(c.metadata_fetch)),
            login_by_address: config.map(|c| Failures::new(c.login)),
            login_by_account: config.map(|c| Failures::new(times(c.login, ACCOUNT_RATE_FACTOR))),
            token_by_address: config.map(|c| Failures::new(c.token)),
            token_by_client: config.map(|c| Failures::new(c.token)),
            signup: config.map(|c| Failures::new(c.signup)),
        }
    }

    /// Whether a sign-in from `ip` for `account` (a valid, lowercased name) may be tried now.
    pub fn login_allowed(&self, ip: Option<IpAddr>, account: Option<&str>) -> Result<(), RetryAfter> {
        check_each(self.login_keys(ip, account))
    }

    /// A sign-in failed; `Some` when this failure started a block.
    pub fn login_failed(&self, ip: Option<IpAddr>, account: Option<&str>) -> Option<RetryAfter> {
        fail_each(self.login_keys(ip, account))
    }

    fn login_keys(&self, ip: Option<IpAddr>, account: Option<&str>) -> [(&Option<Failures>, Option<FailureKey>); 2] {
        [
            (&self.login_by_address, ip.map(FailureKey::address)),
            (&self.login_by_account, account.map(|a| FailureKey::Account(a.to_owned()))),
        ]
    }

    /// Whether a token request from `ip` by `client_id` may be tried now.
    pub fn token_allowed(&self, ip: Option<IpAddr>, client_id: &str) -> Result<(), RetryAfter> {
        check_each([
            (&self.token_by_address, ip.map(FailureKey::address)),
            (&self.token_by_client, ip.map(|ip| FailureKey::client_at(client_id, ip))),
        ])
    }

    /// Client authentication failed: counted against the address only. Client secrets are 256-bit random
    /// values nobody guesses, while client ids are public: counting against the client would let anyone
    /// lock it out.
    pub fn token_client_failed(&self, ip: Option<IpAddr>) {
        fail_each([(&self.token_by_address, ip.map(FailureKey::address))]);
    }

    /// An invalid grant from an authenticated client: counted against that client at that address, so a
    /// client that keeps presenting dead codes or refresh tokens is slowed without touching other clients
    /// behind the same address (a hosting platform's many users, say).
    pub fn token_grant_failed(&self, ip: Option<IpAddr>, client_id: &str) {
        fail_each([(&self.token_by_client, ip.map(|ip| FailureKey::client_at(client_id, ip)))]);
    }

    /// A sign-up attempt from `ip` (one that may create an account or learn that a name is taken): counted
    /// whatever its outcome; refused once the address has used its allowance.
    pub fn signup_attempt(&self, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        let key = || [(&self.signup, ip.map(FailureKey::address))];
        check_each(key())?;
        fail_each(key()).map_or(Ok(()), Err)
    }

    /// Whether `ip` may still sign up: asked again once a hashing slot is free, without counting.
    pub fn signup_allowed(&self, ip: Option<IpAddr>) -> Result<(), RetryAfter> {
        check_each([(&self.signup, ip.map(FailureKey::address))])
    }

    /// One dynamic client registration from `ip`.
    pub fn register(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        check(&self.register, ip)
    }

    /// One metadata-document fetch caused by a request from `ip`.
    pub fn metadata_fetch(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        check(&self.metadata_fetch, ip)
    }

    /// Drops the state of keys whose buckets are full again, so memory follows the active attackers only.
    pub fn forget_idle(&self) {
        for limiter in [&self.register, &self.metadata_fetch].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let failures = [
            &self.login_by_address,
            &self.login_by_account,
            &self.token_by_address,
            &self.token_by_client,
            &self.signup,
        ];
        for failures in failures.into_iter().flatten() {
            failures.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_is_refused_per_key() {
        let rate = Rate { count: 3, per: Duration::from_secs(60) };
        let limits = Limits::new(Some(&RateLimits {
            register: rate,
            metadata_fetch: rate,
            login: rate,
            token: rate,
            signup: rate,
        }));
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..3 {
            assert!(limits.register(a).is_ok());
        }
        let refused = limits.register(a).unwrap_err();
        assert!((1..=20).contains(&refused.seconds()), "{refused:?}");
        assert!(limits.register(b).is_ok(), "another address has its own bucket");
        assert!(Limits::new(None).register(a).is_ok());
        // One IPv6 /64 is one bucket.
        for host in 1..=3u16 {
            assert!(limits.register(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, host).into()).is_ok());
        }
        assert!(limits.register(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 9).into()).is_err());
        assert!(limits.register(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1).into()).is_ok());
    }

    #[test]
    fn only_failures_count_and_a_blocked_key_is_refused_before_it_is_tried() {
        let rate = Rate { count: 2, per: Duration::from_secs(60) };
        let limits = Limits::new(Some(&RateLimits {
            register: rate,
            metadata_fetch: rate,
            login: rate,
            token: rate,
            signup: rate,
        }));
        let ip: Option<IpAddr> = Some([192, 0, 2, 1].into());
        for _ in 0..10 {
            assert!(limits.login_allowed(ip, Some("alice")).is_ok(), "successes are never counted");
        }
        assert_eq!(limits.login_failed(ip, Some("alice")), None);
        assert_eq!(limits.login_failed(ip, Some("alice")), None);
        assert!(limits.login_allowed(ip, Some("alice")).is_ok(), "the burst is not used up yet");
        let blocked = limits.login_failed(ip, Some("alice")).expect("the third failure blocks");
        let refused = limits.login_allowed(ip, Some("bob")).unwrap_err();
        assert!((1..=30).contains(&refused.seconds()) && refused <= blocked, "{refused:?}");
        let elsewhere: Option<IpAddr> = Some([192, 0, 2, 2].into());
        assert!(limits.login_allowed(elsewhere, Some("alice")).is_ok(), "an account takes ten times more");
        for i in 3..21u8 {
            limits.login_failed(Some([198, 51, 100, i].into()), Some("alice"));
        }
        assert!(limits.login_allowed(elsewhere, Some("alice")).is_err(), "spread guessing blocks the account");
        assert!(limits.token_allowed(ip, "client").is_ok(), "each kind of failure has its own buckets");
        assert!(Limits::new(None).login_allowed(ip, Some("alice")).is_ok());
    }

    #[test]
    fn invalid_grants_slow_one_client_at_one_address_only() {
        let rate = Rate { count: 1, per: Duration::from_secs(60) };
        let limits = Limits::new(Some(&RateLimits {
            register: rate,
            metadata_fetch: rate,
            login: rate,
            token: rate,
            signup: rate,
        }));
        let ip: Option<IpAddr> = Some([192, 0, 2, 1].into());
        limits.token_grant_failed(ip, "busy-client");
        limits.token_grant_failed(ip, "busy-client");
        assert!(limits.token_allowed(ip, "busy-client").is_err());
        assert!(limits.token_allowed(ip, "another-client").is_ok(), "the address is not blocked");
        assert!(limits.token_allowed(Some([192, 0, 2, 9].into()), "busy-client").is_ok());
        limits.token_client_failed(ip);
        limits.token_client_failed(ip);
        assert!(limits.token_allowed(ip, "another-client").is_err(), "failed authentication blocks the address");
    }

    #[test]
    fn every_signup_attempt_counts_and_the_next_one_is_refused() {
        let rate = Rate { count: 2, per: Duration::from_secs(3600) };
        let limits = Limits::new(Some(&RateLimits {
            register: rate,
            metadata_fetch: rate,
            login: rate,
            token: rate,
            signup: rate,
        }));
        let ip: Option<IpAddr> = Some([192, 0, 2, 1].into());
        assert!(limits.signup_attempt(ip).is_ok() && limits.signup_attempt(ip).is_ok());
        assert!(limits.signup_allowed(ip).is_ok(), "asking does not count");
        let refused = limits.signup_attempt(ip).unwrap_err();
        assert!(refused.seconds() > 60, "{refused:?}");
        assert!(limits.signup_allowed(ip).is_err() && limits.signup_attempt(ip).is_err());
        assert!(limits.signup_attempt(Some([192, 0, 2, 2].into())).is_ok(), "another address has its own");
    }

    fn from(peer: &str, forwarded: Option<&str>, proxies: &[IpNet]) -> IpAddr {
        let mut headers = HeaderMap::new();
        if let Some(f) = forwarded {
            headers.insert("x-forwarded-for", f.parse().unwrap());
        }
        forwarded_for(peer.parse().unwrap(), &headers, proxies)
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(from("192.0.2.7", Some("203.0.113.9"), &proxies), ip("192.0.2.7"));
        assert_eq!(from("10.1.1.1", Some("203.0.113.9"), &proxies), ip("203.0.113.9"));
        let forged = from("10.1.1.1", Some("1.2.3.4, 203.0.113.9, 10.2.2.2"), &proxies);
        assert_eq!(forged, ip("203.0.113.9"), "the nearest untrusted hop wins");
        assert_eq!(from("10.1.1.1", None, &proxies), ip("10.1.1.1"));
        assert_eq!(from("10.1.1.1", Some("garbage"), &proxies), ip("10.1.1.1"));
        assert_eq!(from("10.1.1.1", Some("203.0.113.9"), &[]), ip("10.1.1.1"), "no proxy trusted by default");
    }
}
