//! Wall-clock time in Unix milliseconds, injectable so tests can replay
//! signatures made at a fixed instant. The application holds one `Clock`
//! (`app::Dependencies`) and hands it to whatever reads the time: the ReadMe
//! verifier, and the backends that date credentials.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system() -> Clock {
    Arc::new(now_ms)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A clock stopped at `ms`.
pub fn fixed(ms: i64) -> Clock {
    Arc::new(move || ms)
}

/// `ms` (Unix milliseconds) as RFC 3339 in UTC, to the second:
/// `2026-12-09T10:00:00Z`.
pub fn rfc3339(ms: u64) -> String {
    use aws_sdk_apigateway::primitives::{DateTime, DateTimeFormat};
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    DateTime::from_secs(seconds)
        .fmt(DateTimeFormat::DateTime)
        .unwrap_or_else(|_| format!("@{seconds}"))
}

/// An RFC 3339 date-time (any offset) as Unix milliseconds; `None` when it
/// is not one, or is before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    use aws_sdk_apigateway::primitives::{DateTime, DateTimeFormat};
    let time = DateTime::from_str(text, DateTimeFormat::DateTimeWithOffset).ok()?;
    u64::try_from(time.to_millis().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_to_the_second() {
        assert_eq!(rfc3339(1_765_274_400_000), "2025-12-09T10:00:00Z");
        assert_eq!(
            parse_rfc3339("2025-12-09T10:00:00Z"),
            Some(1_765_274_400_000)
        );
        assert_eq!(
            parse_rfc3339("2025-12-09T11:00:00+01:00"),
            Some(1_765_274_400_000)
        );
        assert_eq!(parse_rfc3339("2025-12-09"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }
}
