//! Rate limits on what an attacker repeats (DESIGN.md, security rules): keyed token buckets from
//! `governor`, one per kind of event, kept in this instance's memory. With N instances behind a load
//! balancer an attacker gets at most N times the configured rate.
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{Rate, RateLimits};

type Keyed = DefaultKeyedRateLimiter<IpAddr>;

pub struct Limits {
    register: Option<Keyed>,
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

fn keyed(rate: Rate) -> Keyed {
    let count = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(rate.per / count.get()).unwrap_or_else(|| Quota::per_second(count));
    RateLimiter::keyed(quota.allow_burst(count))
}

fn check(limiter: &Option<Keyed>, key: &IpAddr) -> Result<(), RetryAfter> {
    match limiter {
        None => Ok(()),
        Some(l) => {
            l.check_key(key).map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now())))
        }
    }
}

impl Limits {
    pub fn new(config: Option<&RateLimits>) -> Limits {
        Limits { register: config.map(|c| keyed(c.register)) }
    }

    /// One dynamic client registration from `ip`.
    pub fn register(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        check(&self.register, &ip)
    }

    /// Drops the state of keys whose buckets are full again, so memory follows the active attackers only.
    pub fn forget_idle(&self) {
        for limiter in [&self.register].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_limit_is_refused_per_key() {
        let limits = Limits::new(Some(&RateLimits { register: Rate { count: 3, per: Duration::from_secs(60) } }));
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..3 {
            assert!(limits.register(a).is_ok());
        }
        let refused = limits.register(a).unwrap_err();
        assert!((1..=20).contains(&refused.seconds()), "{refused:?}");
        assert!(limits.register(b).is_ok(), "another address has its own bucket");
        assert!(Limits::new(None).register(a).is_ok());
    }
}
