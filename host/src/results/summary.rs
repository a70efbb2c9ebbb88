//! What a run did: counts, the slowest tests, reruns, failures. Built as
//! results land; printed at the end and written to `summary.json`.

use std::{collections::BTreeMap, fmt::Write, time::Duration};

use serde_json::{Value, json};

use crate::Status;

/// A test's final result, as the summary keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalTest {
    /// Platform.
    pub platform: String,
    /// Test name.
    pub test: String,
    /// Status of its own result.
    pub status: Status,
    /// Note of its own result.
    pub note: Option<String>,
    /// Attempts made (0 when it never ran).
    pub attempts: u32,
    /// Statuses of the earlier attempts, in order.
    pub earlier: Vec<Status>,
    /// Duration of the final attempt.
    pub duration: Duration,
}

/// Everything the summary needs.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Final results in the order they landed.
    pub finals: Vec<FinalTest>,
    /// Tests selected but not run (interrupted).
    pub not_run: Vec<String>,
    /// Errors that did not stop the run (dropped provisioners, ...).
    pub errors: Vec<String>,
    /// Tests whose results could not be stored (a full disk, ...).
    pub lost: Vec<String>,
    /// Files of the run that could not be written (`summary.json`).
    pub unwritten: Vec<String>,
}

impl RunStats {
    /// Final results by status, sorted by the status word.
    pub fn counts(&self) -> Vec<(Status, u64)> {
        let mut m: BTreeMap<&str, (&Status, u64)> = BTreeMap::new();
        for f in &self.finals {
            m.entry(f.status.as_str()).or_insert((&f.status, 0)).1 += 1;
        }
        m.into_values().map(|(s, n)| (s.clone(), n)).collect()
    }

    /// Whether any final result is a failure.
    pub fn any_failed(&self) -> bool {
        self.finals.iter().any(|f| f.status.is_failure())
    }

    /// Whether some results or files of the run could not be written.
    pub fn results_incomplete(&self) -> bool {
        !self.lost.is_empty() || !self.unwritten.is_empty()
    }

    /// Tests that needed more than one attempt.
    pub fn rerun(&self) -> impl Iterator<Item = &FinalTest> {
        self.finals.iter().filter(|f| f.attempts > 1)
    }

    /// The `n` slowest final attempts.
    pub fn slowest(&self, n: usize) -> Vec<&FinalTest> {
        // Tests that did not run (0 attempts) and results kept from an
        // earlier run (no duration) are not timed.
        let mut v: Vec<&FinalTest> = self
            .finals
            .iter()
            .filter(|f| f.attempts > 0 && !f.duration.is_zero())
            .collect();
        v.sort_by_key(|f| std::cmp::Reverse(f.duration));
        v.truncate(n);
        v
    }

