//! The `junit` reporter: one JUnit XML file that CI systems read.
//!
//! The file validates against Jenkins' `junit-10.xsd` (the xUnit plugin's
//! schema) and is laid out for how Jenkins and GitLab group tests:
//!
//! ```text
//! <testsuites name="atex" tests failures errors time>
//!   <testsuite name="PLATFORM" tests failures errors skipped time timestamp>
//!     <properties> platform, run_id, not_run </properties>
//!     <testcase classname="tests.login" name="basic"> /tests/login/basic
//!       <failure type="fail" message="exit code 3"> output tail </failure>
//!     <testcase classname="tests.suite.multi" name="check-a"> a sub-result
//!   </testsuite>
//! </testsuites>
//! ```
//!
//! - One `testsuite` per platform. `classname` is the test's path without
//!   its last component, dotted (`/tests/login/basic` is `tests.login`, so
//!   Jenkins shows package `tests`, class `login`), and `name` is that last
//!   component; a sub-result's `classname` is its test's whole path and its
//!   `name` the sub-result's. Dots inside a component become `_`.
//! - Statuses: `pass` and `info` pass; `skip` is `<skipped>`; `fail` is
//!   `<failure>`; `error`, `infra`, `warn` and custom statuses are
//!   `<error>` (tmt's choice for `warn`). The `status_map` option changes
//!   this per status. `type` is always the atex status.
//! - `message` says why the test ended: the result's `reason` (`exit code
//!   3`, `timed out after 5m`), else the first line of its note. The body
//!   of a failure or error is the rest of the note, failing sub-results and
//!   the tail of the output, with a line naming the full file.
//! - Tests that never ran (an interrupt, `--max-fail`) are
//!   `<skipped message="not run: ...">` and counted as skipped.
//! - Reruns: the last attempt is the testcase. Each earlier attempt becomes
//!   a `flakyFailure`/`flakyError` (the test passed in the end) or a
//!   `rerunFailure`/`rerunError` (it did not), which Jenkins shows.
//! - Output: the tail of the result's log (`output.txt`, else the first
//!   `.log`/`.txt` file), at most `max_output_bytes`: in the failure body,
//!   or in `system-out` for other testcases.
//! - Characters XML 1.0 forbids, and ANSI escape sequences, are removed;
//!   text is escaped, never put in CDATA, so `]]>` is harmless.
//! - Streaming: each test's testcases are written to a temporary file per
//!   platform (in the report's directory) as its final result lands; only
//!   tests still waiting for their final attempt are held in memory. At
//!   finish the file is assembled from them and renamed into place
//!   atomically.
//!
//! Options (all optional):
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `output` | `<results dir>/junit.xml` | where to write; relative to the current directory |
//! | `max_output_bytes` | `65536` | bytes of log tail per testcase (`0`: no output) |
//! | `include_output` | `all` | `all`, `failures` (failure/error testcases only) or `none` |
//! | `name` | `atex` | the `name` of `<testsuites>` |
//! | `status_map` | see above | e.g. `{info: skipped, warn: failure}`; values `pass`, `failure`, `error`, `skipped` |

#![deny(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    fs::File,
    io::{self, BufWriter, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use atex_plugin_api::{
    PluginError, Status,
    report::{
        self, Tail, clean, iso_utc, seconds, truncate_chars, xml_attr as attr, xml_text as text,
    },
    sdk::{PluginContext, ReporterImpl, ResultView, SummaryView},
};
use serde::Deserialize;

/// Name the plugin is exported as.
pub const PLUGIN_NAME: &str = "junit";

/// Options of the `junit` reporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to write the file; default `<work dir>/junit.xml`.
    pub output: Option<PathBuf>,
    /// Most bytes of log tail per testcase; `0` leaves output out.
    pub max_output_bytes: u64,
    /// Which testcases get their output.
    pub include_output: IncludeOutput,
    /// The name of the `<testsuites>` element.
    pub name: String,
    /// Overrides of how statuses map to JUnit outcomes.
    pub status_map: BTreeMap<String, Outcome>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            output: None,
            max_output_bytes: 64 * 1024,
            include_output: IncludeOutput::All,
            name: "atex".to_string(),
            status_map: BTreeMap::new(),
        }
    }
}

