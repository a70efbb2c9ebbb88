//! The terminal display of a run, as an [`EventSink`].
//!
//! On a terminal (stderr), finished tests scroll by with their coloured
//! status while a few lines at the bottom are redrawn in place: a header
//! with the counters and the ETA, and the tests running now with their
//! elapsed time and system. Elsewhere (a pipe, a CI log), every test gets a
//! start line and a finish line, a heartbeat line says what runs every
//! [`DisplayOptions::heartbeat`], and no escape sequence is written unless
//! colours are asked for (`--color always`).
//!
//! What is shown is set by [`DisplayOptions`]: the [`StatusLevel`] (which
//! finished tests get a line), `quiet` (failures only, nothing redrawn),
//! and the [`ColorChoice`]. The end-of-run summary is not drawn here: it is
//! [`crate::results::RunStats::render`].

use std::{
    io::{IsTerminal, Write},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::events::{Counts, EventSink, RunEvent};
use crate::{Status, backend::BackendError};

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Redrawn lines on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// Nothing (library use, tests).
    Quiet,
}

/// When to colour the output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless the `NO_COLOR` environment variable is set
    /// (to anything but an empty string).
    #[default]
    Auto,
    /// Always, also into a file or a pipe.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether output to a stream that is (or is not) a `terminal` gets
    /// colours.
    pub fn enabled(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }

    /// Whether stderr gets colours.
    pub fn stderr(self) -> bool {
        self.enabled(std::io::stderr().is_terminal())
    }
}

impl std::str::FromStr for ColorChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ColorChoice::Auto),
            "always" => Ok(ColorChoice::Always),
            "never" => Ok(ColorChoice::Never),
            _ => Err(format!("`{s}`: expected auto, always or never")),
        }
    }
}

/// Which finished tests get a line of their own (`--status-level`); each
/// level shows what the ones before it show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum StatusLevel {
    /// None (the counters and the summary still say everything).
    None,
    /// Failures: `warn`, `fail`, `error`, `infra` and unknown statuses,
    /// as they land.
    Fail,
    /// Also attempts that failed and run again.
    Retry,
    /// Every finished test.
    Pass,
    /// Also a line when each test starts (when not on a terminal, where
    /// the running tests are not drawn).
    #[default]
    All,
}

impl std::str::FromStr for StatusLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(StatusLevel::None),
            "fail" => Ok(StatusLevel::Fail),
            "retry" => Ok(StatusLevel::Retry),
            "pass" => Ok(StatusLevel::Pass),
            "all" => Ok(StatusLevel::All),
            _ => Err(format!("`{s}`: expected none, fail, retry, pass or all")),
        }
    }
}

/// What the display shows besides its [`ProgressMode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayOptions {
    /// Colours.
    pub color: ColorChoice,
    /// Which finished tests get a line.
    pub status_level: StatusLevel,
    /// `-q`: failures only (at most [`StatusLevel::Fail`]), no redrawn
    /// lines, no heartbeat; warnings and errors are still shown.
    pub quiet: bool,
    /// Without a terminal, a line saying what runs this often
    /// (`Duration::ZERO`: never).
    pub heartbeat: Duration,
}

impl Default for DisplayOptions {
    fn default() -> Self {
        DisplayOptions {
            color: ColorChoice::Auto,
            status_level: StatusLevel::All,
            quiet: false,
            heartbeat: Duration::from_secs(30),
        }
    }
}

/// Running tests drawn at most, on a terminal.
const MAX_RUNNING_LINES: usize = 8;
/// Redraws at most this often for counter updates alone.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// A test running now.
struct Running {
    label: String,
    test: String,
    platform: String,
    system: String,
    attempt: u32,
    since: Instant,
}

