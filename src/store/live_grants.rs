//! What the MCP guard knows about grants between database reads. The guard checks on every request that
//! the token's grant is still live; asking the database each time cost about half of the CPU of a
//! `tools/call` (a round trip to the connection's worker thread and back). So a grant found live is
//! trusted for a short time, and a revoked one for good (revocation never ends).
//!
//! A grant revoked through this process's [`Store`](super::Store) is forgotten before the revoking call
//! returns: every revocation commits through [`super::Store::commit_revocation`], which bumps the
//! generation that cached entries must match. Other instances hear of it through Postgres `NOTIFY`
//! (sent inside the revoking transaction, so only when it commits); a revocation nobody announced (another
//! process on the same SQLite file, such as the CLI, or a lost notification) is seen once the entry's time is
//! up. A time of zero asks the database every time.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most grants remembered; when full, entries past their time go, and if none has, all.
const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub(super) struct LiveGrants {
    trust_for: Duration,
    /// Bumped after every revocation this instance makes or hears of; entries from before are stale.
    generation: AtomicU64,
    known: Mutex<HashMap<String, Known>>,
}

#[derive(Debug)]
struct Known {
    /// The grant's user, or `None` once the grant is revoked (or its user disabled).
    username: Option<String>,
    checked: Instant,
    generation: u64,
}

/// What the cache can say about a grant without the database.
pub(super) enum Lookup {
    Known(Option<String>),
    /// Ask the database; pass the generation to [`LiveGrants::remember`] with the answer.
    Unknown(u64),
}

impl LiveGrants {
    pub(super) fn new(trust_for: Duration) -> LiveGrants {
        LiveGrants { trust_for, ..LiveGrants::default() }
    }

    pub(super) fn lookup(&self, grant_id: &str) -> Lookup {
        // Read before the database is asked: an answer read while a revocation commits carries the older
        // generation and is never trusted after it.
        let generation = self.generation.load(Ordering::Acquire);
        if self.trust_for.is_zero() {
            return Lookup::Unknown(generation);
        }
        let known = self.known.lock().expect("live grants lock");
        match known.get(grant_id) {
            Some(k) if k.username.is_none() => Lookup::Known(None),
            Some(k) if k.generation == generation && k.checked.elapsed() < self.trust_for => {
                Lookup::Known(k.username.clone())
            }
            _ => Lookup::Unknown(generation),
        }
    }

    /// Records the database's answer, read under `generation`.
    pub(super) fn remember(&self, grant_id: &str, username: Option<String>, generation: u64) {
        if self.trust_for.is_zero() {
            return;
        }
        let mut known = self.known.lock().expect("live grants lock");
        if known.len() >= CAPACITY && !known.contains_key(grant_id) {
            known.retain(|_, k| k.username.is_none() || k.checked.elapsed() < self.trust_for);
            if known.len() >= CAPACITY {
                known.clear();
            }
        }
        known.insert(grant_id.to_owned(), Known { username, checked: Instant::now(), generation });
    }

    /// Some grant was revoked: live entries are no longer trusted (revoked ones stay revoked).
    pub(super) fn forget_live(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn username(lookup: Lookup) -> Option<Option<String>> {
        match lookup {
            Lookup::Known(name) => Some(name),
            Lookup::Unknown(_) => None,
        }
    }

    #[test]
    fn a_live_grant_is_trusted_until_a_revocation_or_its_time_is_up() {
        let grants = LiveGrants::new(Duration::from_secs(60));
        let Lookup::Unknown(generation) = grants.lookup("g") else { panic!("known before any read") };
        grants.remember("g", Some("ada".into()), generation);
        assert_eq!(username(grants.lookup("g")), Some(Some("ada".into())));
        grants.forget_live();
        assert_eq!(username(grants.lookup("g")), None);

        let short = LiveGrants::new(Duration::from_millis(1));
        short.remember("g", Some("ada".into()), 0);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(username(short.lookup("g")), None);
    }

    #[test]
    fn an_answer_read_before_a_revocation_is_not_trusted_after_it() {
        let grants = LiveGrants::new(Duration::from_secs(60));
        let Lookup::Unknown(generation) = grants.lookup("g") else { panic!("known before any read") };
        grants.forget_live(); // commits while the read is in flight
        grants.remember("g", Some("ada".into()), generation);
        assert_eq!(username(grants.lookup("g")), None);
    }

    #[test]
    fn a_revoked_grant_stays_revoked_and_nothing_is_kept_with_no_time() {
        let grants = LiveGrants::new(Duration::from_secs(60));
        grants.remember("g", None, 0);
        grants.forget_live();
        assert_eq!(username(grants.lookup("g")), Some(None));

        let uncached = LiveGrants::new(Duration::ZERO);
        uncached.remember("g", Some("ada".into()), 0);
        assert_eq!(username(uncached.lookup("g")), None);
    }
}