impl Config {
    fn outcome(&self, status: &Status) -> Outcome {
        if let Some(o) = self.status_map.get(status.as_str()) {
            return *o;
        }
        match status {
            Status::Pass | Status::Info => Outcome::Pass,
            Status::Skip => Outcome::Skipped,
            Status::Fail => Outcome::Failure,
            // tmt's choice: warn is an error, like infra and unknown words.
            Status::Warn | Status::Error | Status::Infra | Status::Other(_) => Outcome::Error,
        }
    }

    fn wants_output(&self, o: Outcome) -> bool {
        self.max_output_bytes > 0
            && match self.include_output {
                IncludeOutput::All => true,
                IncludeOutput::Failures => matches!(o, Outcome::Failure | Outcome::Error),
                IncludeOutput::None => false,
            }
    }
}

/// Which testcases carry a `system-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncludeOutput {
    /// Every testcase with a log.
    All,
    /// Only failures and errors.
    Failures,
    /// None.
    None,
}

/// A JUnit outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A plain testcase.
    Pass,
    /// `<failure>`.
    Failure,
    /// `<error>`.
    Error,
    /// `<skipped>`.
    Skipped,
}

/// The reporter.
pub struct JunitReporter {
    config: Config,
    path: PathBuf,
    report_dir: PathBuf,
    /// One suite per platform, in the order platforms first reported.
    suites: Vec<Suite>,
    suite_of: HashMap<String, usize>,
    /// Tests whose final result has not landed yet.
    pending: HashMap<(String, String), Pending>,
}

/// The constructor the plugin exports.
pub fn new(ctx: PluginContext) -> Result<JunitReporter, PluginError> {
    let config: Config = report::parse_options(&ctx)?;
    JunitReporter::with_config(config, ctx.work_dir()).map_err(PluginError::from)
}

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new(
            "output",
            "path",
            "<results dir>/junit.xml",
            "Where to write; relative to the current directory.",
        ),
        OptionSpec::new(
            "max_output_bytes",
            "integer",
            "65536",
            "Bytes of log tail per testcase (0: no output).",
        ),
        OptionSpec::new(
            "include_output",
            "all|failures|none",
            "all",
            "All, failures (failure/error testcases only) or none.",
        ),
        OptionSpec::new("name", "string", "atex", "The name of <testsuites>."),
        OptionSpec::new(
            "status_map",
            "mapping",
            "pass, info: pass; skip: skipped; fail: failure; others: error",
            "E.g. {info: skipped, warn: failure}; values pass, failure, error, skipped.",
        ),
    ]
};

atex_plugin_api::export_plugin! {
    name: PLUGIN_NAME,
    version: env!("CARGO_PKG_VERSION"),
    description: "writes one JUnit XML file (Jenkins junit-10.xsd) for CI systems",
    reporter: new,
    options: OPTIONS,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tests: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        self.tests += 1;
        match o {
            Outcome::Pass => {}
            Outcome::Failure => self.failures += 1,
            Outcome::Error => self.errors += 1,
            Outcome::Skipped => self.skipped += 1,
        }
    }
    fn sum(&mut self, o: Counts) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }
}

/// The testcases of one platform, spooled to a temporary file.
struct Suite {
    platform: String,
    spool: Option<BufWriter<File>>,
    counts: Counts,
    time_ms: u64,
    first_start_ms: u64,
    not_run: u64,
}

/// A log tail read when its result landed, with the link to the full file.
type Log = (String, io::Result<Tail>);

struct Sub {
    name: String,
    status: Status,
    note: Option<String>,
    duration_ms: u64,
    log: Option<Log>,
}

