//! What `atex run` does, as one value: [`RunConfig`], filled from the
//! command line and/or a YAML file that can say everything the flags say.
//!
//! ```yaml
//! root: tests/            # FMF tree (default .)
//! plan: /plans/ci         # selection, as `atex discover`
//! context: {distro: fedora-40, arch: [x86_64]}   # or a list of "K=V"
//! context-for:            # a platform's own context, over `context`
//!   cs9: {distro: centos-stream-9}
//!   cs10: [distro=centos-stream-10]
//! filter: ["tag: -slow"]
//! test: [/smoke]
//! exclude: [/broken]
//! provisioners:           # default: [local]
//!   - podman: {image: localhost/atex-test, max: 4}
//!   - "testing-farm:compose=Fedora-40"
//! reporters: [junit, {html: {path: report.html}}]
//! plugin-dirs: [./plugins]
//! workers: 8
//! reruns: 1
//! results: out/run-1
//! platform: f40
//! history: .atex-history.json
//! failure-budget: 5       # broken systems per provisioner before it is dropped
//! deadline: 2h            # tests must end (by their duration) before this
//! max-fail: 3             # start no test after the third failing one
//! fmf-id: {url: https://example.org/tests.git, ref: v1.0, path: /fmf}  # instead of root
//! library-url: https://forge.example.org/beakerlib/{repository}      # for library(repo/lib)
//! ```
//!
//! Flags given on the command line win over the file.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use serde_yaml::Value;

use std::sync::Arc;

use super::{
    display::{DisplayOptions, ProgressMode},
    driver::ContinueRun,
    engine::{DefaultPolicy, SchedulePolicy},
};
use crate::{fmf, plugins::PluginSpec, remote};

/// Everything `atex run` needs.
#[derive(Clone)]
pub struct RunConfig {
    /// FMF tree root (default `.`).
    pub root: Option<PathBuf>,
    /// `--plan`, `-c`, `--filter`, `--test`, `--exclude`.
    pub selection: fmf::Selection,
    /// `--context-for PLATFORM:K=V`: each platform's own context
    /// dimensions, replacing the same dimensions of the selection's.
    pub context_for: Vec<(String, fmf::Context)>,
    /// `-p NAME[:K=V,...]` (default: `local`).
    pub provisioners: Vec<PluginSpec>,
    /// `-r NAME[:K=V,...]`.
    pub reporters: Vec<PluginSpec>,
    /// `--plugin-dir`.
    pub plugin_dirs: Vec<PathBuf>,
    /// `--workers`: the most systems at once (default: the provisioners'
    /// `max_remotes` added up, or the number of CPUs when one is unlimited).
    pub workers: Option<usize>,
    /// `--reruns`.
    pub reruns: Option<u32>,
    /// `--results` (default `atex-results/<run id>`).
    pub results_dir: Option<PathBuf>,
    /// `--platform`.
    pub platform: Option<String>,
    /// `--history` (default `<parent of results>/.atex-history.json`).
    pub history: Option<PathBuf>,
    /// `--failure-budget`.
    pub failure_budget: Option<u32>,
    /// `--deadline`.
    pub deadline: Option<Duration>,
    /// `--max-fail`: start no more tests once this many failed.
    pub max_fail: Option<u32>,
    /// How to show progress.
    pub progress: ProgressMode,
    /// `--color`, `--status-level`, `-q`, `--heartbeat`.
    pub display: DisplayOptions,
    /// Handle SIGINT/SIGTERM (the CLI does; a library caller may not want
    /// to).
    pub signals: bool,
    /// Scheduling decisions (`--fresh-after-failure` picks
    /// [`super::FreshAfterFailure`]).
    pub decisions: Arc<dyn SchedulePolicy>,
    /// `--resume DIR` / `--rerun-failed DIR`: continue the run in
    /// `results_dir`.
    pub continue_run: Option<ContinueRun>,
    /// `--url URL [--ref REF] [--path P]`: the tree is in a git
    /// repository (fetched into the cache) instead of `root`.
    pub fmf_id: Option<remote::FmfId>,
    /// `--library-url`: the URL template of `library(repo/lib)`
    /// requirements (default [`remote::DEFAULT_LIBRARY_URL`]).
    pub library_url: Option<String>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            root: None,
            selection: fmf::Selection::default(),
            context_for: Vec::new(),
            provisioners: Vec::new(),
            reporters: Vec::new(),
            plugin_dirs: Vec::new(),
            workers: None,
            reruns: None,
            results_dir: None,
            platform: None,
            history: None,
            failure_budget: None,
            deadline: None,
            max_fail: None,
            progress: ProgressMode::default(),
            display: DisplayOptions::default(),
            signals: false,
            decisions: Arc::new(DefaultPolicy),
            continue_run: None,
            fmf_id: None,
            library_url: None,
        }
    }
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("root", &self.root)
            .field("selection", &self.selection)
            .field("context_for", &self.context_for)
            .field("provisioners", &self.provisioners)
            .field("reporters", &self.reporters)
            .field("results_dir", &self.results_dir)
            .finish_non_exhaustive()
    }
}

