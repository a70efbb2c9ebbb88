//! The `junit` reporter: one JUnit XML file that CI systems read.
//!
//! The file validates against Jenkins' `junit-10.xsd` (the xUnit plugin's
//! schema) and is laid out for how Jenkins and GitLab actually parse it:
//!
//! ```text
//! <testsuites name="atex" tests failures errors time>
//!   <testsuite name="PLATFORM/TEST" tests failures errors skipped time
//!              timestamp="2026-01-02T03:04:05Z" hostname="REMOTE">
//!     <properties> platform, remote, status, attempt, flaky, note, output,
//!                  file, extra.*, attempt.N.* for earlier attempts </properties>
//!     <testcase name="/TEST" classname="PLATFORM/TEST"> the test itself
//!     <testcase name="/TEST/SUB" classname="PLATFORM/TEST"> per sub-result
//!   </testsuite>
//! </testsuites>
//! ```
//!
//! - One `testsuite` per test and platform, because `junit-10.xsd` allows
//!   neither `properties` nor `timestamp` on a `testcase`. Jenkins and
//!   GitLab both read every suite (GitLab at any depth).
//! - `classname` carries the platform, so GitLab (which keeps only the
//!   first of equal classname + name) does not merge platforms. Dots are
//!   replaced by `_` there, because Jenkins splits a classname at its last
//!   dot into a package.
//! - Statuses: `pass` and `info` pass; `skip` is `<skipped>`; `fail` is
//!   `<failure>`; `error`, `infra`, `warn` and custom statuses are
//!   `<error>` (tmt's choice for `warn`). The `status_map` option changes
//!   this per status. `type` is always the atex status, `message` the first
//!   line of the note.
//! - Reruns: the last attempt is the testcase. Each earlier attempt becomes
//!   a `flakyFailure`/`flakyError` (the test passed in the end) or a
//!   `rerunFailure`/`rerunError` (it did not), which Jenkins shows, and
//!   `attempt.N.*` properties, for consumers that ignore those elements.
//! - Output: the tail of the result's log (`output.txt`, else the first
//!   `.log`/`.txt` file) in `system-out`, at most `max_output_bytes`, with a
//!   first line naming the full file (relative to the report).
//! - Characters XML 1.0 forbids, and ANSI escape sequences, are removed;
//!   text is escaped, never put in CDATA, so `]]>` is harmless.
//! - The file is written atomically (temporary file and rename).
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
    collections::BTreeMap,
    fmt::Write as _,
    io::{self, Write},
    path::{Path, PathBuf},
};

use atex_plugin_api::{
    PluginError, Status,
    report::{
        self, Attempt, CollectedTest, Collector, LogReader, ReportFile, SubResult, Tail, iso_utc,
        seconds, truncate_chars, xml_attr as attr, xml_text as text,
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
    file: ReportFile,
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
}

impl JunitReporter {
    /// A reporter writing to `config.output`, else `work_dir/junit.xml`.
    /// Fails when that path cannot be written.
    pub fn with_config(config: Config, work_dir: &Path) -> Result<Self, report::Error> {
        let file = ReportFile::new(
            config.output.as_deref(),
            work_dir,
            "junit.xml",
            config.max_output_bytes,
        )?;
        Ok(JunitReporter { config, file })
    }

    /// Where the file goes.
    pub fn output(&self) -> &Path {
        self.file.path()
    }
}

fn write_report(
    config: &Config,
    collector: &mut Collector,
    report_dir: &Path,
    summary: &SummaryView,
    w: &mut dyn Write,
) -> io::Result<()> {
    let mut total = Counts {
        tests: 0,
        failures: 0,
        errors: 0,
        skipped: 0,
    };
    for t in collector.tests() {
        if let Some(last) = t.last() {
            total.add(config.outcome(&last.effective_status()));
            for s in &last.subs {
                total.add(config.outcome(&s.status));
            }
        }
    }
    let interrupted = summary.interrupted;
    if interrupted {
        total.add(Outcome::Error);
    }
    let mut head = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        head,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\">",
        attr(&config.name),
        total.tests,
        total.failures,
        total.errors,
        seconds(summary.duration_ms)
    );
    w.write_all(head.as_bytes())?;

    let (tests, mut logs) = collector.parts();
    let mut order: Vec<&CollectedTest> = tests.iter().collect();
    order.sort_by(|a, b| (&a.platform, &a.name).cmp(&(&b.platform, &b.name)));
    let writer = SuiteWriter {
        rep: config,
        report_dir,
    };
    let mut buf = String::new();
    for test in order {
        buf.clear();
        writer.suite(&mut buf, test, &mut logs);
        w.write_all(buf.as_bytes())?;
    }
    if interrupted {
        buf.clear();
        let reported = tests.len();
        let _ = writeln!(
            buf,
            "  <testsuite name=\"atex\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\" time=\"{}\" timestamp=\"{}\">\n    <properties>\n      <property name=\"run_id\" value=\"{}\"/>\n      <property name=\"tests_total\" value=\"{}\"/>\n    </properties>\n    <testcase name=\"run interrupted\" classname=\"atex\" time=\"{}\">\n      <error type=\"interrupted\" message=\"the run was interrupted\">{}</error>\n    </testcase>\n  </testsuite>",
            seconds(summary.duration_ms),
            iso_utc(summary.started_unix_ms),
            attr(&summary.run_id),
            summary.tests_total,
            seconds(summary.duration_ms),
            text(&format!(
                "The run was interrupted; {reported} test(s) reported a result, {} were selected.",
                summary.tests_total
            )),
        );
        w.write_all(buf.as_bytes())?;
    }
    w.write_all(b"</testsuites>\n")
}