/// A piece of a line and its colour (an SGR code).
type Piece = (String, Option<&'static str>);

/// The live block on stderr as last drawn (`None`: none is drawn), shared
/// with [`StderrLog`] so that log lines go above it, not through it.
static STDERR_BLOCK: Mutex<Option<String>> = Mutex::new(None);

/// A writer for log lines on stderr (e.g. for `tracing_subscriber`'s
/// `with_writer(StderrLog::default)`) that keeps a live display intact:
/// the redrawn lines are erased, the log line written, and they are drawn
/// again below it.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrLog;

impl Write for StderrLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let block = STDERR_BLOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let mut err = std::io::stderr().lock();
        match &*block {
            Some(b) => {
                let n = b.matches('\n').count();
                write!(err, "\r\x1b[{n}A\x1b[J")?;
                err.write_all(buf)?;
                err.write_all(b.as_bytes())?;
            }
            None => err.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Shows a run on stderr (or any writer).
pub struct TerminalDisplay {
    out: Box<dyn Write + Send>,
    /// `out` is stderr: the live block is shared with [`StderrLog`].
    on_stderr: bool,
    /// The live block as last drawn.
    last_block: String,
    /// Lines at the bottom are redrawn in place.
    live: bool,
    /// Anything is shown at all.
    enabled: bool,
    color: bool,
    level: StatusLevel,
    /// Start lines and heartbeats, when not live.
    heartbeat: Duration,
    start_lines: bool,
    /// Lines of the live block on screen now.
    drawn: usize,
    last_draw: Option<Instant>,
    last_heartbeat: Instant,
    run_start: Instant,
    total: u64,
    done: u64,
    counts: Counts,
    running: Vec<Running>,
    /// More than one platform: names carry theirs.
    matrix: bool,
}

impl TerminalDisplay {
    /// A display in `mode` with the other options at their defaults; the
    /// total comes with [`RunEvent::RunStarted`].
    pub fn new(mode: ProgressMode) -> Self {
        Self::with_options(mode, DisplayOptions::default())
    }

    /// A display on stderr.
    pub fn with_options(mode: ProgressMode, options: DisplayOptions) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let mut d = Self::to_writer(mode, options, Box::new(std::io::stderr()), terminal);
        d.on_stderr = true;
        d
    }

    /// A display writing to `out`, which is a terminal or not.
    pub fn to_writer(
        mode: ProgressMode,
        options: DisplayOptions,
        out: Box<dyn Write + Send>,
        terminal: bool,
    ) -> Self {
        let enabled = mode != ProgressMode::Quiet;
        let live = enabled && terminal && mode == ProgressMode::Auto && !options.quiet;
        let level = if options.quiet {
            options.status_level.min(StatusLevel::Fail)
        } else {
            options.status_level
        };
        let now = Instant::now();
        TerminalDisplay {
            out,
            on_stderr: false,
            last_block: String::new(),
            live,
            enabled,
            color: options.color.enabled(terminal),
            level,
            heartbeat: if options.quiet || live {
                Duration::ZERO
            } else {
                options.heartbeat
            },
            start_lines: !live && level >= StatusLevel::All,
            drawn: 0,
            last_draw: None,
            last_heartbeat: now,
            run_start: now,
            total: 0,
            done: 0,
            counts: Counts::default(),
            running: Vec::new(),
            matrix: false,
        }
    }

    /// Prints a line of pieces above the live block.
    fn print(&mut self, pieces: &[Piece]) {
        if !self.enabled {
            return;
        }
        let mut text = self.clear_block();
        text.push_str(&self.paint(pieces, None));
        text.push('\n');
        if self.live {
            text.push_str(&self.block());
        }
        self.write(&text);
    }

    /// A plain line.
    fn line(&mut self, msg: &str) {
        self.print(&[(one_line(msg), None)]);
    }

    /// A line starting with a coloured word (`error:`, `warning:`).
    fn tagged(&mut self, tag: &str, code: &'static str, msg: &str) {
        self.print(&[
            (tag.to_string(), Some(code)),
            (format!(" {}", one_line(msg)), None),
        ]);
    }

    fn write(&mut self, text: &str) {
        if !self.on_stderr {
            let _ = self.out.write_all(text.as_bytes());
            let _ = self.out.flush();
            return;
        }
        // Under the lock, so that no log line comes between.
        let mut shared = STDERR_BLOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
        *shared = (self.drawn > 0).then(|| self.last_block.clone());
    }

    /// The escape sequence that erases the live block, when one is drawn.
    fn clear_block(&mut self) -> String {
        let n = std::mem::take(&mut self.drawn);
        if n == 0 {
            String::new()
        } else {
            format!("\r\x1b[{n}A\x1b[J")
        }
    }

    /// Redraws the live block (at most every [`REDRAW_EVERY`] unless
    /// `force`).
    fn redraw(&mut self, force: bool) {
        if !self.live {
            return;
        }
        if !force && self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
            return;
        }
        let mut text = self.clear_block();
        text.push_str(&self.block());
        self.write(&text);
    }

    /// The live block: the header and the running tests; sets `drawn`.
    fn block(&mut self) -> String {
        let (width, rows) = terminal_size();
        let mut lines = vec![self.header()];
        let room = MAX_RUNNING_LINES.min(rows.saturating_sub(3).max(1));
        let mut running: Vec<&Running> = self.running.iter().collect();
        running.sort_by_key(|r| r.since);
        let shown = if running.len() > room {
            room.saturating_sub(1)
        } else {
            running.len()
        };
        for r in &running[..shown] {
            let attempt = if r.attempt > 1 {
                format!(" (attempt {})", r.attempt)
            } else {
                String::new()
            };
            lines.push(vec![
                (format!("{:>8} ", fmt_secs(r.since.elapsed())), Some(DIM)),
                (format!("{}{attempt}", r.label), None),
                (format!(" on {}", r.system), Some(DIM)),
            ]);
        }
        if running.len() > shown {
            lines.push(vec![(
                format!("{:>8} and {} more", "", running.len() - shown),
                Some(DIM),
            )]);
        }
        let mut text = String::new();
        for l in &lines {
            text.push_str(&self.paint(l, Some(width.saturating_sub(1).max(10))));
            text.push('\n');
        }
        self.drawn = lines.len();
        self.last_draw = Some(Instant::now());
        self.last_block.clone_from(&text);
        text
    }

    /// `RUNNING [ 1m05s] [===>      ] 3/10 · ETA 20s · 2 running · 2 pass ...`
    fn header(&self) -> Vec<Piece> {
        let c = &self.counts;
        let bar_w = 12usize;
        let filled = if self.total == 0 {
            0
        } else {
            (c.done.min(self.total) as usize * bar_w) / self.total as usize
        };
        let bar = format!(
            "[{}{}{}]",
            "=".repeat(filled),
            if filled < bar_w { ">" } else { "" },
            " ".repeat(bar_w.saturating_sub(filled + 1))
        );
        let mut p: Vec<Piece> = vec![
            ("RUNNING".into(), Some(CYAN)),
            (
                format!(
                    " [{:>6}] {bar} {}/{}",
                    fmt_secs(self.run_start.elapsed()),
                    c.done,
                    self.total
                ),
                None,
            ),
        ];
        if let Some(eta) = c.eta {
            p.push((format!(" · ETA {}", fmt_secs(eta)), None));
        }
        p.extend(count_pieces(c));
        p
    }

    /// The pieces as text, colours when enabled, cut to `width` visible
    /// characters.
    fn paint(&self, pieces: &[Piece], width: Option<usize>) -> String {
        let mut left = width.unwrap_or(usize::MAX);
        let mut s = String::new();
        for (text, code) in pieces {
            if left == 0 {
                break;
            }
            let n = text.chars().count();
            let part: String = if n > left {
                text.chars().take(left).collect()
            } else {
                text.clone()
            };
            left -= part.chars().count();
            match code {
                Some(code) if self.color => {
                    s.push_str(&format!("\x1b[{code}m{part}\x1b[0m"));
                }
                _ => s.push_str(&part),
            }
        }
        s
    }

    /// The test's name, with its platform in a matrix run.
    fn label(&self, test: &str, platform: &str) -> String {
        if self.matrix {
            format!("{} [{}]", one_line(test), one_line(platform))
        } else {
            one_line(test)
        }
    }

    fn started(&mut self, test: &str, platform: &str, system: &str, attempt: u32) {
        let label = self.label(test, platform);
        if self.start_lines {
            let attempt_note = if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            self.print(&[
                (format!("{:>6}", "START"), Some(CYAN)),
                (
                    format!(" {:>9} {label} on {}{attempt_note}", "", one_line(system)),
                    None,
                ),
            ]);
        }
        self.running.push(Running {
            label,
            test: test.to_string(),
            platform: platform.to_string(),
            system: system.to_string(),
            attempt,
            since: Instant::now(),
        });
        self.redraw(true);
    }

    /// Forgets the running entry of `test` on `platform` (or on `system`).
    fn stopped(&mut self, test: &str, platform: Option<&str>, system: Option<&str>) {
        if let Some(i) = self.running.iter().position(|r| {
            r.test == test
                && platform.is_none_or(|p| p == r.platform)
                && system.is_none_or(|s| s == r.system)
        }) {
            self.running.remove(i);
        }
    }

    fn finished(
        &mut self,
        status: &Status,
        test: &str,
        took: Option<Duration>,
        system: &str,
        note: &str,
    ) {
        self.done += 1;
        let show = if status.is_failure() {
            self.level >= StatusLevel::Fail
        } else {
            self.level >= StatusLevel::Pass
        };
        if !show {
            self.redraw(true);
            return;
        }
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({})", one_line(note))
        };
        let took = took.map_or_else(
            || format!("{:>8}", "-"),
            |d| format!("{:>7.1}s", d.as_secs_f64()),
        );
        let on = if system.is_empty() || system == "-" {
            String::new()
        } else {
            format!(" on {}", one_line(system))
        };
        self.print(&[
            (
                format!("{:>6}", status.as_str().to_uppercase()),
                Some(status_color(status)),
            ),
            (
                format!(" [{took}] {}/{} {test}{on}{note}", self.done, self.total),
                None,
            ),
        ]);
    }

    fn rerun(&mut self, status: &Status, test: &str, attempt: u32, note: &str) {
        if self.level < StatusLevel::Retry {
            self.redraw(true);
            return;
        }
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({})", one_line(note))
        };
        self.print(&[
            (format!("{:>6}", "RETRY"), Some(YELLOW)),
            (format!(" {:>9} {test}: attempt {attempt} ", ""), None),
            (status.as_str().to_string(), Some(status_color(status))),
            (format!("{note}, runs again on a fresh system"), None),
        ]);
    }

    /// Without a terminal: a line saying what runs, every `heartbeat`.
    fn maybe_heartbeat(&mut self) {
        if self.heartbeat.is_zero() || self.last_heartbeat.elapsed() < self.heartbeat {
            return;
        }
        self.last_heartbeat = Instant::now();
        let c = self.counts;
        let mut p: Vec<Piece> = vec![
            ("RUNNING".into(), Some(CYAN)),
            (
                format!(
                    " [{:>6}] {}/{} done",
                    fmt_secs(self.run_start.elapsed()),
                    c.done,
                    self.total
                ),
                None,
            ),
        ];
        p.extend(count_pieces(&c));
        if let Some(eta) = c.eta {
            p.push((format!(" · ETA {}", fmt_secs(eta)), None));
        }
        if !self.running.is_empty() {
            let mut running: Vec<&Running> = self.running.iter().collect();
            running.sort_by_key(|r| r.since);
            let list: Vec<String> = running
                .iter()
                .map(|r| {
                    format!(
                        "{} ({} on {})",
                        r.label,
                        fmt_secs(r.since.elapsed()),
                        r.system
                    )
                })
                .collect();
            p.push((format!(": {}", list.join(", ")), None));
        }
        self.print(&p);
    }
}

