//! Instants as the approval store keeps and shows them.
//!
//! SQLite holds unix microseconds (integers compare and index cheaply); JSON
//! and messages show RFC 3339 in UTC with exactly six fractional digits and a
//! `Z`, the same fixed-width form the audit log uses, so an approval and the
//! audit records about it read alike.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// An instant with microsecond resolution, UTC. Stored as unix
/// microseconds; shown and serialised as RFC 3339 with six fractional digits
/// and `Z` (`2024-05-01T12:00:00.000123Z`), like audit record times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    pub fn unix_micros(self) -> i64 {
        self.0
    }

    /// The wall clock now. A clock before 1970 reads as the epoch.
    pub fn now() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(micros)
    }

    /// Saturates instead of overflowing: a silly TTL means "effectively never".
    pub fn plus(self, d: Duration) -> Self {
        let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// How long from `now` until this instant; zero once it has passed.
    pub fn remaining_from(self, now: Timestamp) -> Duration {
        let micros = self.0.saturating_sub(now.0).max(0);
        Duration::from_micros(u64::try_from(micros).unwrap_or(0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = i128::from(self.0) * 1000;
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        match OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&format).ok())
        {
            Some(text) => f.write_str(&text),
            // Out of the representable calendar range: still say something.
            None => write!(f, "@{}us", self.0),
        }
    }
}

/// A time that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 time: {0:?}")]
pub struct BadTimestamp(pub String);

impl FromStr for Timestamp {
    type Err = BadTimestamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| BadTimestamp(s.to_string()))?;
        let micros = parsed.unix_timestamp_nanos() / 1000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| BadTimestamp(s.to_string()))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn display_is_fixed_width_utc_with_microseconds_and_parses_back() {
        let t = Timestamp::from_unix_micros(1_714_564_800_000_123);
        assert_eq!(t.to_string(), "2024-05-01T12:00:00.000123Z");
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn remaining_is_zero_once_the_instant_has_passed() {
        let t = Timestamp::from_unix_micros(10);
        assert_eq!(
            t.remaining_from(Timestamp::from_unix_micros(20)),
            Duration::ZERO
        );
        assert_eq!(
            t.remaining_from(Timestamp::from_unix_micros(4)),
            Duration::from_micros(6)
        );
    }
}
