//! What the MCP guard reads on every request, remembered for a short time between database reads: that a
//! grant is live (and whose it is), and who owns a live legacy MCP session. Asking the database each time
//! was most of the CPU of a `tools/call` (a round trip to the connection's worker thread and back). A revoked
//! grant is remembered for good: revocation never ends.
//!
//! Everything that ends a grant or a session through this process's [`Store`] counts an ending before it
//! returns (see `Store::commit_ending`); an entry read before the latest ending is not trusted. Other
//! instances hear of it through Postgres `NOTIFY`, sent inside the ending transaction, so exactly when it
//! commits. What nobody announced (another process on the same SQLite file, such as the CLI, or a
//! notification lost with its connection) is seen once the entry's time is up. A time of zero asks the
//! database every time.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::DbErr;

use crate::clock::UnixTime;
use crate::store::{GrantHolder, Store, mcp_session};

/// Most entries remembered per kind; when full, entries past their time go, and if none has, all.
const CAPACITY: usize = 10_000;

/// The guard's memory of grants and sessions, for one instance.
#[derive(Debug)]
pub struct Trust {
    store: Store,
    trust_for: Duration,
    /// By grant id: the grant's user, or `None` once it is revoked (or its user disabled), for good.
    grants: Memo<Option<GrantHolder>>,
    /// By session id.
    sessions: Memo<SessionOwner>,
}

/// Who a legacy MCP session belongs to, and when it was last seen as far as this instance knows.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOwner {
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub last_seen: UnixTime,
}

#[derive(Debug)]
struct Memo<V> {
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

/// What [`Trust`] can say without the database.
enum Lookup<V> {
    Known(V),
    /// Ask the database, then hand the answer to [`Trust::remember`] with this ticket.
    Unknown(Ticket),
}

/// The count of endings and the time before a database read: its answer is as old as this, not as its
/// arrival.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    generation: u64,
    at: Instant,
}

impl Trust {
    pub fn new(store: Store, trust_for: Duration) -> Trust {
        Trust { store, trust_for, grants: Memo::default(), sessions: Memo::default() }
    }

    /// Who a grant whose tokens may still be used acts for, for the guard on every request: a grant found
    /// live is trusted for the configured time (or until something ends), a revoked one for good.
    pub async fn live_grant_holder(&self, grant_id: &str) -> Result<Option<GrantHolder>, DbErr> {
        match self.lookup(&self.grants, grant_id, Option::is_none) {
            Lookup::Known(holder) => Ok(holder),
            Lookup::Unknown(ticket) => {
                let holder = self.store.active_grant_holder(grant_id).await?;
                self.remember(&self.grants, grant_id, holder.clone(), ticket, Option::is_none);
                Ok(holder)
            }
        }
    }

    /// Who owns a session used within `idle`, for the guard on every request: what was read is trusted for
    /// the configured time, or until a session ends.
    pub async fn live_mcp_session(&self, session_id: &str, idle: Duration) -> Result<Option<SessionOwner>, DbErr> {
        let idle_since = UnixTime::now() - idle;
        let ticket = match self.lookup(&self.sessions, session_id, |_| false) {
            Lookup::Known(owner) if owner.last_seen > idle_since => return Ok(Some(owner)),
            // Idle as far as this instance knows; another may have seen it since.
            Lookup::Known(_) => self.ticket(),
            Lookup::Unknown(ticket) => ticket,
        };
        let owner = self.store.find_live_mcp_session(session_id, idle).await?.map(owner_of);
        if let Some(owner) = &owner {
            self.remember(&self.sessions, session_id, owner.clone(), ticket, |_| false);
        }
        Ok(owner)
    }

    /// Marks a session as used (writing at most once every `every`), here and in the database.
    pub async fn touch_mcp_session(&self, session_id: &str, every: Duration) -> Result<(), DbErr> {
        let at = self.store.touch_mcp_session(session_id, every).await?;
        self.update(&self.sessions, session_id, |owner| owner.last_seen = at);
        Ok(())
    }

