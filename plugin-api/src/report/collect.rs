//! Grouping results into tests, attempts and sub-results as they land.

use std::{collections::HashMap, io, path::PathBuf};

use super::{
    Error,
    files::{Spool, SpoolRef, Tail, pick_log, read_tail},
    text::{clean, truncate_chars},
};
use crate::{Status, view::ResultView};

/// Longest note kept per result, in bytes (notes are not logs).
pub const MAX_NOTE_BYTES: usize = 16 * 1024;

/// A named sub-result of one attempt.
#[derive(Debug, Clone)]
pub struct SubResult {
    /// Sub-result name, [`clean`]ed.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Note, cleaned and at most [`MAX_NOTE_BYTES`].
    pub note: Option<String>,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// Files relative to the results directory.
    pub files: Vec<String>,
}

/// One attempt at running a test.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    /// Attempt number, from 1.
    pub number: u32,
    /// Status of the test-level result; `None` when only sub-results came.
    pub status: Option<Status>,
    /// Note, cleaned and at most [`MAX_NOTE_BYTES`].
    pub note: Option<String>,
    /// Start, ms since the epoch.
    pub started_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// System that ran it, cleaned.
    pub remote: String,
    /// Files relative to the results directory.
    pub files: Vec<String>,
    /// Extra keys as a JSON object text (empty when none).
    pub extra_json: String,
    /// Whether the host said this is the last attempt.
    pub final_attempt: bool,
    /// Named sub-results, in arrival order.
    pub subs: Vec<SubResult>,
    /// The log tail, when it was kept as the result landed.
    spooled_log: Option<SpoolRef>,
}

impl Attempt {
    /// The status that counts: the test's own, or, when only sub-results
    /// came, the worst of theirs (`error` when nothing came at all).
    pub fn effective_status(&self) -> Status {
        if let Some(s) = &self.status {
            return s.clone();
        }
        self.subs
            .iter()
            .map(|s| s.status.clone())
            .reduce(Status::worst)
            .unwrap_or(Status::Error)
    }
}

/// All attempts of one test on one platform.
#[derive(Debug, Clone)]
pub struct CollectedTest {
    /// Platform name.
    pub platform: String,
    /// Full test name.
    pub name: String,
    /// Results directory the files are relative to.
    pub results_dir: PathBuf,
    /// Attempts, sorted by number.
    pub attempts: Vec<Attempt>,
}

impl CollectedTest {
    /// The attempt that counts: the highest one.
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.last()
    }
    /// Attempts before the last one.
    pub fn earlier(&self) -> &[Attempt] {
        let n = self.attempts.len().saturating_sub(1);
        &self.attempts[..n]
    }
}

/// Groups results into tests and attempts as they land.
///
/// A result of an attempt that will be rerun (`final_attempt` false) has
/// its log tail read at once and kept in a [`Spool`], because the rerun may
/// write the same files; the final attempts' logs are read when asked for
/// ([`LogReader::attempt_log`]).
pub struct Collector {
    tests: Vec<CollectedTest>,
    index: HashMap<(String, String), usize>,
    spool: Spool,
    log_limit: u64,
}

impl Collector {
    /// A collector that keeps at most `log_limit` bytes of log per earlier
    /// attempt (`0`: none).
    pub fn new(log_limit: u64) -> Self {
        Collector {
            tests: Vec::new(),
            index: HashMap::new(),
            spool: Spool::default(),
            log_limit,
        }
    }

