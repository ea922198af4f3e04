//! Event-time formatting for the API: Unix milliseconds to RFC 3339 (UTC, millisecond precision).

use chrono::{DateTime, SecondsFormat, Utc};

/// `1700000000123` -> `"2023-11-14T22:13:20.123Z"`. Times outside chrono's range (about
/// ±262 000 years) cannot come from a real event; they render as the Unix epoch rather than fail.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The wall clock as RFC 3339; only for fields that have no event time to show.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instant() {
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(i64::MAX), "1970-01-01T00:00:00.000Z");
    }
}
