//! Time: one type for instants ([`UnixTime`], whole seconds since the epoch, UTC, as every table stores
//! them) and [`std::time::Duration`] for spans. Arithmetic between them lives here, so no other module casts
//! seconds back and forth.
use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};

/// An instant, in whole seconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, DeriveValueType)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    pub fn now() -> UnixTime {
        UnixTime(chrono::Utc::now().timestamp())
    }

    pub fn seconds(self) -> i64 {
        self.0
    }

    /// `2026-11-27T16:57:00+00:00`.
    pub fn rfc3339(self) -> String {
        chrono::DateTime::from_timestamp(self.0, 0).map(|t| t.to_rfc3339()).unwrap_or_default()
    }

    /// As people read it: `2026-11-27 16:57 UTC`.
    pub fn readable(self) -> String {
        chrono::DateTime::from_timestamp(self.0, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    }

    /// The span from `earlier` to this instant; zero if `earlier` is later.
    pub fn since(self, earlier: UnixTime) -> Duration {
        Duration::from_secs(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }
}

/// Seconds of a span, saturating (spans here are configured lifetimes, far below the limit).
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Add<Duration> for UnixTime {
    type Output = UnixTime;

    fn add(self, d: Duration) -> UnixTime {
        UnixTime(self.0.saturating_add(secs(d)))
    }
}

impl Sub<Duration> for UnixTime {
    type Output = UnixTime;

    fn sub(self, d: Duration) -> UnixTime {
        UnixTime(self.0.saturating_sub(secs(d)))
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// The current instant.
pub fn now() -> UnixTime {
    UnixTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_move_instants_and_measure_between_them() {
        let t = UnixTime(1_000);
        assert_eq!(t + Duration::from_secs(60), UnixTime(1_060));
        assert_eq!(t - Duration::from_secs(60), UnixTime(940));
        assert_eq!(UnixTime(1_060).since(t), Duration::from_secs(60));
        assert_eq!(t.since(UnixTime(1_060)), Duration::ZERO);
        assert_eq!(UnixTime(0).rfc3339(), "1970-01-01T00:00:00+00:00");
        assert_eq!(UnixTime(0).readable(), "1970-01-01 00:00 UTC");
    }
}