    /// Adds one result.
    pub fn add(&mut self, r: &ResultView) -> Result<(), Error> {
        let key = (r.platform.clone(), r.test.clone());
        let idx = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                self.tests.push(CollectedTest {
                    platform: key.0.clone(),
                    name: key.1.clone(),
                    results_dir: r.results_dir.clone(),
                    attempts: Vec::new(),
                });
                self.index.insert(key, self.tests.len() - 1);
                self.tests.len() - 1
            }
        };
        let test = &mut self.tests[idx];
        let number = r.attempt.max(1);
        let pos = match test.attempts.binary_search_by_key(&number, |a| a.number) {
            Ok(p) => p,
            Err(p) => {
                test.attempts.insert(
                    p,
                    Attempt {
                        number,
                        ..Attempt::default()
                    },
                );
                p
            }
        };
        let attempt = &mut test.attempts[pos];
        let note = r
            .note
            .as_deref()
            .map(|n| truncate_chars(&clean(n), MAX_NOTE_BYTES).into_owned());
        let status = Status::parse(&clean(r.status.as_str()));
        let files = r.files.clone();
        match &r.subtest {
            Some(name) => attempt.subs.push(SubResult {
                name: clean(name).into_owned(),
                status,
                note,
                started_ms: r.started_unix_ms,
                duration_ms: r.duration_ms,
                files,
            }),
            None => {
                attempt.status = Some(status);
                attempt.note = note;
                attempt.started_ms = r.started_unix_ms;
                attempt.duration_ms = r.duration_ms;
                attempt.remote = clean(&r.remote).into_owned();
                attempt.final_attempt = r.final_attempt;
                let extra = r.extra_json.trim();
                attempt.extra_json = if extra.is_empty() || extra == "{}" {
                    String::new()
                } else {
                    extra.to_string()
                };
                // A rerun may write to the same files: keep this attempt's
                // log tail now. The final attempt's is read at finish.
                if !r.final_attempt
                    && self.log_limit > 0
                    && let Some(log) = pick_log(&files)
                    && let Ok(tail) = read_tail(&test.results_dir.join(log), self.log_limit)
                {
                    attempt.spooled_log = Some(
                        self.spool
                            .put(&tail)
                            .map_err(|source| Error::Spool { source })?,
                    );
                }
                attempt.files = files;
            }
        }
        Ok(())
    }

    /// The tests in arrival order.
    pub fn tests(&self) -> &[CollectedTest] {
        &self.tests
    }

    /// The tests, sorted by platform, then name.
    pub fn sorted(&self) -> Vec<&CollectedTest> {
        let mut v: Vec<&CollectedTest> = self.tests.iter().collect();
        v.sort_by(|a, b| (&a.platform, &a.name).cmp(&(&b.platform, &b.name)));
        v
    }

    /// The tests in arrival order and a [`LogReader`] for their attempts,
    /// to read logs while walking the tests.
    pub fn parts(&mut self) -> (&[CollectedTest], LogReader<'_>) {
        (
            &self.tests,
            LogReader {
                spool: &mut self.spool,
            },
        )
    }
}

/// Reads attempts' log tails: the kept one of an earlier attempt, else
/// from the file now. Get one from [`Collector::parts`].
pub struct LogReader<'a> {
    spool: &'a mut Spool,
}

impl LogReader<'_> {
    /// The log of an attempt ([`pick_log`]) and its tail of at most `limit`
    /// bytes (a kept tail is as long as it was kept); `None` when the
    /// attempt has no log file.
    pub fn attempt_log(
        &mut self,
        test: &CollectedTest,
        attempt: &Attempt,
        limit: u64,
    ) -> Option<(String, io::Result<Tail>)> {
        let log = pick_log(&attempt.files)?.to_string();
        if let Some(r) = attempt.spooled_log {
            return Some((log, self.spool.get(r)));
        }
        let path = test.results_dir.join(&log);
        Some((log, read_tail(&path, limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(test: &str, sub: Option<&str>, status: &str, attempt: u32) -> ResultView {
        ResultView {
            platform: "p".into(),
            test: test.into(),
            subtest: sub.map(str::to_string),
            status: Status::parse(status),
            note: None,
            files: Vec::new(),
            results_dir: PathBuf::from("/nonexistent"),
            started_unix_ms: 0,
            duration_ms: 0,
            attempt,
            final_attempt: true,
            remote: String::new(),
            extra_json: "{}".into(),
        }
    }

    #[test]
    fn groups_attempts_and_sub_results() {
        let mut c = Collector::new(0);
        for r in [
            view("/b", None, "pass", 1),
            view("/a", Some("one"), "warn", 2),
            view("/a", Some("two"), "skip", 2),
            view("/a", None, "fail", 1),
        ] {
            c.add(&r).expect("add");
        }
        let names: Vec<&str> = c.sorted().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["/a", "/b"]);
        let a = &c.tests()[1];
        assert_eq!(a.attempts.len(), 2);
        assert_eq!(a.earlier()[0].effective_status(), Status::Fail);
        let last = a.last().expect("last");
        assert_eq!(last.status, None);
        // Only sub-results: the worst of them, so warn (a failure) wins.
        assert_eq!(last.effective_status(), Status::Warn);
        assert_eq!(Attempt::default().effective_status(), Status::Error);
    }
}
