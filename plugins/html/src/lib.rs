//! The `html` reporter: one self-contained HTML file people enjoy reading.
//!
//! The file works from `file://` with no network and no side files: the
//! results are embedded as JSON (`<script type="application/json">`) in
//! chunks of a few thousand tests, each decoded by a one-line script as the
//! browser reads the file, so the first screen is drawn before the rest is
//! read; inline vanilla JavaScript renders them. What it offers:
//!
//! - summary counts per status that double as filters (plus `flaky` for
//!   tests that passed after a rerun, and `not run`);
//! - failures first: a compact list of them (status, name and why it
//!   ended: the `reason`, else the note, else the first error line of the
//!   log) above the table, and the table sorted by severity;
//! - tests that did not run (interrupt, `--max-fail`), listed by name;
//! - search over name, note, reason and log text as you type; sort by
//!   status, name (natural order: `/t2` before `/t10`), platform and
//!   duration; expand or collapse all; filter, search and sort kept in the
//!   URL (`#!q=...&only=fail&sort=name`), so a link shows the same view;
//! - a platform and a system column when there is more than one of either,
//!   and with several platforms a tests × platforms matrix;
//! - per test: why it ended, its log tail inline and scrolled to the end,
//!   relative links to its full files, sub-results (a failing one is marked
//!   on its parent's row) and earlier attempts nested, extra keys, and a
//!   deep link (`report.html#PLATFORM/TEST`);
//! - only the rows on screen are in the page (a virtual list), so 300,000
//!   results open in a few seconds and filter quickly.
//!
//! Log tails are bounded twice: `max_log_bytes` per result and
//! `max_total_log_bytes` for the whole file, spent on failures first. The
//! reporter keeps little per test in memory: each test's record is written
//! to a temporary file in the report's directory as its final result lands
//! (earlier attempts' tails with it, as a rerun may overwrite them), and
//! the file is assembled from it at finish, with the final attempts' logs
//! read then.
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
    cmp::Reverse,
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{self, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use atex_plugin_api::{
    PluginError, Status,
    report::{self, clean, html_text, natural_cmp, truncate_chars},
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

/// Tests per data chunk in the file; the first chunk is smaller, so the
/// first screen is drawn soon.
const CHUNK: usize = 5000;
const FIRST_CHUNK: usize = 500;

/// The reporter.
pub struct HtmlReporter {
    config: Config,
    run_id: String,
    path: PathBuf,
    report_dir: PathBuf,
    results_dir: Option<PathBuf>,
    /// Tests whose final result has not landed yet.
    pending: HashMap<(String, String), Pending>,
    /// Finished tests' records, as JSON text followed by their log's path.
    spool: Option<BufWriter<File>>,
    spool_end: u64,
    index: Vec<Entry>,
    platforms: Vec<String>,
    platform_of: HashMap<String, u32>,
    first_remote: Option<String>,
    many_remotes: bool,
    counts: BTreeMap<String, u64>,
    not_run: u64,
}

/// What is kept in memory per finished test: enough to sort it.
struct Entry {
    name: Box<str>,
    offset: u64,
    len: u32,
    log_len: u32,
    platform: u32,
    severity: u8,
    flaky: bool,
    /// Bytes of earlier attempts' log tails in the record.
    early_log_bytes: u32,
}

#[derive(Default)]
struct Pending {
    subs: Vec<Value>,
    worst_sub: Option<Status>,
    earlier: Vec<Value>,
    early_log_bytes: u64,
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

fn cleaned(s: &str) -> String {
    truncate_chars(&clean(s), report::MAX_NOTE_BYTES).into_owned()
}

impl HtmlReporter {
    /// A reporter writing to `config.output`, else `work_dir/report.html`.
    /// Fails when that path cannot be written.
    pub fn with_config(
        config: Config,
        work_dir: &Path,
        run_id: &str,
    ) -> Result<Self, report::Error> {
        let path = report::output_path(config.output.as_deref(), work_dir, "report.html");
        report::check_writable(&path)?;
        let report_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(HtmlReporter {
            config,
            run_id: run_id.to_string(),
            path,
            report_dir,
            results_dir: None,
            pending: HashMap::new(),
            spool: None,
            spool_end: 0,
            index: Vec::new(),
            platforms: Vec::new(),
            platform_of: HashMap::new(),
            first_remote: None,
            many_remotes: false,
            counts: BTreeMap::new(),
            not_run: 0,
        })
    }

    /// Where the file goes.
    pub fn output(&self) -> &Path {
        &self.path
    }

    fn add(&mut self, r: &ResultView) -> io::Result<()> {
        if self.results_dir.is_none() {
            self.results_dir = Some(r.results_dir.clone());
        }
        let remote = clean(&r.remote);
        if !remote.is_empty() {
            match &self.first_remote {
                None => self.first_remote = Some(remote.into_owned()),
                Some(f) if *f != remote => self.many_remotes = true,
                Some(_) => {}
            }
        }
        let prefix = test_prefix(&r.platform, &r.test);
        let key = (r.platform.clone(), r.test.clone());
        let status = Status::parse(&clean(r.status.as_str()));
        if let Some(sub) = &r.subtest {
            let mut o = Map::new();
            o.insert("n".into(), json!(clean(sub)));
            o.insert("s".into(), json!(status.as_str()));
            if let Some(note) = &r.note {
                o.insert("o".into(), json!(cleaned(note)));
            }
            o.insert("d".into(), json!(r.duration_ms));
            files_json(&mut o, &r.files, &prefix);
            let p = self.pending.entry(key).or_default();
            p.worst_sub = Some(match p.worst_sub.take() {
                Some(w) => w.worst(status),
                None => status,
            });
            p.subs.push(Value::Object(o));
            return Ok(());
        }
        let mut o = attempt_json(r, &status, &prefix);
        if !r.final_attempt {
            // A rerun may overwrite the files: keep this attempt's tail now.
            let mut bytes = 0;
            if self.config.max_log_bytes > 0
                && let Some(log) = report::pick_log(&r.files)
            {
                bytes = log_json(&mut o, &r.results_dir.join(log), self.config.max_log_bytes);
            }
            let p = self.pending.entry(key).or_default();
            p.subs.clear();
            p.worst_sub = None;
            p.earlier.push(Value::Object(o));
            p.early_log_bytes += bytes;
            return Ok(());
        }
        let p = self.pending.remove(&key).unwrap_or_default();
        let not_run = r.not_run();
        let log = report::pick_log(&r.files).map(str::to_string);
        self.finish_test(&r.platform, &r.test, status, o, p, log, not_run)
    }

    /// Writes a finished test's record to the spool and indexes it.
    #[allow(clippy::too_many_arguments)]
    fn finish_test(
        &mut self,
        platform: &str,
        test: &str,
        status: Status,
        mut o: Map<String, Value>,
        p: Pending,
        log: Option<String>,
        not_run: bool,
    ) -> io::Result<()> {
        let flaky = !p.earlier.is_empty() && status.severity() <= Status::Info.severity();
        // Offsets from the run's start are filled in at finish; keep the
        // absolute start for now.
        // The platform is written at finish, as an index into the list.
        o.insert("n".into(), json!(clean(test)));
        if !p.subs.is_empty() {
            o.insert("u".into(), Value::Array(p.subs));
        }
        if !p.earlier.is_empty() {
            o.insert("x".into(), Value::Array(p.earlier));
        }
        if not_run {
            self.not_run += 1;
        } else {
            *self.counts.entry(status.as_str().to_string()).or_default() += 1;
        }
        let plat = match self.platform_of.get(platform) {
            Some(&i) => i,
            None => {
                self.platforms.push(platform.to_string());
                let i = (self.platforms.len() - 1) as u32;
                self.platform_of.insert(platform.to_string(), i);
                i
            }
        };
        let record = script_safe(&Value::Object(o).to_string());
        let log = log.unwrap_or_default();
        let spool = match &mut self.spool {
            Some(s) => s,
            None => {
                std::fs::create_dir_all(&self.report_dir)?;
                self.spool
                    .insert(BufWriter::new(tempfile::tempfile_in(&self.report_dir)?))
            }
        };
        spool.write_all(record.as_bytes())?;
        spool.write_all(log.as_bytes())?;
        let len = u32::try_from(record.len()).map_err(io::Error::other)?;
        let log_len = u32::try_from(log.len()).map_err(io::Error::other)?;
        self.index.push(Entry {
            name: clean(test).into(),
            offset: self.spool_end,
            len,
            log_len,
            platform: plat,
            severity: status.severity(),
            flaky,
            early_log_bytes: u32::try_from(p.early_log_bytes).unwrap_or(u32::MAX),
        });
        self.spool_end += u64::from(len) + u64::from(log_len);
        Ok(())
    }

    /// Tests that never got a final result: only sub-results came, or a
    /// rerun was cut short (its last attempt is what it is).
    fn flush_pending(&mut self) -> io::Result<()> {
        let mut rest: Vec<((String, String), Pending)> = self.pending.drain().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for ((platform, test), mut p) in rest {
            let (status, o) = if let Some(worst) = p.worst_sub.take() {
                let mut o = Map::new();
                o.insert("s".into(), json!(worst.as_str()));
                o.insert("d".into(), json!(0));
                (worst, o)
            } else if let Some(Value::Object(last)) = p.earlier.pop() {
                let s = last
                    .get("s")
                    .and_then(Value::as_str)
                    .map_or(Status::Pass, Status::parse);
                p.subs.clear();
                (s, last)
            } else {
                continue;
            };
            self.finish_test(&platform, &test, status, o, p, None, false)?;
        }
        Ok(())
    }
}

/// `files/PLATFORM/TEST/`, where a test's files usually are.
fn test_prefix(platform: &str, test: &str) -> String {
    format!("files/{}/{}/", platform, test.trim_start_matches('/'))
}

/// One attempt as JSON: status, note, timing, remote, files and which file
/// is its log. `t` is the absolute start here, made relative at finish.
fn attempt_json(r: &ResultView, status: &Status, prefix: &str) -> Map<String, Value> {
    let mut o = Map::new();
    if *status != Status::Pass {
        o.insert("s".into(), json!(status.as_str()));
    }
    if let Some(note) = &r.note {
        o.insert("o".into(), json!(cleaned(note)));
    }
    o.insert("d".into(), json!(r.duration_ms));
    o.insert("t".into(), json!(r.started_unix_ms));
    let remote = clean(&r.remote);
    if !remote.is_empty() {
        o.insert("r".into(), json!(remote));
    }
    if r.attempt != 1 {
        o.insert("a".into(), json!(r.attempt));
    }
    files_json(&mut o, &r.files, prefix);
    if let Some(log) = report::pick_log(&r.files) {
        let idx = r.files.iter().position(|f| f == log).unwrap_or(0);
        o.insert("li".into(), json!(idx));
    }
    let extra = r.extra_json.trim();
    if !extra.is_empty()
        && extra != "{}"
        && let Ok(Value::Object(mut extra)) = serde_json::from_str::<Value>(extra)
    {
        // The reason is `y`, not-run `nr`: no need to say them twice.
        if let Some(Value::String(reason)) = extra.remove("reason") {
            o.insert("y".into(), json!(cleaned(&reason)));
        }
        if extra.remove("not_run") == Some(Value::Bool(true)) {
            o.insert("nr".into(), json!(1));
        }
        if !extra.is_empty() {
            o.insert("e".into(), Value::Object(extra));
        }
    }
    o
}

/// Adds the tail of `path` (at most `max` bytes) as `l`, `lb`, `lt`, or
/// the error as `le`; returns the bytes of text added.
fn log_json(o: &mut Map<String, Value>, path: &Path, max: u64) -> u64 {
    match report::read_tail(path, max) {
        Ok(t) => {
            let n = t.text.len() as u64;
            o.insert("l".into(), json!(t.text));
            o.insert("lb".into(), json!(t.total_bytes));
            if t.truncated {
                o.insert("lt".into(), json!(1));
            }
            n
        }
        Err(e) => {
            o.insert("le".into(), json!(e.to_string()));
            0
        }
    }
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

impl HtmlReporter {
    fn write_page(&mut self, summary: &SummaryView, w: &mut dyn Write) -> io::Result<()> {
        self.flush_pending()?;
        let results_dir = self
            .results_dir
            .clone()
            .unwrap_or_else(|| summary.results_dir.clone());
        let run_id = if summary.run_id.is_empty() {
            self.run_id.clone()
        } else {
            summary.run_id.clone()
        };
        let title = self
            .config
            .title
            .clone()
            .unwrap_or_else(|| format!("atex run {run_id}"));
        // Worst first (the order logs are budgeted in and the page shows),
        // then by name as people count.
        let platforms = &self.platforms;
        let mut order: Vec<u32> = (0..self.index.len() as u32).collect();
        let index = &self.index;
        order.sort_by(|&a, &b| {
            let (x, y) = (&index[a as usize], &index[b as usize]);
            (Reverse(x.severity), Reverse(x.flaky))
                .cmp(&(Reverse(y.severity), Reverse(y.flaky)))
                .then_with(|| natural_cmp(&x.name, &y.name))
                .then_with(|| {
                    natural_cmp(
                        &platforms[x.platform as usize],
                        &platforms[y.platform as usize],
                    )
                })
        });
        // The rank of each test by name, for sorting by name in the page.
        let mut by_name: Vec<u32> = (0..self.index.len() as u32).collect();
        by_name.sort_by(|&a, &b| {
            let (x, y) = (&index[a as usize], &index[b as usize]);
            natural_cmp(&x.name, &y.name).then_with(|| {
                natural_cmp(
                    &platforms[x.platform as usize],
                    &platforms[y.platform as usize],
                )
            })
        });
        let mut rank = vec![0u32; self.index.len()];
        for (r, &i) in by_name.iter().enumerate() {
            rank[i as usize] = r as u32;
        }
        drop(by_name);

        let base = {
            let rel = report::relative_path(&self.report_dir, &results_dir);
            let s = rel.to_string_lossy().replace('\\', "/");
            if s.is_empty() {
                String::new()
            } else {
                format!("{}/", s.trim_end_matches('/'))
            }
        };
        // Platforms in natural order; records name theirs by position.
        let mut plat_order: Vec<usize> = (0..self.platforms.len()).collect();
        plat_order.sort_by(|&a, &b| natural_cmp(&self.platforms[a], &self.platforms[b]));
        let mut plat_pos = vec![0usize; self.platforms.len()];
        for (pos, &i) in plat_order.iter().enumerate() {
            plat_pos[i] = pos;
        }
        let plat_names: Vec<String> = plat_order
            .iter()
            .map(|&i| clean(&self.platforms[i]).into_owned())
            .collect();
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
            "total": self.index.len(),
            "counts": self.counts,
            "notRun": self.not_run,
            "platforms": plat_names,
            "cols": {
                "platform": self.config.platform_column.show(self.platforms.len()),
                "system": self.config.system_column.show(if self.many_remotes { 2 } else { usize::from(self.first_remote.is_some()) }),
            },
        });

        write!(
            w,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta name=\"generator\" content=\"atex-html {}\">\n<title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n\
             <noscript><p class=\"noscript\">This report is drawn by JavaScript; please enable it to see the results.</p></noscript>\n\
             <div id=\"app\"></div>\n<script type=\"application/json\" id=\"atex-data\">{}</script>\n<script>\n{JS}</script>\n",
            env!("CARGO_PKG_VERSION"),
            html_text(&title),
            script_safe(&head.to_string()),
        )?;

        let mut budget = self.config.max_total_log_bytes;
        let limit = self.config.max_log_bytes;
        let mut spool = match self.spool.take() {
            Some(s) => Some(s.into_inner().map_err(|e| e.into_error())?),
            None => None,
        };
        let mut buf = Vec::new();
        let mut in_chunk = 0;
        let mut chunk_size = FIRST_CHUNK;
        for &i in &order {
            let e = &self.index[i as usize];
            let Some(file) = spool.as_mut() else { break };
            buf.resize((e.len + e.log_len) as usize, 0);
            file.seek(SeekFrom::Start(e.offset))?;
            file.read_exact(&mut buf)?;
            let (rec, log) = buf.split_at(e.len as usize);
            // The record is an object: `{"k":RANK,"p":PLATFORM,` + its keys
            // + the log's keys + `}`.
            let keys = rec
                .strip_prefix(b"{")
                .and_then(|r| r.strip_suffix(b"}"))
                .unwrap_or_default();
            let mut more = Map::new();
            budget = budget.saturating_sub(u64::from(e.early_log_bytes));
            if !log.is_empty() {
                let allowed = limit.min(budget);
                if allowed == 0 {
                    more.insert("lx".into(), json!(1));
                } else {
                    let log = String::from_utf8_lossy(log);
                    budget = budget.saturating_sub(log_json(
                        &mut more,
                        &results_dir.join(&*log),
                        allowed,
                    ));
                }
            }
            if in_chunk == 0 {
                w.write_all(b"<script type=\"application/json\" class=\"atex-chunk\">[")?;
            } else {
                w.write_all(b",\n")?;
            }
            write!(
                w,
                "{{\"k\":{},\"p\":{}{}",
                rank[i as usize],
                plat_pos[e.platform as usize],
                if keys.is_empty() { "" } else { "," }
            )?;
            w.write_all(keys)?;
            if !more.is_empty() {
                let more = script_safe(&Value::Object(more).to_string());
                w.write_all(b",")?;
                w.write_all(&more.as_bytes()[1..more.len() - 1])?;
            }
            w.write_all(b"}")?;
            in_chunk += 1;
            if in_chunk == chunk_size {
                w.write_all(b"]</script>\n<script>atexChunk()</script>\n")?;
                in_chunk = 0;
                chunk_size = CHUNK;
            }
        }
        if in_chunk > 0 {
            w.write_all(b"]</script>\n<script>atexChunk()</script>\n")?;
        }
        w.write_all(b"<script>atexDone()</script>\n</body>\n</html>\n")
    }
}

impl ReporterImpl for HtmlReporter {
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
            self.write_page(summary, w)
        })?)
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
