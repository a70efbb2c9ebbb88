//! What a run did: counts, the slowest tests, reruns, failures. Built as
//! results land, one compact record per job; printed at the end and
//! streamed to `summary.json` entry by entry, never built whole.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    fmt::Write,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use serde::{
    Serialize, Serializer,
    ser::{SerializeMap, SerializeSeq},
};
use serde_json::Value;

use crate::Status;

/// A test's final result, as it is handed to [`RunStats::push`].
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
    /// has one. Kept for failures only (the summary shows their tail).
    pub output: Option<std::path::PathBuf>,
}

/// A final result as the summary keeps it until the end of the run: the
/// platform, reason and note shared between the jobs that have the same
/// one, the duration in nanoseconds (it prints the same seconds), the
/// output path only for failures.
#[derive(Debug, Clone)]
struct Final {
    platform: Arc<str>,
    test: Box<str>,
    status: Status,
    note: Option<Arc<str>>,
    reason: Option<Arc<str>>,
    earlier: Box<[Status]>,
    output: Option<Box<std::path::Path>>,
    duration_ns: u64,
    attempts: u32,
}

impl Final {
    fn duration(&self) -> Duration {
        Duration::from_nanos(self.duration_ns)
    }

    /// The name shown for it: the test, with its platform in a matrix.
    fn label(&self, matrix: bool) -> String {
        if matrix {
            format!("{} [{}]", self.test, self.platform)
        } else {
            self.test.to_string()
        }
    }
}

/// Everything the summary needs.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    /// Final results in the order they landed.
    finals: Vec<Final>,
    /// Platforms, reasons and notes, each kept once.
    strings: HashSet<Arc<str>>,
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

/// How many of the slowest tests `summary.json` lists.
const SLOWEST_IN_JSON: usize = 10;

impl RunStats {
    /// Adds a final result, in the order results land.
    pub fn push(&mut self, f: FinalTest) {
        let failed = f.status.is_failure();
        let platform = self.intern(&f.platform);
        let note = f.note.as_deref().map(|n| self.intern(n));
        let reason = f.reason.as_deref().map(|r| self.intern(r));
        self.finals.push(Final {
            platform,
            test: f.test.into_boxed_str(),
            status: f.status,
            note,
            reason,
            earlier: f.earlier.into_boxed_slice(),
            output: f.output.filter(|_| failed).map(PathBuf::into_boxed_path),
            duration_ns: u64::try_from(f.duration.as_nanos()).unwrap_or(u64::MAX),
            attempts: f.attempts,
        });
    }

    /// The one shared copy of `s`.
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(Arc::clone(&a));
        a
    }

    /// How many tests have a final result.
    pub fn len(&self) -> usize {
        self.finals.len()
    }

    /// Whether no test has a final result.
    pub fn is_empty(&self) -> bool {
        self.finals.is_empty()
    }

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
    fn rerun(&self) -> impl Iterator<Item = &Final> {
        self.finals.iter().filter(|f| f.attempts > 1)
    }

    /// The `n` slowest final attempts, slowest first (of equal ones, the
    /// first to land first), found without sorting the whole run.
    fn slowest(&self, n: usize) -> Vec<&Final> {
        let mut v: Vec<&Final> = Vec::with_capacity(n + 1);
        if n == 0 {
            return v;
        }
        // Tests that did not run (0 attempts) and results kept from an
        // earlier run (no duration) are not timed.
        for f in self
            .finals
            .iter()
            .filter(|f| f.attempts > 0 && f.duration_ns > 0)
        {
            if v.len() == n && v[n - 1].duration_ns >= f.duration_ns {
                continue;
            }
            let at = v.partition_point(|g| g.duration_ns >= f.duration_ns);
            v.insert(at, f);
            v.truncate(n);
        }
        v
    }

    /// Writes `summary.json` to `w`, entry by entry: the run's counts,
    /// every final test, the failures, the slowest tests, the platforms,
    /// the tests not run and the errors, then `tail` (the run's id, start,
    /// exit code, ...) in its order. Pretty-printed, with a final line
    /// break.
    pub fn write_json(
        &self,
        w: &mut dyn std::io::Write,
        wall: Duration,
        interrupted: bool,
        tail: &[(&str, Value)],
    ) -> std::io::Result<()> {
        let mut ser = serde_json::Serializer::pretty(&mut *w);
        SummaryDoc {
            stats: self,
            wall,
            interrupted,
            tail,
        }
        .serialize(&mut ser)
        .map_err(std::io::Error::from)?;
        w.write_all(b"\n")
    }

    /// The platforms of the final results, sorted.
    pub fn platforms(&self) -> Vec<&str> {
        let seen: BTreeSet<&str> = self.finals.iter().map(|f| &*f.platform).collect();
        seen.into_iter().collect()
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
            let col = platforms.iter().position(|p| *p == &*f.platform)?;
            rows.entry(&*f.test)
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
        let label = |f: &Final| f.label(matrix);
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
                let _ = writeln!(s, "  {:>8.1}s  {}", f.duration().as_secs_f64(), label(f));
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

/// `summary.json`, serialized from the compact records as it is written.
struct SummaryDoc<'a> {
    stats: &'a RunStats,
    wall: Duration,
    interrupted: bool,
    tail: &'a [(&'a str, Value)],
}