    /// As JSON for `summary.json`.
    pub fn to_json(&self, wall: Duration, interrupted: bool) -> Value {
        let counts: serde_json::Map<String, Value> = self
            .counts()
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        json!({
            "wall_seconds": wall.as_secs_f64(),
            "interrupted": interrupted,
            "counts": counts,
            "tests": self.finals.iter().map(|f| json!({
                "test": f.test, "platform": f.platform, "status": f.status, "note": f.note,
                "attempts": f.attempts, "earlier": f.earlier,
                "duration_seconds": f.duration.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "not_run": self.not_run,
            "errors": self.errors,
            "lost": self.lost,
        })
    }

    /// Writes what [`RunStats::to_json`] gives, with `run_id` and
    /// `tests_total` after it, as pretty JSON to `w`, one test at a time:
    /// the whole document is never held in memory (a run of 100,000 tests
    /// would need about 100 MB for it).
    pub fn write_json(
        &self,
        w: impl std::io::Write,
        wall: Duration,
        interrupted: bool,
        run_id: &str,
        tests_total: u64,
    ) -> serde_json::Result<()> {
        use serde::Serialize;
        #[derive(Serialize)]
        struct Doc<'a> {
            wall_seconds: f64,
            interrupted: bool,
            counts: serde_json::Map<String, Value>,
            tests: Tests<'a>,
            not_run: &'a [String],
            errors: &'a [String],
            lost: &'a [String],
            run_id: &'a str,
            tests_total: u64,
        }
        struct Tests<'a>(&'a [FinalTest]);
        #[derive(Serialize)]
        struct One<'a> {
            test: &'a str,
            platform: &'a str,
            status: &'a Status,
            note: &'a Option<String>,
            attempts: u32,
            earlier: &'a [Status],
            duration_seconds: f64,
        }
        impl Serialize for Tests<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|f| One {
                    test: &f.test,
                    platform: &f.platform,
                    status: &f.status,
                    note: &f.note,
                    attempts: f.attempts,
                    earlier: &f.earlier,
                    duration_seconds: f.duration.as_secs_f64(),
                }))
            }
        }
        let doc = Doc {
            wall_seconds: wall.as_secs_f64(),
            interrupted,
            counts: self
                .counts()
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect(),
            tests: Tests(&self.finals),
            not_run: &self.not_run,
            errors: &self.errors,
            lost: &self.lost,
            run_id,
            tests_total,
        };
        let mut w = w;
        doc.serialize(&mut serde_json::Serializer::pretty(&mut w))?;
        w.write_all(b"\n").map_err(serde_json::Error::io)
    }

    /// The platforms of the final results, sorted.
    pub fn platforms(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = self.finals.iter().map(|f| f.platform.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        seen
    }

    /// Tests × platforms: each test's final status on each platform (`-`
    /// where it was not selected), for runs on more than one platform.
    pub fn matrix_table(&self) -> Option<String> {
        let platforms = self.platforms();
        if platforms.len() < 2 {
            return None;
        }
        let mut rows: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for f in &self.finals {
            let col = platforms.iter().position(|p| *p == f.platform)?;
            rows.entry(&f.test)
                .or_insert_with(|| vec!["-"; platforms.len()])[col] = f.status.as_str();
        }
        let name_w = rows.keys().map(|t| t.len()).max().unwrap_or(4).max(4);
        let widths: Vec<usize> = platforms.iter().map(|p| p.len().max(5)).collect();
        let mut s = String::new();
        let mut row = |first: &str, cells: &[&str]| {
            let mut line = format!("  {first:<name_w$}");
            for (cell, w) in cells.iter().zip(&widths) {
                let _ = write!(line, "  {cell:<w$}");
            }
            s.push_str(line.trim_end());
            s.push('\n');
        };
        row("test", &platforms);
        for (test, statuses) in &rows {
            row(test, statuses);
        }
        Some(s)
    }

    /// Human-readable summary for the end of the run.
    pub fn render(&self, wall: Duration, interrupted: bool) -> String {
        let matrix = self.platforms().len() > 1;
        let label = |f: &FinalTest| {
            if matrix {
                format!("{} [{}]", f.test, f.platform)
            } else {
                f.test.clone()
            }
        };
        let mut s = String::new();
        let counts = self
            .counts()
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "{} tests in {:.1}s: {}{}",
            self.finals.len(),
            wall.as_secs_f64(),
            if counts.is_empty() {
                "nothing ran".into()
            } else {
                counts
            },
            if interrupted {
                format!(" (interrupted, {} not run)", self.not_run.len())
            } else {
                String::new()
            }
        );
        if let Some(table) = self.matrix_table() {
            let _ = writeln!(s, "tests × platforms:");
            s.push_str(&table);
        }
        let slow = self.slowest(5);
        if !slow.is_empty() {
            let _ = writeln!(s, "slowest:");
            for f in slow {
                let _ = writeln!(s, "  {:>8.1}s  {}", f.duration.as_secs_f64(), label(f));
            }
        }
        let reruns: Vec<_> = self.rerun().collect();
        if !reruns.is_empty() {
            let _ = writeln!(s, "rerun:");
            for f in reruns {
                let flaky = if !f.status.is_failure() {
                    "  (flaky)"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  {} -> {}  {}{flaky}",
                    f.earlier
                        .iter()
                        .map(Status::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.status,
                    label(f)
                );
            }
        }
        let failed: Vec<_> = self
            .finals
            .iter()
            .filter(|f| f.status.is_failure())
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(s, "failed:");
            for f in failed {
                match &f.note {
                    Some(n) if !n.is_empty() => {
                        let _ = writeln!(s, "  {:<6} {}  ({n})", f.status, label(f));
                    }
                    _ => {
                        let _ = writeln!(s, "  {:<6} {}", f.status, label(f));
                    }
                }
            }
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        if !self.lost.is_empty() {
            let _ = writeln!(
                s,
                "error: the results of {} test(s) are not on disk: {}",
                self.lost.len(),
                self.lost.join(", ")
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `summary.json` is streamed now: it must stay byte for byte what
    /// the whole document, built and printed at once, was.
    #[test]
    fn streamed_summary_matches_the_built_document() {
        let finals = vec![
            FinalTest {
                platform: "p1".into(),
                test: "/a \"quoted\"".into(),
                status: Status::Pass,
                note: None,
                attempts: 1,
                earlier: Vec::new(),
                duration: Duration::from_millis(1234),
            },
            FinalTest {
                platform: "p2".into(),
                test: "/b".into(),
                status: Status::parse("weird"),
                note: Some("exit code 3\nand more".into()),
                attempts: 3,
                earlier: vec![Status::Fail, Status::Error],
                duration: Duration::from_micros(7),
            },
        ];
        let stats = RunStats {
            finals,
            not_run: vec!["/c".into()],
            errors: vec!["provisioner x dropped".into()],
            lost: Vec::new(),
            unwritten: Vec::new(),
        };
        let wall = Duration::from_secs_f64(12.5);
        let mut built = stats.to_json(wall, true);
        built["run_id"] = Value::String("20260101-000000-1".into());
        built["tests_total"] = 3u64.into();
        let built = serde_json::to_string_pretty(&built).expect("json") + "\n";
        let mut streamed = Vec::new();
        stats
            .write_json(&mut streamed, wall, true, "20260101-000000-1", 3)
            .expect("write");
        assert_eq!(String::from_utf8(streamed).expect("utf-8"), built);
    }
}
