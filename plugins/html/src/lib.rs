//! The `html` reporter: one self-contained HTML file people enjoy reading.
//!
//! The file works from `file://` with no network and no side files: the
//! results are embedded as JSON (`<script type="application/json">`), and
//! inline vanilla JavaScript renders them. What it offers:
//!
//! - summary counts per status that double as filters (plus a `flaky` one
//!   for tests that passed after a rerun);
//! - failures and errors first (the default sort is by severity), the first
//!   of them opened, passes collapsed;
//! - search over name and note as you type, sort by status, name, platform
//!   and duration, a platform and a system column when there is more than
//!   one of either;
//! - per test: its log tail inline (ANSI escapes stripped), relative links
//!   to its full files, sub-results and earlier attempts nested, extra keys,
//!   and a deep link (`report.html#PLATFORM/TEST`);
//! - rendering in pages of rows, so 10,000 results open quickly.
//!
//! Log tails are bounded twice: `max_log_bytes` per result and
//! `max_total_log_bytes` for the whole file, spent on failures first. The
//! final attempts' logs are read at finish; earlier attempts' tails are kept
//! in a temporary spool file as they land (a rerun may overwrite them).
//!
//! Options (all optional):
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `output` | `<results dir>/report.html` | where to write; relative to the current directory |
//! | `title` | `atex run <run id>` | page title |
//! | `max_log_bytes` | `16384` | log tail bytes per result (`0`: no tails) |
//! | `max_total_log_bytes` | `2097152` | log tail bytes in the whole file |
//! | `platform_column` | `auto` | `auto` (when more than one platform), `always`, `never` |
//! | `system_column` | `auto` | the same for the system (remote) that ran each test |

#![deny(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    io::{self, Write},
    path::{Path, PathBuf},
};

use atex_plugin_api::{
    PluginError,
    report::{self, Attempt, CollectedTest, Collector, LogReader, ReportFile, clean, html_text},
    sdk::{PluginContext, ReporterImpl, ResultView, SummaryView},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Name the plugin is exported as.
pub const PLUGIN_NAME: &str = "html";

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// Options of the `html` reporter.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where to write; default `<work dir>/report.html`.
    pub output: Option<PathBuf>,
    /// Page title; default `atex run <run id>`.
    pub title: Option<String>,
    /// Log tail bytes per result.
    pub max_log_bytes: u64,
    /// Log tail bytes in the whole report.
    pub max_total_log_bytes: u64,
    /// When to show the platform column.
    pub platform_column: Column,
    /// When to show the system column.
    pub system_column: Column,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            output: None,
            title: None,
            max_log_bytes: 16 * 1024,
            max_total_log_bytes: 2 * 1024 * 1024,
            platform_column: Column::Auto,
            system_column: Column::Auto,
        }
    }
}

/// When a column is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Column {
    /// When more than one distinct value occurs.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Column {
    fn show(self, distinct: usize) -> bool {
        match self {
            Column::Auto => distinct > 1,
            Column::Always => true,
            Column::Never => false,
        }
    }
}

/// The reporter.
pub struct HtmlReporter {
    config: Config,
    run_id: String,
    file: ReportFile,
}

/// The constructor the plugin exports.
pub fn new(ctx: PluginContext) -> Result<HtmlReporter, PluginError> {
    let config: Config = report::parse_options(&ctx)?;
    HtmlReporter::with_config(config, ctx.work_dir(), ctx.run_id()).map_err(PluginError::from)
}

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new(
            "output",
            "path",
            "<results dir>/report.html",
            "Where to write; relative to the current directory.",
        ),
        OptionSpec::new("title", "string", "atex run <run id>", "Page title."),
        OptionSpec::new(
            "max_log_bytes",
            "integer",
            "16384",
            "Log tail bytes per result (0: no tails).",
        ),
        OptionSpec::new(
            "max_total_log_bytes",
            "integer",
            "2097152",
            "Log tail bytes in the whole file.",
        ),
        OptionSpec::new(
            "platform_column",
            "auto|always|never",
            "auto",
            "Auto (when more than one platform), always, never.",
        ),
        OptionSpec::new(
            "system_column",
            "auto|always|never",
            "auto",
            "The same for the system (remote) that ran each test.",
        ),
    ]
};

atex_plugin_api::export_plugin! {
    name: PLUGIN_NAME,
    version: env!("CARGO_PKG_VERSION"),
    description: "writes one self-contained HTML report that works offline",
    reporter: new,
    options: OPTIONS,
}

