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
    /// Why its final attempt ended (`exit code 3`, `timed out after 5m`,
    /// ...), when known.
    pub reason: Option<String>,
    /// Its test output (`output.txt`) in the results directory, when it
    /// has one.
    pub output: Option<std::path::PathBuf>,
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
                "reason": f.reason,
                "attempts": f.attempts, "earlier": f.earlier,
                "duration_seconds": f.duration.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "failures": self.finals.iter().filter(|f| f.status.is_failure()).map(|f| json!({
                "test": f.test, "platform": f.platform, "status": f.status,
                "reason": f.reason.as_deref().or(f.note.as_deref()),
            })).collect::<Vec<_>>(),
            "slowest": self.slowest(10).iter().map(|f| json!({
                "test": f.test, "platform": f.platform,
                "duration_seconds": f.duration.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "platforms": self.platforms(),
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

    /// Human-readable summary for the end of the run, with the last
    /// [`DEFAULT_FAILURE_OUTPUT_LINES`] lines of output of each failure.
    pub fn render(&self, wall: Duration, interrupted: bool) -> String {
        self.render_with(wall, interrupted, DEFAULT_FAILURE_OUTPUT_LINES)
    }

    /// [`RunStats::render`] with the last `output_lines` lines of each
    /// failure's output (0: none). Text that tests control (names, notes,
    /// output) is stripped of control characters and escape sequences.
    pub fn render_with(&self, wall: Duration, interrupted: bool, output_lines: usize) -> String {
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
                let _ = writeln!(
                    s,
                    "  {:<6} {}{}",
                    sanitize_line(f.status.as_str()),
                    sanitize_line(&label(f)),
                    failure_why(f)
                );
                if output_lines > 0
                    && let Some(path) = &f.output
                {
                    for line in output_tail(path, output_lines) {
                        let _ = writeln!(s, "         | {line}");
                    }
                }
            }
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {}", sanitize_text(e));
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

/// Lines of output shown per failure at the end of a run, unless told.
pub const DEFAULT_FAILURE_OUTPUT_LINES: usize = 10;

/// `  exit code 3`, `  reported fail by the test: <note>`, or the note
/// alone for results without a reason (kept from older runs).
fn failure_why(f: &FinalTest) -> String {
    why_failed(f.note.as_deref(), f.reason.as_deref())
        .map(|w| format!("  {w}"))
        .unwrap_or_default()
}

/// What to say about a failure, in one safe line: why it ended (`exit
/// code 3`, `timed out after 5m`), with the test's own note when it
/// reported its result itself; the note alone when the reason is unknown.
pub fn why_failed(note: Option<&str>, reason: Option<&str>) -> Option<String> {
    let note = note.map(first_line).filter(|n| !n.is_empty());
    let why = match (reason, note) {
        (Some(r), Some(n)) if r.starts_with("reported ") => format!("{r}: {n}"),
        (Some(r), _) => r.to_string(),
        (None, Some(n)) => n,
        (None, None) => return None,
    };
    Some(sanitize_line(&why))
}

/// The first line of `text`, with ` …` when more lines follow.
pub fn first_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or("").trim_end().to_string();
    if lines.any(|l| !l.trim().is_empty()) {
        format!("{first} …")
    } else {
        first
    }
}

/// The last `n` non-empty-at-the-end lines of the file at `path`, made
/// safe for a terminal (read from the end: a huge log costs a seek).
fn output_tail(path: &std::path::Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const MAX: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.trim_end().lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line read is likely cut.
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(n);
    lines[from..].iter().map(|l| sanitize_line(l)).collect()
}

/// [`sanitize_line`] for each line of `text`, keeping the line breaks.
pub fn sanitize_text(text: &str) -> String {
    text.lines()
        .map(sanitize_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` without control characters and terminal escape sequences
/// (CSI `ESC [ ... final`, OSC `ESC ] ... BEL/ST`, other `ESC x`), so that
/// what a test prints or reports cannot drive the terminal. Tabs become
/// spaces; line breaks become spaces too (it is one line).
pub fn sanitize_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC, DCS, APC, PM, SOS: up to BEL or ST (ESC and a backslash).
                Some(']' | 'P' | '_' | '^' | 'X') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                _ => {}
            },
            // C1 CSI and OSC, as single characters.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_control_characters_are_dropped() {
        let nasty = "a\u{1b}[31mred\u{1b}[0m \u{1b}]0;title\u{7}b \u{1b}]8;;http://x\u{1b}\\link\u{1b}]8;;\u{1b}\\ \u{9b}2Jc\u{8}\u{0}\td\re";
        assert_eq!(sanitize_line(nasty), "ared b link c d e");
        assert_eq!(sanitize_line("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn a_note_of_several_lines_is_its_first_line() {
        assert_eq!(first_line("one\ntwo"), "one …");
        assert_eq!(first_line("  one  \n\n"), "one");
    }

    #[test]
    fn the_summary_lists_failures_with_reason_and_output_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("output.txt");
        let lines: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&out, lines).expect("write");
        let failed = FinalTest {
            platform: "p".into(),
            test: "/t\u{1b}[2J".into(),
            status: Status::Fail,
            note: None,
            attempts: 1,
            earlier: Vec::new(),
            duration: Duration::from_secs(1),
            reason: Some("exit code 3".into()),
            output: Some(out),
        };
        let stats = RunStats {
            finals: vec![failed],
            ..RunStats::default()
        };
        let text = stats.render_with(Duration::from_secs(1), false, 3);
        let tail = &text[text.find("failed:\n").expect("failed")..];
        assert_eq!(
            tail,
            "failed:\n  fail   /t  exit code 3\n         | line 28\n         | line 29\n         | line 30\n"
        );
        assert!(
            !stats
                .render_with(Duration::ZERO, false, 0)
                .contains("| line")
        );
    }
}
