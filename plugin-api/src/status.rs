//! The status of a test result, one type for the host and every reporter.
//!
//! On the wire (results files, the test-control protocol, the ABI) a status
//! is a lowercase word. The protocol lets a test report any word, so besides
//! the statuses atex and tmt know there is [`Status::Other`]. This type is
//! plain Rust and does not cross the ABI itself: [`crate::TestResult`]
//! keeps its string, and [`Status::parse`] reads it.
//!
//! What counts as a failure follows tmt's exit code: `warn`, `fail`,
//! `error`, `infra` and any unknown word are failures; `pass`, `info` and
//! `skip` are not.

use std::{borrow::Cow, fmt, str::FromStr};

/// The status of a result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// The test passed.
    Pass,
    /// Information only; never a failure.
    Info,
    /// The test did not run its checks (skipped by itself or not run).
    Skip,
    /// The test passed with a warning; counts as a failure, like in tmt.
    Warn,
    /// The test failed.
    Fail,
    /// The test could not do its job (a broken test, a setup step that failed).
    Error,
    /// The infrastructure failed: the system was lost, the test timed out,
    /// the run was cancelled.
    Infra,
    /// A word atex does not know, kept as the test wrote it (lowercased).
    Other(String),
}

impl Status {
    /// Every status atex knows, from least to most severe.
    pub const KNOWN: [Status; 7] = [
        Status::Pass,
        Status::Info,
        Status::Skip,
        Status::Warn,
        Status::Fail,
        Status::Error,
        Status::Infra,
    ];

    /// Reads a status word; case does not matter, unknown words become
    /// [`Status::Other`].
    pub fn parse(word: &str) -> Status {
        let lower: Cow<'_, str> = if word.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(word.to_ascii_lowercase())
        } else {
            Cow::Borrowed(word)
        };
        match &*lower {
            "pass" => Status::Pass,
            "info" => Status::Info,
            "skip" => Status::Skip,
            "warn" => Status::Warn,
            "fail" => Status::Fail,
            "error" => Status::Error,
            "infra" => Status::Infra,
            _ => Status::Other(lower.into_owned()),
        }
    }

    /// The wire word, e.g. `"pass"`.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Pass => "pass",
            Status::Info => "info",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Infra => "infra",
            Status::Other(s) => s,
        }
    }

    /// How bad it is: `pass` 0, `info` 1, `skip` 2, `warn` 3, an unknown
    /// word 4, `fail` 5, `error` 6, `infra` 7. The worst of several results
    /// is the one with the highest severity.
    pub fn severity(&self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Info => 1,
            Status::Skip => 2,
            Status::Warn => 3,
            Status::Other(_) => 4,
            Status::Fail => 5,
            Status::Error => 6,
            Status::Infra => 7,
        }
    }

    /// Whether this status makes a run fail: everything from `warn` up.
    pub fn is_failure(&self) -> bool {
        self.severity() >= Status::Warn.severity()
    }

    /// The worse of two statuses (the first one on a tie).
    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment (`{:<6}`) apply.
        f.pad(self.as_str())
    }
}

impl FromStr for Status {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Status::parse(s))
    }
}

/// Compares with the wire word: `status == "pass"`.
impl PartialEq<str> for Status {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// Compares with the wire word: `status == "pass"`.
impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&str> for Status {
    fn from(s: &str) -> Self {
        Status::parse(s)
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Ok(Status::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_case_folds() {
        for s in Status::KNOWN {
            assert_eq!(Status::parse(s.as_str()), s);
            assert_eq!(Status::parse(&s.as_str().to_uppercase()), s);
        }
        assert_eq!(Status::parse("Weird"), Status::Other("weird".into()));
        assert_eq!(Status::parse("weird").to_string(), "weird");
        assert_eq!(format!("[{:<6}]", Status::Fail), "[fail  ]");
    }

    #[test]
    fn severity_orders_known_statuses_and_places_unknown_between_warn_and_fail() {
        let sev: Vec<u8> = Status::KNOWN.iter().map(Status::severity).collect();
        assert!(sev.windows(2).all(|w| w[0] < w[1]), "{sev:?}");
        let other = Status::Other("x".into()).severity();
        assert!(Status::Warn.severity() < other && other < Status::Fail.severity());
    }

    #[test]
    fn failures_are_warn_and_worse() {
        let failing: Vec<&str> = Status::KNOWN
            .iter()
            .filter(|s| s.is_failure())
            .map(Status::as_str)
            .collect();
        assert_eq!(failing, ["warn", "fail", "error", "infra"]);
        assert!(Status::Other("custom".into()).is_failure());
    }

    #[test]
    fn worst_keeps_the_more_severe() {
        assert_eq!(Status::Pass.worst(Status::Warn), Status::Warn);
        assert_eq!(Status::Infra.worst(Status::Fail), Status::Infra);
        assert_eq!(Status::Skip.worst(Status::Info), Status::Skip);
    }
}