impl HtmlReporter {
    /// A reporter writing to `config.output`, else `work_dir/report.html`.
    /// Fails when that path cannot be written.
    pub fn with_config(
        config: Config,
        work_dir: &Path,
        run_id: &str,
    ) -> Result<Self, report::Error> {
        let file = ReportFile::new(
            config.output.as_deref(),
            work_dir,
            "report.html",
            config.max_log_bytes,
        )?;
        Ok(HtmlReporter {
            config,
            run_id: run_id.to_string(),
            file,
        })
    }

    /// Where the file goes.
    pub fn output(&self) -> &Path {
        self.file.path()
    }
}

/// What the report needs besides the collected tests.
struct Page<'a> {
    config: &'a Config,
    /// The run id from the constructor, used when the summary has none.
    run_id: &'a str,
    summary: &'a SummaryView,
}

impl Page<'_> {
    fn write(
        &self,
        collector: &mut Collector,
        report_dir: &Path,
        w: &mut dyn Write,
    ) -> io::Result<()> {
        let summary = self.summary;
        let results_dir = &summary.results_dir;
        let run_id = if summary.run_id.is_empty() {
            self.run_id.to_string()
        } else {
            summary.run_id.clone()
        };
        let title = self
            .config
            .title
            .clone()
            .unwrap_or_else(|| format!("atex run {run_id}"));
        let (tests, mut logs) = collector.parts();

        let platforms: BTreeSet<&str> = tests.iter().map(|t| t.platform.as_str()).collect();
        let systems: BTreeSet<&str> = tests
            .iter()
            .flat_map(|t| t.attempts.iter().map(|a| a.remote.as_str()))
            .filter(|r| !r.is_empty())
            .collect();
        // Failures first (they get the log budget first), then by name.
        let mut order: Vec<usize> = (0..tests.len()).collect();
        let sev = |t: &CollectedTest| t.last().map_or(0, |a| a.effective_status().severity());
        order.sort_by(|&a, &b| {
            let (ta, tb) = (&tests[a], &tests[b]);
            sev(tb)
                .cmp(&sev(ta))
                .then_with(|| (&ta.platform, &ta.name).cmp(&(&tb.platform, &tb.name)))
        });

        let base = {
            let rel = report::relative_path(report_dir, results_dir);
            let s = rel.to_string_lossy().replace('\\', "/");
            if s.is_empty() {
                String::new()
            } else {
                format!("{}/", s.trim_end_matches('/'))
            }
        };
        let head = json!({
            "title": title,
            "run": {
                "id": run_id,
                "start": summary.started_unix_ms,
                "dur": summary.duration_ms,
                "selected": summary.tests_total,
                "interrupted": summary.interrupted,
            },
            "base": base,
            "cols": {
                "platform": self.config.platform_column.show(platforms.len()),
                "system": self.config.system_column.show(systems.len()),
            },
        });

        write!(
            w,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"atex-html {}\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
             <noscript><p class=\"noscript\">This report is drawn by JavaScript; please enable it to see the results.</p></noscript>\n\
             <div id=\"app\"></div>\n<script type=\"application/json\" id=\"atex-data\">",
            env!("CARGO_PKG_VERSION"),
            html_text(&title),
        )?;
        // The head object, left open for the tests array.
        let head_text = script_safe(&head.to_string());
        let head_open = head_text.strip_suffix('}').unwrap_or(&head_text);
        write!(w, "{head_open},\"tests\":[")?;

        let mut budget = self.config.max_total_log_bytes;
        let limit = self.config.max_log_bytes;
        let run_start = summary.started_unix_ms;
        for (n, &i) in order.iter().enumerate() {
            let test = &tests[i];
            let Some(last) = test.last() else { continue };
            let prefix = format!(
                "files/{}/{}/",
                test.platform,
                test.name.trim_start_matches('/')
            );
            let mut obj = attempt_json(
                &mut logs,
                test,
                last,
                &prefix,
                limit,
                &mut budget,
                run_start,
            );
            // Names are kept as the test gave them (they locate its
            // files); what is shown is cleaned, as every other text is.
            obj.insert("p".into(), json!(clean(&test.platform)));
            obj.insert("n".into(), json!(clean(&test.name)));
            if !last.subs.is_empty() {
                let subs: Vec<Value> = last
                    .subs
                    .iter()
                    .map(|s| {
                        let mut o = Map::new();
                        o.insert("n".into(), json!(s.name));
                        o.insert("s".into(), json!(s.status.as_str()));
                        if let Some(note) = &s.note {
                            o.insert("o".into(), json!(note));
                        }
                        o.insert("d".into(), json!(s.duration_ms));
                        files_json(&mut o, &s.files, &prefix);
                        Value::Object(o)
                    })
                    .collect();
                obj.insert("u".into(), Value::Array(subs));
            }
            let earlier = test.earlier();
            if !earlier.is_empty() {
                let xs: Vec<Value> = earlier
                    .iter()
                    .map(|a| {
                        Value::Object(attempt_json(
                            &mut logs,
                            test,
                            a,
                            &prefix,
                            limit,
                            &mut budget,
                            run_start,
                        ))
                    })
                    .collect();
                obj.insert("x".into(), Value::Array(xs));
            }
            if n > 0 {
                w.write_all(b",\n")?;
            }
            w.write_all(script_safe(&Value::Object(obj).to_string()).as_bytes())?;
        }
        write!(
            w,
            "]}}</script>\n<script>\n{JS}</script>\n</body>\n</html>\n"
        )
    }
}