impl Serialize for SummaryDoc<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let stats = self.stats;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("wall_seconds", &self.wall.as_secs_f64())?;
        m.serialize_entry("interrupted", &self.interrupted)?;
        m.serialize_entry("counts", &Counts(stats.counts()))?;
        m.serialize_entry("tests", &Each(stats, Entry::Test))?;
        m.serialize_entry("failures", &Each(stats, Entry::Failure))?;
        m.serialize_entry("slowest", &Each(stats, Entry::Slow))?;
        m.serialize_entry("platforms", &stats.platforms())?;
        m.serialize_entry("not_run", &stats.not_run)?;
        m.serialize_entry("not_run_reason", &stats.not_run_reason)?;
        m.serialize_entry("errors", &stats.errors)?;
        m.serialize_entry("lost", &stats.lost)?;
        for (k, v) in self.tail {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// `{"fail": 2, "pass": 10}`.
struct Counts(Vec<(Status, u64)>);

impl Serialize for Counts {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(self.0.len()))?;
        for (status, n) in &self.0 {
            m.serialize_entry(status.as_str(), n)?;
        }
        m.end()
    }
}

/// Which list of [`Each`], and so which fields of each test.
#[derive(Clone, Copy)]
enum Entry {
    /// Every final test, all its fields.
    Test,
    /// The failures, with why they failed.
    Failure,
    /// The slowest tests, with their duration.
    Slow,
}

/// One of the per-test lists of `summary.json`, written test by test.
struct Each<'a>(&'a RunStats, Entry);

impl Serialize for Each<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Each(stats, kind) = *self;
        let mut seq = ser.serialize_seq(None)?;
        match kind {
            Entry::Test => {
                for f in &stats.finals {
                    seq.serialize_element(&Item(f, kind))?;
                }
            }
            Entry::Failure => {
                for f in stats.finals.iter().filter(|f| f.status.is_failure()) {
                    seq.serialize_element(&Item(f, kind))?;
                }
            }
            Entry::Slow => {
                for f in stats.slowest(SLOWEST_IN_JSON) {
                    seq.serialize_element(&Item(f, kind))?;
                }
            }
        }
        seq.end()
    }
}

/// One test in one of the lists.
struct Item<'a>(&'a Final, Entry);

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Item(f, kind) = *self;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("test", &*f.test)?;
        m.serialize_entry("platform", &*f.platform)?;
        match kind {
            Entry::Test => {
                m.serialize_entry("status", &f.status)?;
                m.serialize_entry("note", &f.note.as_deref())?;
                m.serialize_entry("reason", &f.reason.as_deref())?;
                m.serialize_entry("attempts", &f.attempts)?;
                m.serialize_entry("earlier", &f.earlier)?;
                m.serialize_entry("duration_seconds", &f.duration().as_secs_f64())?;
            }
            Entry::Failure => {
                m.serialize_entry("status", &f.status)?;
                m.serialize_entry("reason", &f.reason.as_deref().or(f.note.as_deref()))?;
            }
            Entry::Slow => {
                m.serialize_entry("duration_seconds", &f.duration().as_secs_f64())?;
            }
        }
        m.end()
    }
}

/// Lines of output shown per failure at the end of a run, unless told.
pub const DEFAULT_FAILURE_OUTPUT_LINES: usize = 10;