struct SuiteWriter<'a> {
    rep: &'a Config,
    report_dir: &'a Path,
}

impl SuiteWriter<'_> {
    fn suite(&self, out: &mut String, test: &CollectedTest, logs: &mut LogReader<'_>) {
        let Some(last) = test.last() else { return };
        let status = &last.effective_status();
        let outcome = self.rep.outcome(status);
        let mut counts = Counts {
            tests: 0,
            failures: 0,
            errors: 0,
            skipped: 0,
        };
        counts.add(outcome);
        for s in &last.subs {
            counts.add(self.rep.outcome(&s.status));
        }
        let suite_name = format!("{}/{}", test.platform, test.name.trim_start_matches('/'));
        let classname = suite_name.replace('.', "_");
        let earlier = test.earlier();
        let flaky = !earlier.is_empty() && matches!(outcome, Outcome::Pass);

        let _ = write!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\" timestamp=\"{}\"",
            attr(&suite_name),
            counts.tests,
            counts.failures,
            counts.errors,
            counts.skipped,
            seconds(last.duration_ms),
            iso_utc(last.started_ms),
        );
        if !last.remote.is_empty() {
            let _ = write!(out, " hostname=\"{}\"", attr(&last.remote));
        }
        out.push_str(">\n    <properties>\n");
        let mut prop = |name: &str, value: &str| {
            let _ = writeln!(
                out,
                "      <property name=\"{}\" value=\"{}\"/>",
                attr(name),
                attr(value)
            );
        };
        prop("platform", &test.platform);
        if !last.remote.is_empty() {
            prop("remote", &last.remote);
        }
        prop("status", status.as_str());
        if last.status.is_none() {
            prop(
                "status_from",
                "sub-results (no result for the test itself was reported)",
            );
        }
        prop("attempt", &last.number.to_string());
        if flaky {
            prop("flaky", "true");
        }
        if let Some(note) = &last.note {
            prop("note", note);
        }
        if let Some(log) = report::pick_log(&last.files) {
            prop("output", &self.link(test, log));
        }
        for f in &last.files {
            prop("file", &self.link(test, f));
        }
        if let Ok(serde_json::Value::Object(extra)) =
            serde_json::from_str::<serde_json::Value>(&last.extra_json)
        {
            for (k, v) in extra {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    v => v.to_string(),
                };
                prop(&format!("extra.{k}"), &v);
            }
        }
        for a in earlier {
            let p = format!("attempt.{}.", a.number);
            prop(&format!("{p}status"), a.effective_status().as_str());
            if let Some(note) = &a.note {
                prop(&format!("{p}note"), note);
            }
            if !a.remote.is_empty() {
                prop(&format!("{p}remote"), &a.remote);
            }
            prop(&format!("{p}timestamp"), &iso_utc(a.started_ms));
            prop(&format!("{p}time"), &seconds(a.duration_ms));
        }
        out.push_str("    </properties>\n");

        // The test itself.
        let mut body = String::new();
        outcome_element(
            &mut body,
            outcome,
            status,
            last.note.as_deref(),
            &failing_subs(last, self),
        );
        for a in earlier {
            self.rerun_element(
                &mut body,
                test,
                a,
                flaky,
                logs,
                self.rep.wants_output(Outcome::Failure),
            );
        }
        let log = if self.rep.wants_output(outcome) {
            logs.attempt_log(test, last, self.rep.max_output_bytes)
                .map(|(log, tail)| (self.link(test, &log), tail))
        } else {
            None
        };
        self.system_out(&mut body, outcome, status, last.note.as_deref(), log);
        testcase(out, &test.name, &classname, last.duration_ms, &body);

        // Its sub-results.
        for s in &last.subs {
            self.sub_case(out, test, s, &classname);
        }
        out.push_str("  </testsuite>\n");
    }

    fn sub_case(&self, out: &mut String, test: &CollectedTest, s: &SubResult, classname: &str) {
        let o = self.rep.outcome(&s.status);
        let name = format!(
            "{}/{}",
            test.name.trim_end_matches('/'),
            s.name.trim_start_matches('/')
        );
        let mut body = String::new();
        outcome_element(&mut body, o, &s.status, s.note.as_deref(), "");
        let log = match report::pick_log(&s.files) {
            Some(log) if self.rep.wants_output(o) => Some((
                self.link(test, log),
                report::read_tail(&test.results_dir.join(log), self.rep.max_output_bytes),
            )),
            _ => None,
        };
        self.system_out(&mut body, o, &s.status, s.note.as_deref(), log);
        testcase(out, &name, classname, s.duration_ms, &body);
    }

    fn rerun_element(
        &self,
        out: &mut String,
        test: &CollectedTest,
        a: &Attempt,
        flaky: bool,
        logs: &mut LogReader<'_>,
        with_output: bool,
    ) {
        let status = &a.effective_status();
        let elem = match (self.rep.outcome(status), flaky) {
            (Outcome::Failure, true) => "flakyFailure",
            (Outcome::Failure, false) => "rerunFailure",
            (Outcome::Error, true) => "flakyError",
            (Outcome::Error, false) => "rerunError",
            // An earlier attempt that passed or was skipped is not a rerun
            // failure; its properties still record it.
            (Outcome::Pass | Outcome::Skipped, _) => return,
        };
        let message = message_for(status, a.note.as_deref());
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
        if with_output
            && let Some((log, tail)) = logs.attempt_log(test, a, self.rep.max_output_bytes)
        {
            out.push_str("<system-out>");
            push_output(out, &self.link(test, &log), tail);
            out.push_str("</system-out>");
        }
        let _ = writeln!(out, "</{elem}>");
    }

    /// The `system-out` of a testcase: for a passing one with another
    /// status (`info`) or a note, a line saying so (a pass has no element
    /// to carry them), then the log tail.
    fn system_out(
        &self,
        out: &mut String,
        o: Outcome,
        status: &Status,
        note: Option<&str>,
        log: Option<(String, io::Result<Tail>)>,
    ) {
        let mut head = String::new();
        if o == Outcome::Pass && self.rep.include_output != IncludeOutput::None {
            match (status, note) {
                (Status::Pass, None) => {}
                (s, None) => head = format!("[atex: status {s}]\n"),
                (s, Some(n)) => head = format!("[atex: status {s}: {n}]\n"),
            }
        }
        if head.is_empty() && log.is_none() {
            return;
        }
        out.push_str("      <system-out>");
        out.push_str(&text(&head));
        if let Some((link, tail)) = log {
            push_output(out, &link, tail);
        }
        out.push_str("</system-out>\n");
    }

    /// A result file's path relative to the report.
    fn link(&self, test: &CollectedTest, file: &str) -> String {
        let full = test.results_dir.join(file);
        report::relative_path(self.report_dir, &full)
            .to_string_lossy()
            .into_owned()
    }
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