/// One attempt as JSON: status, note, timing, remote, files and log tail.
fn attempt_json(
    logs: &mut LogReader<'_>,
    test: &CollectedTest,
    a: &Attempt,
    prefix: &str,
    limit: u64,
    budget: &mut u64,
    run_start: u64,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("s".into(), json!(a.effective_status().as_str()));
    if let Some(note) = &a.note {
        o.insert("o".into(), json!(note));
    }
    o.insert("d".into(), json!(a.duration_ms));
    o.insert("t".into(), json!(a.started_ms as i64 - run_start as i64));
    if !a.remote.is_empty() {
        o.insert("r".into(), json!(a.remote));
    }
    if a.number != 1 {
        o.insert("a".into(), json!(a.number));
    }
    files_json(&mut o, &a.files, prefix);
    if let Some(log) = report::pick_log(&a.files) {
        let idx = a.files.iter().position(|f| f == log).unwrap_or(0);
        o.insert("li".into(), json!(idx));
        let allowed = limit.min(*budget);
        if allowed == 0 {
            o.insert("lx".into(), json!(1));
        } else if let Some((_, tail)) = logs.attempt_log(test, a, allowed) {
            match tail {
                Ok(mut t) => {
                    // A spooled tail was cut to `limit`; the budget may be less.
                    if t.text.len() as u64 > allowed {
                        let cut = t.text.len() - allowed as usize;
                        let mut start = cut;
                        while !t.text.is_char_boundary(start) {
                            start += 1;
                        }
                        t.text.drain(..start);
                        t.truncated = true;
                    }
                    *budget = budget.saturating_sub(t.text.len() as u64);
                    o.insert("l".into(), json!(t.text));
                    o.insert("lb".into(), json!(t.total_bytes));
                    if t.truncated {
                        o.insert("lt".into(), json!(1));
                    }
                }
                Err(e) => {
                    o.insert("le".into(), json!(e.to_string()));
                }
            }
        }
    }
    if !a.extra_json.is_empty()
        && let Ok(Value::Object(extra)) = serde_json::from_str::<Value>(&a.extra_json)
    {
        o.insert("e".into(), Value::Object(extra));
    }
    o
}

/// Files relative to the test's conventional directory (`f`), or, when one
/// is elsewhere, relative to the results directory with `fp: ""`.
fn files_json(o: &mut Map<String, Value>, files: &[String], prefix: &str) {
    if files.is_empty() {
        return;
    }
    if files
        .iter()
        .all(|f| f.starts_with(prefix) && f.len() > prefix.len())
    {
        o.insert(
            "f".into(),
            json!(files.iter().map(|f| &f[prefix.len()..]).collect::<Vec<_>>()),
        );
    } else {
        o.insert("f".into(), json!(files));
        o.insert("fp".into(), json!(""));
    }
}

/// JSON made safe inside `<script>`: no `<` (so no `</script>` or `<!--`).
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

impl ReporterImpl for HtmlReporter {
    fn on_result(&mut self, result: &ResultView) -> Result<(), PluginError> {
        Ok(self.file.add(result)?)
    }

    fn finish(&mut self, summary: &SummaryView) -> Result<Vec<PathBuf>, PluginError> {
        let page = Page {
            config: &self.config,
            run_id: &self.run_id,
            summary,
        };
        Ok(self
            .file
            .write(|collector, dir, w| page.write(collector, dir, w))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_safe_hides_closing_tags() {
        let s = script_safe(&json!({"n": "</script><!-- x"}).to_string());
        assert!(!s.contains('<'), "{s}");
    }

    #[test]
    fn files_relative_to_test_dir() {
        let mut o = Map::new();
        files_json(&mut o, &["files/p/t/output.txt".into()], "files/p/t/");
        assert_eq!(o["f"], json!(["output.txt"]));
        let mut o = Map::new();
        files_json(&mut o, &["other/x.txt".into()], "files/p/t/");
        assert_eq!(o["fp"], json!(""));
    }
}