    /// The remembered value of `key`, if it was read since the latest ending within the trusted time, or is
    /// `settled` (true for good).
    fn lookup<V: Clone>(&self, memo: &Memo<V>, key: &str, settled: impl Fn(&V) -> bool) -> Lookup<V> {
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

    /// Taken before a database read: an answer read while an ending commits carries the older count and is
    /// never trusted after it, and its time runs from before the read, however long the read took.
    fn ticket(&self) -> Ticket {
        Ticket { generation: self.store.endings_so_far(), at: Instant::now() }
    }

    /// Records the database's answer for `key`, read with `ticket`. A settled entry stays, and so does one
    /// read later (a slow read does not overwrite a newer answer).
    fn remember<V>(&self, memo: &Memo<V>, key: &str, value: V, ticket: Ticket, settled: impl Fn(&V) -> bool) {
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
    fn update<V>(&self, memo: &Memo<V>, key: &str, change: impl FnOnce(&mut V)) {
        if let Some(e) = memo.known.lock().expect("trusted entries lock").get_mut(key) {
            change(&mut e.value);
        }
    }
}

fn owner_of(session: mcp_session::Model) -> SessionOwner {
    SessionOwner { subject: session.subject, client_id: session.client_id, last_seen: session.last_seen }
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

    async fn trust(trust_for: Duration) -> Trust {
        let store = Store::connect("sqlite::memory:", 1, Duration::from_secs(5)).await.expect("an in-memory store");
        Trust::new(store, trust_for)
    }

    fn ada() -> Option<GrantHolder> {
        Some(GrantHolder::Person { username: "ada".to_owned() })
    }

    #[tokio::test]
    async fn an_answer_is_trusted_until_an_ending_or_its_time_is_up() {
        let trusted = trust(Duration::from_secs(60)).await;
        let Lookup::Unknown(ticket) = trusted.lookup(&trusted.grants, "g", never) else {
            panic!("known before any read")
        };
        trusted.remember(&trusted.grants, "g", ada(), ticket, never);
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", never)), Some(ada()));
        trusted.store.ended();
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", never)), None);

        let short = trust(Duration::from_millis(1)).await;
        short.remember(&short.grants, "g", ada(), short.ticket(), never);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(known(short.lookup(&short.grants, "g", never)), None);
    }

    #[tokio::test]
    async fn an_answer_read_before_an_ending_is_not_trusted_after_it() {
        let trusted = trust(Duration::from_secs(60)).await;
        let Lookup::Unknown(ticket) = trusted.lookup(&trusted.grants, "g", never) else {
            panic!("known before any read")
        };
        trusted.store.ended(); // commits while the read is in flight
        trusted.remember(&trusted.grants, "g", ada(), ticket, never);
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", never)), None);
    }

    #[tokio::test]
    async fn a_slow_read_neither_undoes_a_revocation_nor_outlives_its_time() {
        let trusted = trust(Duration::from_millis(50)).await;
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

    #[tokio::test]
    async fn a_settled_answer_outlives_endings_and_nothing_is_kept_with_no_time() {
        let trusted = trust(Duration::from_secs(60)).await;
        trusted.remember(&trusted.grants, "g", None, trusted.ticket(), Option::is_none);
        trusted.store.ended();
        assert_eq!(known(trusted.lookup(&trusted.grants, "g", Option::is_none)), Some(None));

        let uncached = trust(Duration::ZERO).await;
        uncached.remember(&uncached.grants, "g", ada(), uncached.ticket(), never);
        assert_eq!(known(uncached.lookup(&uncached.grants, "g", never)), None);
    }

    #[tokio::test]
    async fn an_update_changes_the_value_but_not_its_trust() {
        let trusted = trust(Duration::from_secs(60)).await;
        let owner = SessionOwner { subject: Some("s".into()), client_id: Some("c".into()), last_seen: UnixTime(1) };
        trusted.remember(&trusted.sessions, "m", owner, trusted.ticket(), never);
        trusted.update(&trusted.sessions, "m", |o| o.last_seen = UnixTime(2));
        let seen = known(trusted.lookup(&trusted.sessions, "m", never)).map(|o| o.last_seen);
        assert_eq!(seen, Some(UnixTime(2)));
        trusted.store.ended();
        assert_eq!(known(trusted.lookup(&trusted.sessions, "m", never)), None);
    }
}
