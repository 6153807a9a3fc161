//! What the MCP guard reads on every request, remembered for a short time between database reads: that a
//! grant is live (and whose it is), and who owns a live legacy MCP session. Asking the database each time
//! cost about half of the CPU of a `tools/call` (a round trip to the connection's worker thread and back).
//! A revoked grant is remembered for good: revocation never ends.
//!
//! Everything that ends a grant or a session through this process's [`Store`](super::Store) bumps the
//! generation before it returns (see [`super::Store::commit_ending`]); an entry read under an older
//! generation is not trusted. Other instances hear of it through Postgres `NOTIFY`, sent inside the ending
//! transaction, so exactly when it commits. What nobody announced (another process on the same SQLite file,
//! such as the CLI, or a notification lost with its connection) is seen once the entry's time is up. A time
//! of zero asks the database every time.
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most entries remembered per kind; when full, entries past their time go, and if none has, all.
const CAPACITY: usize = 10_000;

#[derive(Debug)]
pub(super) struct Trusted {
    trust_for: Duration,
    /// Bumped after every ending this instance makes or hears of; entries from before are stale.
    generation: AtomicU64,
    /// Tells open notification streams that something ended, so they check their own grant at once.
    pub(super) endings: tokio::sync::watch::Sender<u64>,
    /// By grant id: the grant's user, or `None` once it is revoked (or its user disabled), for good.
    pub(super) grants: Memo<Option<String>>,
    /// By session id.
    pub(super) sessions: Memo<SessionOwner>,
}

/// Who a legacy MCP session belongs to, and when it was last seen as far as this instance knows.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOwner {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub last_seen: i64,
}

#[derive(Debug)]
pub(super) struct Memo<V> {
    known: Mutex<HashMap<String, Entry<V>>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Memo<V> {
        Memo { known: Mutex::default() }
    }
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    /// When the read that found `value` began.
    checked: Instant,
    generation: u64,
}

/// What [`Trusted`] can say without the database.
pub(super) enum Lookup<V> {
    Known(V),
    /// Ask the database, then hand the answer to [`Trusted::remember`] with this ticket.
    Unknown(Ticket),
}

/// The generation and time before a database read: its answer is as old as this, not as its arrival.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    generation: u64,
    at: Instant,
}

impl Default for Trusted {
    fn default() -> Trusted {
        Trusted {
            trust_for: Duration::ZERO,
            generation: AtomicU64::default(),
            endings: tokio::sync::watch::Sender::new(0),
            grants: Memo::default(),
            sessions: Memo::default(),
        }
    }
}

impl Trusted {
    pub(super) fn new(trust_for: Duration) -> Trusted {
        Trusted { trust_for, ..Trusted::default() }
    }

    /// The remembered value of `key`, if it was read under the current generation within the trusted time,
    /// or is `settled` (true for good).
    pub(super) fn lookup<V: Clone>(&self, memo: &Memo<V>, key: &str, settled: impl Fn(&V) -> bool) -> Lookup<V> {
        let ticket = self.ticket();
        if self.trust_for.is_zero() {
            return Lookup::Unknown(ticket);
        }
        let known = memo.known.lock().expect("trusted entries lock");
        match known.get(key) {
            Some(e) if settled(&e.value) => Lookup::Known(e.value.clone()),
            Some(e) if e.generation == ticket.generation && e.checked.elapsed() < self.trust_for => {
                Lookup::Known(e.value.clone())
            }
            _ => Lookup::Unknown(ticket),
        }
    }

    /// Taken before a database read: an answer read while an ending commits carries the older generation
    /// and is never trusted after it, and its time runs from before the read, however long the read took.
    pub(super) fn ticket(&self) -> Ticket {
        Ticket { generation: self.generation.load(Ordering::Acquire), at: Instant::now() }
    }

    /// Records the database's answer for `key`, read with `ticket`. A settled entry stays, and so does one
    /// read later (a slow read does not overwrite a newer answer).
    pub(super) fn remember<V>(
        &self,
        memo: &Memo<V>,
        key: &str,
        value: V,
        ticket: Ticket,
        settled: impl Fn(&V) -> bool,
    ) {
        if self.trust_for.is_zero() {
            return;
        }
        let mut known = memo.known.lock().expect("trusted entries lock");
        match known.get(key) {
            Some(e) if settled(&e.value) || e.generation > ticket.generation || e.checked > ticket.at => return,
            Some(_) => {}
            None if known.len() >= CAPACITY => {
                known.retain(|_, e| e.checked.elapsed() < self.trust_for);
                if known.len() >= CAPACITY {
                    known.clear();
                }
            }
            None => {}
        }
        known.insert(key.to_owned(), Entry { value, checked: ticket.at, generation: ticket.generation });
    }