fn push_output(out: &mut String, link: &str, tail: io::Result<Tail>) {
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

fn failing_subs(a: &Attempt, w: &SuiteWriter<'_>) -> String {
    let mut s = String::new();
    for sub in &a.subs {
        if matches!(
            w.rep.outcome(&sub.status),
            Outcome::Failure | Outcome::Error
        ) {
            let _ = write!(s, "\nsub-result {}: {}", sub.name, sub.status);
            if let Some(n) = &sub.note {
                let _ = write!(
                    s,
                    " ({})",
                    truncate_chars(n.lines().next().unwrap_or(""), 200)
                );
            }
        }
    }
    s
}

fn message_for(status: &Status, note: Option<&str>) -> String {
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

fn outcome_element(out: &mut String, o: Outcome, status: &Status, note: Option<&str>, extra: &str) {
    let elem = match o {
        Outcome::Pass => return,
        Outcome::Failure => "failure",
        Outcome::Error => "error",
        Outcome::Skipped => "skipped",
    };
    let message = message_for(status, note);
    let mut body = note.unwrap_or(&message).to_string();
    body.push_str(extra);
    let _ = writeln!(
        out,
        "      <{elem} type=\"{}\" message=\"{}\">{}</{elem}>",
        attr(status.as_str()),
        attr(&message),
        text(&body)
    );
}

impl ReporterImpl for JunitReporter {
    fn on_result(&mut self, result: &ResultView) -> Result<(), PluginError> {
        Ok(self.file.add(result)?)
    }

    fn finish(&mut self, summary: &SummaryView) -> Result<Vec<PathBuf>, PluginError> {
        let config = &self.config;
        Ok(self
            .file
            .write(|collector, dir, w| write_report(config, collector, dir, summary, w))?)
    }
}