/// `· 2 running · 5 queued · 2 pass · 1 fail · 1 skip · 1 infra · 3 not run`
/// (pass always, the others when not zero).
fn count_pieces(c: &Counts) -> Vec<Piece> {
    let mut p: Vec<Piece> = Vec::new();
    for (n, word, code) in [
        (c.running, "running", CYAN),
        (c.queued, "queued", DIM),
        (c.passed, "pass", GREEN),
        (c.failed, "fail", RED),
        (c.skipped, "skip", YELLOW),
        (c.infra, "infra", MAGENTA),
        (c.not_run, "not run", DIM),
    ] {
        if n > 0 || word == "pass" {
            p.push((" · ".into(), None));
            p.push((format!("{n} {word}"), Some(code)));
        }
    }
    p
}

const GREEN: &str = "32";
const RED: &str = "1;31";
const YELLOW: &str = "33";
const MAGENTA: &str = "35";
const CYAN: &str = "1;36";
const DIM: &str = "2";

/// The colour of a status word.
fn status_color(status: &Status) -> &'static str {
    match status {
        Status::Pass => GREEN,
        Status::Info => "36",
        Status::Skip => YELLOW,
        Status::Warn => "1;33",
        Status::Infra => MAGENTA,
        Status::Error => "1;35",
        _ => RED,
    }
}

