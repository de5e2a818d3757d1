//! Timestamps as text: RFC 3339 for machines, a spaced form for people.
//!
//! Why a crate (humantime) instead of calendar arithmetic: date math is a
//! solved problem with sharp edges (leap years, negative times).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-24T13:05:09.123Z` from unix milliseconds (UTC).
pub fn rfc3339_ms(ts_ms: i64) -> String {
    let time = if ts_ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ts_ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ts_ms.unsigned_abs())
    };
    humantime::format_rfc3339_millis(clamp(time)).to_string()
}

/// `2026-11-24 13:05:09.123` (UTC): what operators read in tables.
pub fn display(ts_ms: i64) -> String {
    let text = rfc3339_ms(ts_ms);
    text.trim_end_matches('Z').replacen('T', " ", 1)
}

/// `2026-11-24` (UTC): the day a daily file belongs to.
pub fn date(ts_ms: i64) -> String {
    rfc3339_ms(ts_ms)[..10].to_owned()
}

/// humantime formats years 0000-9999 only; clamp rather than panic.
fn clamp(time: SystemTime) -> SystemTime {
    let max = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    if time > max {
        max
    } else if time < UNIX_EPOCH {
        UNIX_EPOCH
    } else {
        time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_utc_with_milliseconds() {
        assert_eq!(display(0), "1970-01-01 00:00:00.000");
        assert_eq!(display(1_764_000_000_123), "2025-11-24 16:00:00.123");
        assert_eq!(display(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(rfc3339_ms(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(date(1_764_000_000_123), "2025-11-24");
        assert_eq!(display(-5), "1970-01-01 00:00:00.000");
    }
}
