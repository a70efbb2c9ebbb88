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
    /// Tests selected but not run (an interrupt, `--max-fail`): they have
    /// no result.
    pub not_run: Vec<String>,
    /// Why they did not run (`run interrupted`, `--max-fail 3 reached`).
    pub not_run_reason: Option<String>,
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
            "not_run_reason": self.not_run_reason,
            "errors": self.errors,
            "lost": self.lost,
        })
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
            match (interrupted, self.not_run.len()) {
                (true, n) => format!(" (interrupted, {n} not run)"),
                (false, 0) => String::new(),
                (false, n) => format!(
                    ", {n} not run ({})",
                    self.not_run_reason.as_deref().unwrap_or("the run stopped")
                ),
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
