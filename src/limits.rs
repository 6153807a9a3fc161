//! Rate limits on what an attacker repeats (DESIGN.md, security rules): keyed token buckets from
//! `governor`, one per kind of event, kept in this instance's memory. With N instances behind a load
//! balancer an attacker gets at most N times the configured rate.
//!
//! Registrations and metadata fetches count every request. Logins and token requests count failures only
//! ([`Failures`]), so a busy client or a person who types the password right is never slowed down.
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

use crate::config::{Rate, RateLimits};

type Keyed<K = IpAddr> = DefaultKeyedRateLimiter<K>;

pub struct Limits {
    register: Option<Keyed>,
    metadata_fetch: Option<Keyed>,
    login: Option<Failures>,
    token: Option<Failures>,
}

/// What a failure is counted against. Addresses are bucketed as in [`bucket`]; account names are
/// lowercased by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    Ip(IpAddr),
    Account(String),
    Client(String),
}

impl FailureKey {
    pub fn ip(ip: IpAddr) -> FailureKey {
        FailureKey::Ip(bucket(ip))
    }
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

    fn check(&self, keys: &[FailureKey]) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let blocked = self.blocked.lock().expect("failure limits lock");
        let until = keys.iter().filter_map(|k| blocked.get(k)).filter(|until| **until > now).max();
        match until {
            Some(until) => Err(RetryAfter(*until - now)),
            None => Ok(()),
        }
    }

    fn failed(&self, keys: &[FailureKey]) {
        let clock = DefaultClock::default();
        for key in keys {
            if let Err(not_until) = self.counted.check_key(key) {
                let wait = not_until.wait_time_from(clock.now());
                self.blocked.lock().expect("failure limits lock").insert(key.clone(), Instant::now() + wait);
            }
        }
    }

    fn forget_idle(&self) {
        self.counted.retain_recent();
        self.counted.shrink_to_fit();
        let now = Instant::now();
        self.blocked.lock().expect("failure limits lock").retain(|_, until| *until > now);
    }
}

/// The limit was hit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The address a request comes from: the TCP peer, unless the peer is a trusted proxy; then the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy (addresses further left are the client's own
/// claims and could be forged).
pub fn client_ip(req: &Request, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip())?;
    Some(forwarded_for(peer, req.headers(), trusted_proxies))
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
    pub fn new(config: Option<&RateLimits>) -> Limits {
        Limits {
            register: config.map(|c| keyed(c.register)),
            metadata_fetch: config.map(|c| keyed(c.metadata_fetch)),
            login: config.map(|c| Failures::new(c.login)),
            token: config.map(|c| Failures::new(c.token)),
        }
    }

    /// Whether a login for these keys (the address and the account) may be tried now.
    pub fn login_allowed(&self, keys: &[FailureKey]) -> Result<(), RetryAfter> {
        self.login.as_ref().map_or(Ok(()), |f| f.check(keys))
    }

    /// A login failed (wrong password, unknown or disabled account).
    pub fn login_failed(&self, keys: &[FailureKey]) {
        if let Some(f) = &self.login {
            f.failed(keys);
        }
    }

    /// Whether a token request for these keys (the address and the client) may be tried now.
    pub fn token_allowed(&self, keys: &[FailureKey]) -> Result<(), RetryAfter> {
        self.token.as_ref().map_or(Ok(()), |f| f.check(keys))
    }

    /// A token request failed client authentication or presented an invalid grant.
    pub fn token_failed(&self, keys: &[FailureKey]) {
        if let Some(f) = &self.token {
            f.failed(keys);
        }
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
        for failures in [&self.login, &self.token].into_iter().flatten() {
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
        let limits = Limits::new(Some(&RateLimits { register: rate, metadata_fetch: rate, login: rate, token: rate }));
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
        let limits = Limits::new(Some(&RateLimits { register: rate, metadata_fetch: rate, login: rate, token: rate }));
        let ip = FailureKey::ip([192, 0, 2, 1].into());
        let alice = FailureKey::Account("alice".into());
        let keys = [ip.clone(), alice.clone()];
        for _ in 0..10 {
            assert!(limits.login_allowed(&keys).is_ok(), "successes are never counted");
        }
        limits.login_failed(&keys);
        limits.login_failed(&keys);
        assert!(limits.login_allowed(&keys).is_ok(), "the burst is not used up yet");
        limits.login_failed(&keys);
        let refused = limits.login_allowed(&keys).unwrap_err();
        assert!((1..=30).contains(&refused.seconds()), "{refused:?}");
        assert!(limits.login_allowed(std::slice::from_ref(&alice)).is_err(), "the account is blocked from anywhere");
        let elsewhere = [FailureKey::ip([192, 0, 2, 2].into()), FailureKey::Account("bob".into())];
        assert!(limits.login_allowed(&elsewhere).is_ok(), "other addresses and accounts are not");
        assert!(limits.token_allowed(&keys).is_ok(), "each kind of failure has its own buckets");
        assert!(Limits::new(None).login_allowed(&keys).is_ok());
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
