//! Multi-round requests of 2026-07-28 (SEP-2322) through the gateway: when an upstream answers
//! `input_required`, the client gets the upstream's input requests as they are and a request state of
//! ours, sealed, that binds the retry to the same person, client, upstream and target and carries the
//! upstream's own state inside. On the retry the state is opened and checked, and the upstream gets its
//! own state back with the client's answers; nothing is kept between rounds.
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::InputRequiredResult;
use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::crypto::{open_for, seal_for};
use crate::domain::tokens::AccessClaims;

/// How long a client has to answer an upstream's input requests.
const ROUND_TTL: Duration = Duration::from_secs(600);
const PURPOSE: &str = "mcp-gateway input_required round";

/// Seals and opens round states with key material every instance shares (derived from the secrets key),
/// so a client may answer a round on any instance.
pub struct Rounds {
    key: String,
}

#[derive(Serialize, Deserialize)]
struct RoundState {
    /// Upstream, target (tool or prompt name as the client sees it, or resource URI), subject, client.
    u: String,
    t: String,
    s: String,
    c: String,
    /// Expiry, seconds since the epoch.
    e: u64,
    /// The upstream's own request state.
    st: Option<String>,
}

impl Rounds {
    pub fn new(key: String) -> Rounds {
        Rounds { key }
    }

    /// The upstream's `input_required` answer as the client gets it: the same requests, our state.
    pub fn wrap(
        &self,
        upstream: &str,
        target: &str,
        caller: &AccessClaims,
        mut result: InputRequiredResult,
    ) -> InputRequiredResult {
        let state = RoundState {
            u: upstream.to_owned(),
            t: target.to_owned(),
            s: caller.sub.clone(),
            c: caller.client_id.clone(),
            e: (UnixTime::now() + ROUND_TTL).seconds().max(0).unsigned_abs(),
            st: result.request_state.take(),
        };
        let json = serde_json::to_string(&state).expect("a round state serializes");
        result.request_state = Some(seal_for(PURPOSE, &self.key, &json));
        result
    }

    /// The upstream's state inside a retry's `requestState`, after checking that the retry is the same
    /// person's and client's, for the same upstream and target, in time.
    pub fn open(
        &self,
        sealed: &str,
        upstream: &str,
        target: &str,
        caller: &AccessClaims,
    ) -> Result<Option<String>, McpError> {
        let invalid =
            || McpError::invalid_params("the request state is not one this server gave out, or has expired", None);
        let json = open_for(PURPOSE, &self.key, sealed).ok_or_else(invalid)?;
        let state: RoundState = serde_json::from_str(&json).map_err(|_| invalid())?;
        let now = UnixTime::now().seconds().max(0).unsigned_abs();
        let same = state.u == upstream && state.t == target && state.s == caller.sub && state.c == caller.client_id;
        if !same || state.e < now {
            return Err(invalid());
        }
        Ok(state.st)
    }
}