/// Text on one line: escape sequences are removed, line breaks, tabs and
/// other control characters become spaces, so nothing a test says can
/// move the cursor.
fn one_line(s: &str) -> String {
    crate::results::sanitize_line(s)
}

/// Columns and rows of the terminal on stderr (80×24 when unknown).
fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills a winsize on success and reads nothing else.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (ws.ws_col as usize, ws.ws_row as usize)
    } else {
        (80, 24)
    }
}

impl EventSink for TerminalDisplay {
    fn name(&self) -> String {
        "terminal display".into()
    }

    fn on_event(&mut self, event: &RunEvent) -> Result<(), BackendError> {
        match event {
            RunEvent::RunStarted {
                run_id,
                results_dir,
                tests,
                platforms,
            } => {
                self.total = *tests as u64;
                self.matrix = platforms.len() > 1;
                self.run_start = Instant::now();
                self.last_heartbeat = self.run_start;
                // The run id labels what the run allocates: the cleanup of
                // a run killed with SIGKILL needs it.
                self.line(&format!(
                    "atex: run {run_id}: {tests} tests, results in {}",
                    results_dir.display()
                ));
            }
            RunEvent::ProvisionerFailedToStart { provisioner, error } => {
                self.tagged(
                    "error:",
                    RED,
                    &format!("provisioner {provisioner} failed to start: {error}"),
                );
            }
            RunEvent::ProvisionerError { error, .. } => self.tagged("warning:", YELLOW, error),
            RunEvent::ProvisionerDropped { reason, .. } => self.tagged("error:", RED, reason),
            RunEvent::ProvisionerStopFailed { provisioner, error } => {
                self.tagged(
                    "warning:",
                    YELLOW,
                    &format!("stopping provisioner {provisioner}: {error}"),
                );
            }
            RunEvent::SystemSetupFailed { error, .. } => self.tagged("warning:", YELLOW, error),
            RunEvent::SystemLost { system, test } => {
                self.tagged("warning:", YELLOW, &format!("{system} was lost during {test}"));
            }
            RunEvent::SystemBroke {
                system,
                test,
                error,
            } => {
                self.stopped(test, None, Some(system));
                self.tagged(
                    "warning:",
                    YELLOW,
                    &format!("{system} broke during {test}: {error}"),
                );
            }
            RunEvent::SystemReleaseFailed { system, error } => {
                self.tagged("warning:", YELLOW, &format!("releasing {system}: {error}"));
            }
            RunEvent::TestStarted {
                test,
                platform,
                system,
                attempt,
            } => self.started(test, platform, system, *attempt),
            RunEvent::TestRerun {
                test,
                platform,
                attempt,
                status,
                note,
                reason,
                ..
            } => {
                self.stopped(test, Some(platform), None);
                let label = self.label(test, platform);
                let why = shown_why(note.as_deref(), reason.as_deref()).unwrap_or_default();
                self.rerun(status, &label, *attempt, &why);
            }
            RunEvent::TestFinished {
                test,
                platform,
                system,
                status,
                note,
                reason,
                duration,
                ..
            } => {
                self.stopped(test, Some(platform), None);
                let why = if status.is_failure() {
                    shown_why(note.as_deref(), reason.as_deref())
                } else {
                    note.as_deref().map(safe)
                };
                let label = self.label(test, platform);
                self.finished(
                    status,
                    &label,
                    Some(*duration),
                    system,
                    &why.unwrap_or_default(),
                );
            }
            RunEvent::TestNotRun {
                test,
                platform,
                status,
                note,
            } => {
                let label = self.label(test, platform);
                self.finished(status, &label, None, "-", note);
            }
            RunEvent::ResultsLost { test, error } => {
                self.tagged("error:", RED, &format!("results of {test} are lost: {error}"));
            }
            RunEvent::Progress { counts } => {
                // New counts are drawn at once, a new ETA alone at most
                // every REDRAW_EVERY.
                let moved = Counts {
                    eta: None,
                    ..*counts
                } != Counts {
                    eta: None,
                    ..self.counts
                };
                self.counts = *counts;
                self.redraw(moved);
                // Counters come after the events that changed them.
                self.maybe_heartbeat();
            }
            RunEvent::Interrupted { signal } => self.line(&format!(
                "atex: {} received: cancelling running tests and releasing every system (again to exit at once)",
                signal_name(*signal)
            )),
            RunEvent::ForcedExit { signal } => self.line(&format!(
                "atex: second signal ({signal}): releasing what can be released and exiting"
            )),
            RunEvent::RunFinished { .. } => {
                let clear = self.clear_block();
                self.live = false;
                self.write(&clear);
            }
            _ => {}
        }
        Ok(())
    }
}