/// The most reruns a test may get (`--reruns`): more is a typo, not a
/// plan.
pub const MAX_RERUNS: u32 = 100;

/// A bad configuration file or value.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    root: Option<PathBuf>,
    plan: Option<String>,
    context: Option<Value>,
    context_for: Option<serde_yaml::Mapping>,
    filter: Option<OneOrMany>,
    test: Option<OneOrMany>,
    exclude: Option<OneOrMany>,
    provisioners: Option<Vec<Value>>,
    reporters: Option<Vec<Value>>,
    plugin_dirs: Option<Vec<PathBuf>>,
    workers: Option<usize>,
    reruns: Option<u32>,
    results: Option<PathBuf>,
    platform: Option<String>,
    history: Option<PathBuf>,
    failure_budget: Option<u32>,
    deadline: Option<Value>,
    max_fail: Option<u32>,
    fmf_id: Option<FmfIdEntry>,
    library_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FmfIdEntry {
    url: String,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    path: Option<String>,
}

fn plugin_entry(v: &Value) -> Result<PluginSpec, ConfigError> {
    match v {
        Value::String(s) => PluginSpec::parse(s).map_err(|e| ConfigError(e.to_string())),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, opts) = m
                .iter()
                .next()
                .ok_or_else(|| ConfigError("empty plugin entry".into()))?;
            let name = k
                .as_str()
                .ok_or_else(|| ConfigError("a plugin name must be a string".into()))?;
            let mut spec = PluginSpec::parse(name).map_err(|e| ConfigError(e.to_string()))?;
            match opts {
                Value::Mapping(o) => spec.options = o.clone(),
                Value::Null => {}
                _ => {
                    return Err(ConfigError(format!(
                        "options of plugin {name} must be a mapping"
                    )));
                }
            }
            Ok(spec)
        }
        _ => Err(ConfigError(
            "a plugin entry is NAME, \"NAME:K=V,...\" or {NAME: {K: V}}".into(),
        )),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