/// `  exit code 3`, `  reported fail by the test: <note>`, or the note
/// alone for results without a reason (kept from older runs).
fn failure_why(f: &Final) -> String {
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
        let mut stats = RunStats::default();
        stats.push(failed);
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

    /// `summary.json` as atex wrote it before it was streamed: the whole
    /// document built as a JSON value from the full per-test records, the
    /// run's own keys added at the end, pretty-printed.
    fn summary_as_before(
        finals: &[FinalTest],
        stats: &RunStats,
        wall: Duration,
        interrupted: bool,
        tail: &[(&str, Value)],
    ) -> String {
        use serde_json::json;
        let mut counts: BTreeMap<&str, (&Status, u64)> = BTreeMap::new();
        for f in finals {
            counts.entry(f.status.as_str()).or_insert((&f.status, 0)).1 += 1;
        }
        let counts: serde_json::Map<String, Value> = counts
            .into_values()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let mut slowest: Vec<&FinalTest> = finals
            .iter()
            .filter(|f| f.attempts > 0 && !f.duration.is_zero())
            .collect();
        slowest.sort_by_key(|f| std::cmp::Reverse(f.duration));
        slowest.truncate(10);
        let mut platforms: Vec<&str> = finals.iter().map(|f| f.platform.as_str()).collect();
        platforms.sort_unstable();
        platforms.dedup();
        let mut json = json!({
            "wall_seconds": wall.as_secs_f64(),
            "interrupted": interrupted,
            "counts": counts,
            "tests": finals.iter().map(|f| json!({
                "test": f.test, "platform": f.platform, "status": f.status, "note": f.note,
                "reason": f.reason,
                "attempts": f.attempts, "earlier": f.earlier,
                "duration_seconds": f.duration.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "failures": finals.iter().filter(|f| f.status.is_failure()).map(|f| json!({
                "test": f.test, "platform": f.platform, "status": f.status,
                "reason": f.reason.as_deref().or(f.note.as_deref()),
            })).collect::<Vec<_>>(),
            "slowest": slowest.iter().map(|f| json!({
                "test": f.test, "platform": f.platform,
                "duration_seconds": f.duration.as_secs_f64(),
            })).collect::<Vec<_>>(),
            "platforms": platforms,
            "not_run": stats.not_run,
            "not_run_reason": stats.not_run_reason,
            "errors": stats.errors,
            "lost": stats.lost,
        });
        for (k, v) in tail {
            json[*k] = v.clone();
        }
        serde_json::to_string_pretty(&json).expect("json") + "\n"
    }

    /// A run on three platforms with passes, failures of every kind,
    /// reruns (flaky and not), kept results, tests not run, equal and odd
    /// durations, an unknown status and notes with quotes, unicode and
    /// control characters.
    fn mixed_run() -> Vec<FinalTest> {
        let mut v = Vec::new();
        let statuses = [
            Status::Pass,
            Status::Fail,
            Status::Pass,
            Status::Error,
            Status::Warn,
            Status::Info,
            Status::Other("weird".into()),
            Status::Infra,
            Status::Skip,
        ];
        for i in 0..60u32 {
            let status = statuses[i as usize % statuses.len()].clone();
            let platform = format!("fedora-{}", 40 + i % 3);
            let (attempts, earlier) = match i % 7 {
                3 => (2, vec![Status::Fail]),
                5 => (3, vec![Status::Infra, Status::Error]),
                _ => (1, Vec::new()),
            };
            // Ties (every 11th has the same duration), odd nanoseconds,
            // and results kept from an earlier run (zero).
            let duration = match i % 11 {
                0 => Duration::from_secs(9),
                10 => Duration::ZERO,
                _ => Duration::new(u64::from(i % 5), i * 7_654_321 + 1),
            };
            let reason = match &status {
                Status::Pass => Some("exit code 0".to_string()),
                Status::Fail => Some(format!("exit code {}", 1 + i % 4)),
                Status::Infra => Some("timed out after 5m".to_string()),
                Status::Warn => Some("reported warn by the test".to_string()),
                _ => None,
            };
            let note = match i % 4 {
                1 => Some(format!("a \"quoted\" note ✓ {i}\nsecond\tline \u{1b}[31m")),
                2 => Some("shared note".to_string()),
                _ => None,
            };
            v.push(FinalTest {
                platform,
                test: format!("/tests/t{:02}/ü", i / 3),
                status,
                note,
                attempts,
                earlier,
                duration,
                reason,
                output: Some(PathBuf::from(format!("files/p/t{i}/output.txt"))),
            });
        }
        // Not run to completion: a result of its own, no attempt.
        v.push(FinalTest {
            platform: "fedora-41".into(),
            test: "/tests/given-up".into(),
            status: Status::Infra,
            note: Some("system lost twice".into()),
            attempts: 0,
            earlier: vec![Status::Infra, Status::Infra],
            duration: Duration::ZERO,
            reason: Some("system lost twice".into()),
            output: None,
        });
        v
    }

    #[test]
    fn streamed_summary_json_is_the_document_written_before() {
        let finals = mixed_run();
        let mut stats = RunStats::default();
        for f in &finals {
            stats.push(f.clone());
        }
        stats.not_run = vec!["/tests/late on fedora-40".into(), "/tests/later".into()];
        stats.not_run_reason = Some("--max-fail 3 reached".into());
        stats.errors = vec!["provisioner x: \"gone\"".into()];
        stats.lost = vec!["/tests/t03/ü".into()];
        let tail: Vec<(&str, Value)> = vec![
            ("run_id", "20260101-000000-abcd".into()),
            ("tests_total", 64u64.into()),
            ("atex_version", "0.1.0".into()),
            ("started", "2026-01-01T00:00:00Z".into()),
            ("started_unix_ms", 1_767_225_600_000u64.into()),
            ("history", Value::Null),
            ("exit_code", 2u8.into()),
        ];
        let wall = Duration::new(123, 456_789_012);
        let mut out = Vec::new();
        stats
            .write_json(&mut out, wall, false, &tail)
            .expect("write");
        let streamed = String::from_utf8(out).expect("utf8");
        let before = summary_as_before(&finals, &stats, wall, false, &tail);
        let parsed: Value = serde_json::from_str(&streamed).expect("streamed parses");
        assert_eq!(
            parsed,
            serde_json::from_str::<Value>(&before).expect("parses")
        );
        assert_eq!(streamed, before, "not byte for byte the same");
        // The keys in the order the README lists them and users read them.
        let keys: Vec<&str> = parsed
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "wall_seconds",
                "interrupted",
                "counts",
                "tests",
                "failures",
                "slowest",
                "platforms",
                "not_run",
                "not_run_reason",
                "errors",
                "lost",
                "run_id",
                "tests_total",
                "atex_version",
                "started",
                "started_unix_ms",
                "history",
                "exit_code",
            ]
        );
        let test_keys: Vec<&str> = parsed["tests"][0]
            .as_object()
            .expect("test")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            test_keys,
            [
                "test",
                "platform",
                "status",
                "note",
                "reason",
                "attempts",
                "earlier",
                "duration_seconds"
            ]
        );
        // What the run holds is really mixed, so the comparison covers it.
        assert_eq!(parsed["platforms"].as_array().map(Vec::len), Some(3));
        assert_eq!(parsed["slowest"].as_array().map(Vec::len), Some(10));
        assert!(parsed["failures"].as_array().is_some_and(|f| f.len() > 20));
        assert!(parsed["counts"]["weird"].as_u64().is_some_and(|n| n > 0));
        // An interrupted run with nothing in it.
        let empty = RunStats::default();
        let mut out = Vec::new();
        empty
            .write_json(&mut out, Duration::ZERO, true, &[])
            .expect("write");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            summary_as_before(&[], &empty, Duration::ZERO, true, &[])
        );
    }

    #[test]
    fn identical_reasons_and_platforms_are_kept_once() {
        let mut stats = RunStats::default();
        for f in mixed_run() {
            stats.push(f);
        }
        let passes: Vec<&Final> = stats
            .finals
            .iter()
            .filter(|f| f.reason.as_deref() == Some("exit code 0"))
            .collect();
        assert!(passes.len() > 5);
        for f in &passes {
            assert!(Arc::ptr_eq(
                f.reason.as_ref().expect("reason"),
                passes[0].reason.as_ref().expect("reason")
            ));
            assert_eq!(f.output, None, "a pass keeps no output path");
        }
        let on_40: Vec<&Final> = stats
            .finals
            .iter()
            .filter(|f| &*f.platform == "fedora-40")
            .collect();
        assert!(
            on_40
                .iter()
                .all(|f| Arc::ptr_eq(&f.platform, &on_40[0].platform))
        );
        // Platforms, "exit code 0..4", the timeout, the warn reason, the
        // notes: a handful of strings for 61 tests.
        assert!(stats.strings.len() < 40, "{}", stats.strings.len());
    }
}
