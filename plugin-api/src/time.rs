//! Calendar fields of a moment in UTC, for the timestamps reports and
//! services write. Plain Rust, no part of the ABI; no time-zone database
//! is needed because everything is UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A moment in UTC split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59.
    pub second: u32,
    /// Microseconds within the second.
    pub micros: u32,
}

impl UtcTime {
    /// The fields of `t`; a time before the Unix epoch counts as the epoch.
    pub fn from_system_time(t: SystemTime) -> UtcTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        // Howard Hinnant's civil_from_days: days since 1970-01-01 to a date.
        let z = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let rem = secs % 86_400;
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            // Both fit: 1..=12 and 1..=31.
            month: month as u32,
            day: day as u32,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            micros: since.subsec_micros(),
        }
    }

    /// The fields of `ms` milliseconds after the Unix epoch.
    pub fn from_unix_ms(ms: u64) -> UtcTime {
        UtcTime::from_system_time(UNIX_EPOCH + Duration::from_millis(ms))
    }

    /// `YYYY-MM-DDTHH:MM:SS`, ISO 8601 without a zone suffix or fraction.
    pub fn iso_seconds(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_fields() {
        assert_eq!(
            UtcTime::from_unix_ms(0).iso_seconds(),
            "1970-01-01T00:00:00"
        );
        assert_eq!(
            UtcTime::from_unix_ms(1_709_251_199_000).iso_seconds(),
            "2024-02-29T23:59:59"
        );
        assert_eq!(
            UtcTime::from_unix_ms(951_782_400_000).iso_seconds(),
            "2000-02-29T00:00:00"
        );
        let t =
            UtcTime::from_system_time(UNIX_EPOCH + Duration::from_micros(4_102_444_800_123_456));
        assert_eq!((t.year, t.month, t.day, t.micros), (2100, 1, 1, 123_456));
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(UtcTime::from_system_time(before), UtcTime::from_unix_ms(0));
    }
}