struct Att {
    number: u32,
    /// `None` when only sub-results came.
    status: Option<Status>,
    note: Option<String>,
    reason: Option<String>,
    not_run: bool,
    remote: String,
    started_ms: u64,
    duration_ms: u64,
    subs: Vec<Sub>,
    log: Option<Log>,
}

impl Att {
    fn effective_status(&self) -> Status {
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

#[derive(Default)]
struct Pending {
    /// Sub-results of the attempt in progress.
    subs: Vec<Sub>,
    /// Attempts whose test-level result landed, in order.
    attempts: Vec<Att>,
}

fn cleaned(s: Option<&str>) -> Option<String> {
    s.map(|n| truncate_chars(&clean(n), report::MAX_NOTE_BYTES).into_owned())
}

impl JunitReporter {
    /// A reporter writing to `config.output`, else `work_dir/junit.xml`.
    /// Fails when that path cannot be written.
    pub fn with_config(config: Config, work_dir: &Path) -> Result<Self, report::Error> {
        let path = report::output_path(config.output.as_deref(), work_dir, "junit.xml");
        report::check_writable(&path)?;
        let report_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(JunitReporter {
            config,
            path,
            report_dir,
            suites: Vec::new(),
            suite_of: HashMap::new(),
            pending: HashMap::new(),
        })
    }

    /// Where the file goes.
    pub fn output(&self) -> &Path {
        &self.path
    }

    /// A result file's path relative to the report.
    fn link(&self, results_dir: &Path, file: &str) -> String {
        report::relative_path(&self.report_dir, &results_dir.join(file))
            .to_string_lossy()
            .into_owned()
    }

    fn read_log(&self, results_dir: &Path, files: &[String], wanted: bool) -> Option<Log> {
        if !wanted {
            return None;
        }
        let log = report::pick_log(files)?;
        Some((
            self.link(results_dir, log),
            report::read_tail(&results_dir.join(log), self.config.max_output_bytes),
        ))
    }

    fn add(&mut self, r: &ResultView) -> io::Result<()> {
        let status = Status::parse(&clean(r.status.as_str()));
        let key = (r.platform.clone(), r.test.clone());
        if let Some(sub) = &r.subtest {
            let log = self.read_log(
                &r.results_dir,
                &r.files,
                self.config.wants_output(self.config.outcome(&status)),
            );
            self.pending.entry(key).or_default().subs.push(Sub {
                name: clean(sub).into_owned(),
                status,
                note: cleaned(r.note.as_deref()),
                duration_ms: r.duration_ms,
                log,
            });
            return Ok(());
        }
        // An earlier attempt's log is read now: the rerun may overwrite it.
        let outcome = if r.final_attempt {
            self.config.outcome(&status)
        } else {
            Outcome::Failure
        };
        let log = self.read_log(&r.results_dir, &r.files, self.config.wants_output(outcome));
        let pending = self.pending.entry(key.clone()).or_default();
        let att = Att {
            number: r.attempt,
            status: Some(status),
            note: cleaned(r.note.as_deref()),
            reason: r.reason().map(|s| clean(&s).into_owned()),
            not_run: r.not_run(),
            remote: clean(&r.remote).into_owned(),
            started_ms: r.started_unix_ms,
            duration_ms: r.duration_ms,
            subs: std::mem::take(&mut pending.subs),
            log,
        };
        pending.attempts.push(att);
        if r.final_attempt
            && let Some(p) = self.pending.remove(&key)
        {
            self.emit(&key.0, &key.1, p.attempts)?;
        }
        Ok(())
    }

    /// Writes the testcases of one test (its last attempt, with the
    /// earlier ones as rerun elements) to its platform's spool.
    fn emit(&mut self, platform: &str, test: &str, mut attempts: Vec<Att>) -> io::Result<()> {
        let Some(last) = attempts.pop() else {
            return Ok(());
        };
        let mut out = String::new();
        let mut counts = Counts::default();
        let (dur, start, not_run) = self.write_cases(&mut out, &mut counts, test, last, attempts);
        let idx = match self.suite_of.get(platform) {
            Some(&i) => i,
            None => {
                self.suites.push(Suite {
                    platform: platform.to_string(),
                    spool: None,
                    counts: Counts::default(),
                    time_ms: 0,
                    first_start_ms: u64::MAX,
                    not_run: 0,
                });
                self.suite_of
                    .insert(platform.to_string(), self.suites.len() - 1);
                self.suites.len() - 1
            }
        };
        let dir = self.report_dir.clone();
        let suite = &mut self.suites[idx];
        suite.counts.sum(counts);
        suite.time_ms += dur;
        if not_run {
            suite.not_run += 1;
        } else {
            suite.first_start_ms = suite.first_start_ms.min(start);
        }
        let spool = match &mut suite.spool {
            Some(s) => s,
            None => {
                std::fs::create_dir_all(&dir)?;
                suite
                    .spool
                    .insert(BufWriter::new(tempfile::tempfile_in(&dir)?))
            }
        };
        spool.write_all(out.as_bytes())
    }

    /// Writes the testcases; returns the test's duration, start and
    /// whether it never ran.
    fn write_cases(
        &self,
        out: &mut String,
        counts: &mut Counts,
        test: &str,
        last: Att,
        earlier: Vec<Att>,
    ) -> (u64, u64, bool) {
        let status = last.effective_status();
        let outcome = self.config.outcome(&status);
        counts.add(outcome);
        let platform_stats = (last.duration_ms, last.started_ms, last.not_run);
        let (classname, name) = case_names(test);
        let flaky = !earlier.is_empty() && outcome == Outcome::Pass;
        let mut body = String::new();
        let message = message_for(&status, last.reason.as_deref(), last.note.as_deref());
        let wants = self.config.wants_output(outcome);
        let elem = match outcome {
            Outcome::Pass => None,
            Outcome::Failure => Some("failure"),
            Outcome::Error => Some("error"),
            Outcome::Skipped => Some("skipped"),
        };
        if let Some(elem) = elem {
            // The body: the note beyond the message, failing sub-results,
            // then (for failures and errors) the output tail.
            let mut b = String::new();
            if let Some(note) = &last.note
                && note.trim() != message
            {
                b.push_str(note);
                b.push('\n');
            }
            for sub in &last.subs {
                if matches!(
                    self.config.outcome(&sub.status),
                    Outcome::Failure | Outcome::Error
                ) {
                    let _ = write!(b, "sub-result {}: {}", sub.name, sub.status);
                    if let Some(n) = &sub.note {
                        let _ = write!(
                            b,
                            " ({})",
                            truncate_chars(n.lines().next().unwrap_or(""), 200)
                        );
                    }
                    b.push('\n');
                }
            }
            let _ = write!(
                body,
                "      <{elem} type=\"{}\" message=\"{}\"",
                attr(status.as_str()),
                attr(&message)
            );
            let tail_here = elem != "skipped" && wants && last.log.is_some();
            if b.is_empty() && !tail_here {
                body.push_str("/>\n");
            } else {
                body.push('>');
                body.push_str(&text(&b));
                if tail_here && let Some((link, tail)) = &last.log {
                    push_output(&mut body, link, tail);
                }
                let _ = writeln!(body, "</{elem}>");
            }
        }
        for a in &earlier {
            self.rerun_element(&mut body, a, flaky);
        }
        if matches!(outcome, Outcome::Pass | Outcome::Skipped) && !last.not_run {
            self.system_out(&mut body, outcome, &status, last.note.as_deref(), &last.log);
        }
        testcase(out, &name, &classname, last.duration_ms, &body);
        let sub_class = sub_classname(test);
        for s in &last.subs {
            let o = self.config.outcome(&s.status);
            counts.add(o);
            let mut body = String::new();
            let message = message_for(&s.status, None, s.note.as_deref());
            if let Some(elem) = match o {
                Outcome::Pass => None,
                Outcome::Failure => Some("failure"),
                Outcome::Error => Some("error"),
                Outcome::Skipped => Some("skipped"),
            } {
                let _ = writeln!(
                    body,
                    "      <{elem} type=\"{}\" message=\"{}\">{}</{elem}>",
                    attr(s.status.as_str()),
                    attr(&message),
                    text(s.note.as_deref().unwrap_or(&message))
                );
            }
            self.system_out(&mut body, o, &s.status, s.note.as_deref(), &s.log);
            testcase(out, &s.name, &sub_class, s.duration_ms, &body);
        }
        platform_stats
    }
}

impl JunitReporter {
    fn rerun_element(&self, out: &mut String, a: &Att, flaky: bool) {
        let status = &a.effective_status();
        let elem = match (self.config.outcome(status), flaky) {
            (Outcome::Failure, true) => "flakyFailure",
            (Outcome::Failure, false) => "rerunFailure",
            (Outcome::Error, true) => "flakyError",
            (Outcome::Error, false) => "rerunError",
            // An earlier attempt that passed or was skipped is not a rerun
            // failure.
            (Outcome::Pass | Outcome::Skipped, _) => return,
        };
        let message = message_for(status, a.reason.as_deref(), a.note.as_deref());
        let _ = write!(
            out,
            "      <{elem} type=\"{}\" message=\"{}\">",
            attr(status.as_str()),
            attr(&message)
        );
        let mut trace = format!(
            "attempt {} on {} at {} ({} s): {status}",
            a.number,
            if a.remote.is_empty() { "?" } else { &a.remote },
            iso_utc(a.started_ms),
            seconds(a.duration_ms)
        );
        if let Some(note) = &a.note {
            trace.push('\n');
            trace.push_str(note);
        }
        for s in &a.subs {
            let _ = write!(trace, "\nsub-result {}: {}", s.name, s.status);
        }
        let _ = write!(out, "<stackTrace>{}</stackTrace>", text(&trace));
        if let Some((link, tail)) = &a.log {
            out.push_str("<system-out>");
            push_output(out, link, tail);
            out.push_str("</system-out>");
        }
        let _ = writeln!(out, "</{elem}>");
    }

    /// The `system-out` of a passing or skipped testcase: for one with
    /// another status (`info`) or a note, a line saying so (a pass has no
    /// element to carry them), then the log tail.
    fn system_out(
        &self,
        out: &mut String,
        o: Outcome,
        status: &Status,
        note: Option<&str>,
        log: &Option<Log>,
    ) {
        if !matches!(o, Outcome::Pass | Outcome::Skipped) {
            // Failures and errors carry their tail in the element's body.
            if let Some((link, tail)) = log.as_ref().filter(|_| self.config.wants_output(o)) {
                out.push_str("      <system-out>");
                push_output(out, link, tail);
                out.push_str("</system-out>\n");
            }
            return;
        }
        let mut head = String::new();
        if o == Outcome::Pass && self.config.include_output != IncludeOutput::None {
            match (status, note) {
                (Status::Pass, None) => {}
                (s, None) => head = format!("[atex: status {s}]\n"),
                (s, Some(n)) => head = format!("[atex: status {s}: {n}]\n"),
            }
        }
        let log = log.as_ref().filter(|_| self.config.wants_output(o));
        if head.is_empty() && log.is_none() {
            return;
        }
        out.push_str("      <system-out>");
        out.push_str(&text(&head));
        if let Some((link, tail)) = log {
            push_output(out, link, tail);
        }
        out.push_str("</system-out>\n");
    }

    fn write_report(&mut self, summary: &SummaryView, w: &mut dyn Write) -> io::Result<()> {
        // Tests still pending never got a final result (only sub-results,
        // or a rerun cut short): their last attempt is what they are.
        let mut rest: Vec<((String, String), Pending)> = self.pending.drain().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for ((platform, test), mut p) in rest {
            if !p.subs.is_empty() {
                let number = p.attempts.last().map_or(1, |a| a.number + 1);
                p.attempts.push(Att {
                    number,
                    status: None,
                    note: None,
                    reason: None,
                    not_run: false,
                    remote: String::new(),
                    started_ms: 0,
                    duration_ms: 0,
                    subs: std::mem::take(&mut p.subs),
                    log: None,
                });
            }
            self.emit(&platform, &test, p.attempts)?;
        }
        let mut total = Counts::default();
        for s in &self.suites {
            total.sum(s.counts);
        }
        let interrupted = summary.interrupted;
        if interrupted {
            total.add(Outcome::Error);
        }
        writeln!(
            w,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
            attr(&self.config.name),
            total.tests,
            total.failures,
            total.errors,
            seconds(summary.duration_ms)
        )?;
        for suite in &mut self.suites {
            let start = if suite.first_start_ms == u64::MAX {
                summary.started_unix_ms
            } else {
                suite.first_start_ms
            };
            writeln!(
                w,
                "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\">\n    <properties>\n      <property name=\"platform\" value=\"{}\"/>\n      <property name=\"run_id\" value=\"{}\"/>\n      <property name=\"not_run\" value=\"{}\"/>\n    </properties>",
                attr(&suite.platform),
                suite.counts.tests,
                suite.counts.failures,
                suite.counts.errors,
                suite.counts.skipped,
                seconds(suite.time_ms),
                iso_utc(start),
                attr(&suite.platform),
                attr(&summary.run_id),
                suite.not_run,
            )?;
            if let Some(spool) = suite.spool.take() {
                let mut file = spool.into_inner().map_err(|e| e.into_error())?;
                file.seek(SeekFrom::Start(0))?;
                io::copy(&mut file, w)?;
            }
            w.write_all(b"  </testsuite>\n")?;
        }
        if interrupted {
            let reported: u64 = self.suites.iter().map(|s| s.counts.tests).sum();
            writeln!(
                w,
                "  <testsuite name=\"atex\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"{}\" timestamp=\"{}\">\n    <properties>\n      <property name=\"run_id\" value=\"{}\"/>\n      <property name=\"tests_total\" value=\"{}\"/>\n    </properties>\n    <testcase name=\"run interrupted\" classname=\"atex\" time=\"{}\">\n      <error type=\"interrupted\" message=\"the run was interrupted\">{}</error>\n    </testcase>\n  </testsuite>",
                seconds(summary.duration_ms),
                iso_utc(summary.started_unix_ms),
                attr(&summary.run_id),
                summary.tests_total,
                seconds(summary.duration_ms),
                text(&format!(
                    "The run was interrupted; {reported} testcase(s) were reported, {} test(s) were selected.",
                    summary.tests_total
                )),
            )?;
        }
        w.write_all(b"</testsuites>\n")
    }
}

/// `classname` and `name` of a test's own testcase: the path without its
/// last component, dotted, and that component.
fn case_names(test: &str) -> (String, String) {
    let parts: Vec<String> = test
        .split('/')
        .filter(|p| !p.is_empty())
        .map(|p| clean(p).replace('.', "_"))
        .collect();
    match parts.split_last() {
        None => (String::new(), "/".to_string()),
        Some((last, dirs)) => (
            dirs.join("."),
            clean(test.rsplit('/').find(|p| !p.is_empty()).unwrap_or(last)).into_owned(),
        ),
    }
}

/// `classname` of a test's sub-results: its whole path, dotted.
fn sub_classname(test: &str) -> String {
    test.split('/')
        .filter(|p| !p.is_empty())
        .map(|p| clean(p).replace('.', "_"))
        .collect::<Vec<_>>()
        .join(".")
}

fn testcase(out: &mut String, name: &str, classname: &str, ms: u64, body: &str) {
    let _ = write!(
        out,
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        attr(name),
        attr(classname),
        seconds(ms)
    );
    if body.is_empty() {
        out.push_str("/>\n");
    } else {
        out.push_str(">\n");
        out.push_str(body);
        out.push_str("    </testcase>\n");
    }
}

fn push_output(out: &mut String, link: &str, tail: &io::Result<Tail>) {
    match tail {
        Ok(t) if t.truncated => {
            let _ = writeln!(
                out,
                "[atex: last {} of {} bytes shown; full output: {}]",
                t.text.len(),
                t.total_bytes,
                text(link)
            );
            out.push_str(&text(&t.text));
        }
        Ok(t) if t.text.is_empty() => {
            let _ = write!(out, "[atex: no output; {}]", text(link));
        }
        Ok(t) => {
            let _ = writeln!(out, "[atex: full output: {}]", text(link));
            out.push_str(&text(&t.text));
        }
        Err(e) => {
            let _ = write!(
                out,
                "[atex: cannot read {}: {}]",
                text(link),
                text(&e.to_string())
            );
        }
    }
}

/// Why a testcase ended, in one line: the reason, else the first line of
/// the note, else a word for the status.
fn message_for(status: &Status, reason: Option<&str>, note: Option<&str>) -> String {
    if let Some(r) = reason.map(str::trim).filter(|r| !r.is_empty()) {
        return truncate_chars(r, 500).into_owned();
    }
    if let Some(first) = note.and_then(|n| n.lines().find(|l| !l.trim().is_empty())) {
        return truncate_chars(first.trim(), 500).into_owned();
    }
    match status {
        Status::Fail => "test failed".to_string(),
        Status::Error => "test errored".to_string(),
        Status::Infra => "infrastructure error".to_string(),
        Status::Skip => "test skipped".to_string(),
        s => format!("status: {s}"),
    }
}

impl ReporterImpl for JunitReporter {
    fn on_result(&mut self, result: &ResultView) -> Result<(), PluginError> {
        // The spool lives beside the report: a failure is the report's.
        self.add(result).map_err(|source| {
            PluginError::from(report::Error::Unwritable {
                path: self.path.clone(),
                source,
            })
        })
    }

    fn finish(&mut self, summary: &SummaryView) -> Result<Vec<PathBuf>, PluginError> {
        let path = self.path.clone();
        Ok(report::finish_report(&path, |w| {
            self.write_report(summary, w)
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_group_by_path() {
        assert_eq!(
            case_names("/tests/login/basic"),
            ("tests.login".to_string(), "basic".to_string())
        );
        assert_eq!(case_names("/t"), (String::new(), "t".to_string()));
        assert_eq!(case_names("/"), (String::new(), "/".to_string()));
        assert_eq!(
            case_names("/a.b/c.d"),
            ("a_b".to_string(), "c.d".to_string())
        );
        assert_eq!(sub_classname("/tests/suite/multi"), "tests.suite.multi");
    }

    #[test]
    fn finished_tests_are_spooled_to_disk_as_they_land() {
        use atex_plugin_api::testkit::{self, Step};
        let run = testkit::SyntheticRun::golden();
        let mut rep =
            JunitReporter::with_config(Config::default(), run.results_dir()).expect("new");
        let mut max_pending = 0;
        for step in &run.steps {
            match step {
                Step::File(rel, bytes) => {
                    let p = run.results_dir().join(rel);
                    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&p, bytes).expect("write");
                }
                Step::Result(r) => rep.on_result(r).expect("on_result"),
            }
            max_pending = max_pending.max(rep.pending.len());
        }
        // Only a test between its sub-results or attempts waits in memory.
        assert_eq!(max_pending, 1);
        assert!(rep.pending.is_empty());
        assert_eq!(rep.suites.len(), 2);
        for s in &mut rep.suites {
            let w = s.spool.as_mut().expect("spooled");
            w.flush().expect("flush");
            assert!(w.get_ref().metadata().expect("stat").len() > 500);
        }
    }

    #[test]
    fn message_prefers_the_reason() {
        let m = message_for(&Status::Fail, Some("exit code 3"), Some("note\nmore"));
        assert_eq!(m, "exit code 3");
        assert_eq!(message_for(&Status::Fail, None, Some("\nnote\n")), "note");
        assert_eq!(message_for(&Status::Fail, Some(" "), None), "test failed");
    }
}