impl RunConfig {
    /// Reads a configuration file (relative paths in it are relative to
    /// the file's directory).
    pub fn from_file(path: &Path) -> Result<RunConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        let mut cfg = Self::from_yaml(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(x) = p.as_mut()
                && x.is_relative()
            {
                *x = base.join(&*x);
            }
        };
        fix(&mut cfg.root);
        fix(&mut cfg.results_dir);
        fix(&mut cfg.history);
        for d in &mut cfg.plugin_dirs {
            if d.is_relative() {
                *d = base.join(&*d);
            }
        }
        Ok(cfg)
    }

    /// Parses configuration text.
    pub fn from_yaml(text: &str) -> Result<RunConfig, ConfigError> {
        let f: ConfigFile = if text.trim().is_empty() {
            ConfigFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| ConfigError(e.to_string()))?
        };
        let context = context_value("context", f.context.as_ref())?;
        let mut context_for = Vec::new();
        for (k, v) in f.context_for.iter().flatten() {
            let platform = scalar_text(k);
            let key = format!("context-for: {platform}");
            context_for.push((platform, context_value(&key, Some(v))?));
        }
        let plugins = |v: Option<Vec<Value>>| -> Result<Vec<PluginSpec>, ConfigError> {
            v.unwrap_or_default().iter().map(plugin_entry).collect()
        };
        let deadline = match f.deadline {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(Duration::from_secs_f64(n.as_f64().unwrap_or(0.0))),
            Some(Value::String(s)) => Some(parse_deadline(&s)?),
            Some(_) => {
                return Err(ConfigError(
                    "deadline: expected seconds or a duration like 2h".into(),
                ));
            }
        };
        Ok(RunConfig {
            root: f.root,
            selection: fmf::Selection {
                plan: f.plan,
                context,
                filters: f.filter.map(OneOrMany::into_vec).unwrap_or_default(),
                names: f.test.map(OneOrMany::into_vec).unwrap_or_default(),
                excludes: f.exclude.map(OneOrMany::into_vec).unwrap_or_default(),
            },
            context_for,
            provisioners: plugins(f.provisioners)?,
            reporters: plugins(f.reporters)?,
            plugin_dirs: f.plugin_dirs.unwrap_or_default(),
            workers: f.workers,
            reruns: f.reruns,
            results_dir: f.results,
            platform: f.platform,
            history: f.history,
            failure_budget: f.failure_budget,
            deadline,
            max_fail: f.max_fail,
            progress: ProgressMode::Auto,
            display: DisplayOptions::default(),
            signals: false,
            decisions: Arc::new(DefaultPolicy),
            continue_run: None,
            fmf_id: f.fmf_id.map(|e| remote::FmfId {
                url: e.url,
                git_ref: e.git_ref,
                path: e.path,
            }),
            library_url: f.library_url,
        })
    }

    /// How remote trees and libraries are fetched for this run.
    pub fn remote_options(&self) -> remote::RemoteOptions {
        let mut options = remote::RemoteOptions::default();
        if let Some(url) = &self.library_url {
            options.library_url = url.clone();
        }
        options
    }

    /// Refuses values that cannot make a run: no workers, a failure
    /// budget of 0, more than [`MAX_RERUNS`] reruns, a deadline of 0, an
    /// empty platform name.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == Some(0) {
            return Err(ConfigError(
                "--workers (workers): must be at least 1".into(),
            ));
        }
        if self.failure_budget == Some(0) {
            return Err(ConfigError(
                "--failure-budget (failure-budget): must be at least 1".into(),
            ));
        }
        if let Some(n) = self.reruns.filter(|n| *n > MAX_RERUNS) {
            return Err(ConfigError(format!(
                "--reruns (reruns): {n} is more than {MAX_RERUNS}"
            )));
        }
        if self.deadline.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError(
                "--deadline (deadline): must be longer than 0".into(),
            ));
        }
        if self
            .platform
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            return Err(ConfigError(
                "--platform (platform): must not be empty".into(),
            ));
        }
        for (p, _) in &self.context_for {
            if p.trim().is_empty() {
                return Err(ConfigError(
                    "--context-for (context-for): the platform must not be empty".into(),
                ));
            }
        }
        if self.max_fail == Some(0) {
            return Err(ConfigError("max-fail: must be at least 1".into()));
        }
        Ok(())
    }

    /// Values set in `over` replace ours (lists when non-empty).
    pub fn overlay(mut self, over: RunConfig) -> RunConfig {
        macro_rules! opt {
            ($($f:ident),*) => {$( if over.$f.is_some() { self.$f = over.$f; } )*};
        }
        macro_rules! list {
            ($($f:ident),*) => {$( if !over.$f.is_empty() { self.$f = over.$f; } )*};
        }
        opt!(
            root,
            fmf_id,
            library_url,
            workers,
            reruns,
            results_dir,
            platform,
            history,
            failure_budget,
            deadline,
            max_fail
        );
        list!(provisioners, reporters, context_for);
        let (mine, theirs) = (&mut self.selection, over.selection);
        if theirs.plan.is_some() {
            mine.plan = theirs.plan;
        }
        if !theirs.context.is_empty() {
            mine.context = theirs.context;
        }
        macro_rules! sel_list {
            ($($f:ident),*) => {$( if !theirs.$f.is_empty() { mine.$f = theirs.$f; } )*};
        }
        sel_list!(filters, names, excludes);
        self.plugin_dirs.extend(over.plugin_dirs);
        self.progress = over.progress;
        self.display = over.display;
        self.signals = over.signals;
        self.decisions = over.decisions;
        if over.continue_run.is_some() {
            self.continue_run = over.continue_run;
        }
        self
    }
}