impl Drop for TerminalDisplay {
    fn drop(&mut self) {
        if self.on_stderr {
            *STDERR_BLOCK.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }
}

/// Text a test controls (names, notes, statuses) as one safe line: no
/// escape sequences or control characters, a multi-line note cut to its
/// first line and `…`.
fn safe(text: &str) -> String {
    crate::results::sanitize_line(&crate::results::first_line(text))
}

/// What a failure line says after the test: why it ended (`exit code 3`,
/// `timed out after 5m`), with the note when the test reported its result.
fn shown_why(note: Option<&str>, reason: Option<&str>) -> Option<String> {
    crate::results::why_failed(note, reason)
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "signal",
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn finished(test: &str, status: Status, note: Option<&str>) -> RunEvent {
        RunEvent::TestFinished {
            test: test.into(),
            platform: "p".into(),
            system: "sys-1".into(),
            attempt: 1,
            status,
            note: note.map(str::to_string),
            reason: None,
            duration: Duration::from_millis(1500),
        }
    }

    fn shown(options: DisplayOptions, terminal: bool, events: &[RunEvent]) -> String {
        let buf = Shared::default();
        let mut d = TerminalDisplay::to_writer(
            ProgressMode::Auto,
            options,
            Box::new(buf.clone()),
            terminal,
        );
        for e in events {
            d.on_event(e).expect("event");
        }
        let bytes = buf.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf8")
    }

    #[test]
    fn notes_from_tests_cannot_move_the_cursor_or_break_lines() {
        let out = shown(
            DisplayOptions::default(),
            false,
            &[finished(
                "/t\x1b[2J",
                Status::Fail,
                Some("line one\nline two\x1b[1A\r"),
            )],
        );
        assert!(!out.contains('\x1b'), "{out:?}");
        assert_eq!(out.lines().count(), 1, "{out:?}");
        // Escape sequences are removed, a note shows its first line.
        assert!(
            out.contains("FAIL [    1.5s] 1/0 /t on sys-1 (line one …)"),
            "{out:?}"
        );
    }

    #[test]
    fn status_levels_and_quiet_pick_the_lines() {
        let events = [
            RunEvent::TestStarted {
                test: "/a".into(),
                platform: "p".into(),
                system: "sys-1".into(),
                attempt: 1,
            },
            finished("/a", Status::Pass, None),
            RunEvent::TestRerun {
                test: "/b".into(),
                platform: "p".into(),
                attempt: 1,
                status: Status::Fail,
                note: None,
                reason: Some("exit code 1".into()),
            },
            finished("/b", Status::Infra, None),
            finished("/c", Status::Skip, None),
        ];
        let all = shown(DisplayOptions::default(), false, &events);
        for word in ["START", "PASS", "RETRY", "INFRA", "SKIP"] {
            assert!(all.contains(word), "{word} missing:\n{all}");
        }
        let level = |status_level| DisplayOptions {
            status_level,
            ..DisplayOptions::default()
        };
        let fail = shown(level(StatusLevel::Fail), false, &events);
        assert!(fail.contains("INFRA") && !fail.contains("RETRY"), "{fail}");
        assert!(!fail.contains("PASS") && !fail.contains("SKIP") && !fail.contains("START"));
        let retry = shown(level(StatusLevel::Retry), false, &events);
        assert!(
            retry.contains("RETRY") && !retry.contains("PASS"),
            "{retry}"
        );
        let quiet = DisplayOptions {
            quiet: true,
            ..DisplayOptions::default()
        };
        // Quiet on a terminal: no redrawn block, failures only.
        let q = shown(quiet, true, &events);
        assert!(!q.contains("RUNNING") && !q.contains("\x1b[J"), "{q:?}");
        assert!(q.contains("INFRA") && !q.contains("PASS"), "{q:?}");
    }

    #[test]
    fn colours_follow_the_choice() {
        let ev = [finished("/a", Status::Pass, None)];
        let with = |color, terminal| {
            shown(
                DisplayOptions {
                    color,
                    ..DisplayOptions::default()
                },
                terminal,
                &ev,
            )
        };
        assert!(with(ColorChoice::Always, false).contains("\x1b[32m  PASS\x1b[0m"));
        assert!(!with(ColorChoice::Never, true).contains("\x1b[32m"));
        assert!(!with(ColorChoice::Auto, false).contains('\x1b'));
    }
}