    /// Changes a remembered value in place (its time and generation stay).
    pub(super) fn update<V>(&self, memo: &Memo<V>, key: &str, change: impl FnOnce(&mut V)) {
        if let Some(e) = memo.known.lock().expect("trusted entries lock").get_mut(key) {
            change(&mut e.value);
        }
    }

    /// A grant was revoked or a session ended somewhere: nothing read before is trusted any more (revoked
    /// grants stay revoked).
    pub(super) fn forget(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.endings.send_replace(generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known<V>(lookup: Lookup<V>) -> Option<V> {
        match lookup {
            Lookup::Known(value) => Some(value),
            Lookup::Unknown(_) => None,
        }
    }

    fn never<V>(_: &V) -> bool {
        false
    }

    fn ada() -> Option<String> {
        Some("ada".to_owned())
    }

    #[test]
    fn an_answer_is_trusted_until_an_ending_or_its_time_is_up() {
        let trusted = Trusted::new(Duration::from_secs(60));
        let Lookup::Unknown(ticket) = trusted.lookup(&trusted.grants, "g", never) else {
            panic!("known before any read")
        };
        trusted.remember(&trusted.grants, "g", ada(), ticket, never);
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", never)), Some(ada()));
        trusted.forget();
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", never)), None);

        let short = Trusted::new(Duration::from_millis(1));
        short.remember(&short.grants, "g", ada(), short.ticket(), never);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(known(short.lookup(&short.grants, "g", never)), None);
    }

    #[test]
    fn an_answer_read_before_an_ending_is_not_trusted_after_it() {
        let trusted = Trusted::new(Duration::from_secs(60));
        let Lookup::Unknown(ticket) = trusted.lookup(&trusted.grants, "g", never) else {
            panic!("known before any read")
        };
        trusted.forget(); // commits while the read is in flight
        trusted.remember(&trusted.grants, "g", ada(), ticket, never);
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", never)), None);
    }

    #[test]
    fn a_slow_read_neither_undoes_a_revocation_nor_outlives_its_time() {
        let trusted = Trusted::new(Duration::from_millis(50));
        let slow = trusted.ticket();
        trusted.remember(&trusted.grants, "g", None, trusted.ticket(), Option::is_none);
        trusted.remember(&trusted.grants, "g", ada(), slow, Option::is_none);
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", Option::is_none)), Some(None));

        // Trust runs from before the read: a read that took longer than the trusted time is not trusted.
        let late = trusted.ticket();
        std::thread::sleep(Duration::from_millis(60));
        trusted.remember(&trusted.grants, "h", ada(), late, Option::is_none);
        assert_eq!(known(trusted.lookup(&trusted.grants, "h", Option::is_none)), None);
    }

    #[test]
    fn a_settled_answer_outlives_endings_and_nothing_is_kept_with_no_time() {
        let trusted = Trusted::new(Duration::from_secs(60));
        trusted.remember(&trusted.grants, "g", None, trusted.ticket(), Option::is_none);
        trusted.forget();
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", Option::is_none)), Some(None));

        let uncached = Trusted::new(Duration::ZERO);
        uncached.remember(&uncached.grants, "g", ada(), uncached.ticket(), never);
        assert_eq!(known(uncached.lookup(&uncached.grants, "g", never)), None);
    }

    #[test]
    fn an_update_changes_the_value_but_not_its_trust() {
        let trusted = Trusted::new(Duration::from_secs(60));
        let owner = SessionOwner { subject: Some("s".into()), client_id: Some("c".into()), last_seen: 1 };
        trusted.remember(&trusted.sessions, "m", owner, trusted.ticket(), never);
        trusted.update(&trusted.sessions, "m", |o| o.last_seen = 2);
        let seen = known(trusted.lookup(&trusted.sessions, "m", never)).map(|o| o.last_seen);
        assert_eq!(seen, Some(2));
        trusted.forget();
        assert_eq!(known(trusted.lookup(&trusted.sessions, "m", never)), None);
    }
}