/// A context from the configuration file: a mapping (`{distro: f40, arch:
/// [x86_64]}`; a scalar value is split on commas like `-c`), a list of
/// `K=V` or one `K=V`.
fn context_value(key: &str, v: Option<&Value>) -> Result<fmf::Context, ConfigError> {
    let bad = |detail: String| ConfigError(format!("{key}: {detail}"));
    match v {
        None | Some(Value::Null) => Ok(fmf::Context::new()),
        Some(Value::Mapping(m)) => {
            let mut ctx = fmf::Context::new();
            for (k, v) in m {
                let values: Vec<String> = match v {
                    Value::Sequence(s) => s.iter().map(scalar_text).collect(),
                    other => scalar_text(other)
                        .split(',')
                        .map(|p| p.trim().to_string())
                        .collect(),
                };
                ctx.add(scalar_text(k), values);
            }
            Ok(ctx)
        }
        Some(Value::Sequence(s)) => {
            fmf::Context::from_args(s.iter().map(scalar_text)).map_err(|e| bad(e.to_string()))
        }
        Some(Value::String(s)) => fmf::Context::from_args([s]).map_err(|e| bad(e.to_string())),
        Some(_) => Err(bad("expected a mapping or a list of K=V".into())),
    }
}

/// Parses a duration as tmt does (`90`, `5m`, `1h 30m`, `2d`).
pub fn parse_deadline(text: &str) -> Result<Duration, ConfigError> {
    crate::fmf::parse_duration(text)
        .map_err(|e| ConfigError(format!("bad duration `{text}`: {}", e.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_says_what_flags_say() {
        let cfg = RunConfig::from_yaml(
            "plan: /plans/x\ncontext: {distro: fedora-40, arch: [x86_64, aarch64]}\nfilter: 'tag: a'\n\
             provisioners:\n  - podman: {image: img, max: 4}\n  - 'local:max=2'\nreporters: [junit]\n\
             workers: 3\nreruns: 2\nresults: out\ndeadline: 1h\nfailure-budget: 2\n",
        )
        .expect("parses");
        assert_eq!(
            cfg.selection.context,
            fmf::Context::from_args(["distro=fedora-40", "arch=x86_64,aarch64"]).expect("ctx")
        );
        assert_eq!(cfg.selection.filters, ["tag: a"]);
        assert_eq!(cfg.provisioners.len(), 2);
        assert_eq!(cfg.provisioners[0].name, "podman");
        assert!(cfg.provisioners[0].config_text().contains("max: 4"));
        assert_eq!(cfg.reporters[0].name, "junit");
        assert_eq!(cfg.deadline, Some(Duration::from_secs(3600)));
        let merged = cfg.overlay(RunConfig {
            reruns: Some(0),
            ..RunConfig::default()
        });
        assert_eq!(merged.reruns, Some(0));
        assert_eq!(merged.workers, Some(3));
        assert!(RunConfig::from_yaml("bogus: 1").is_err());
        let cfg = RunConfig::from_yaml(
            "fmf-id: {url: 'git://127.0.0.1/t', ref: v1, path: /fmf}\nlibrary-url: 'file:///m/{repository}'\n",
        )
        .expect("fmf id");
        let id = cfg.fmf_id.clone().expect("set");
        assert_eq!(
            (id.url.as_str(), id.git_ref.as_deref(), id.path.as_deref()),
            ("git://127.0.0.1/t", Some("v1"), Some("/fmf"))
        );
        assert_eq!(cfg.remote_options().library_url, "file:///m/{repository}");
    }
}
