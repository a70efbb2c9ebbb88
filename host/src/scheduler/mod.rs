//! The free-worker scheduler: a queue of tests and a pool of systems;
//! whenever a system is free it takes the next test.
//!
//! - [`engine`]: the decisions (ordering, how many systems to ask each
//!   provisioner for, reruns, destructive tests, broken systems, failure
//!   budgets, deadlines, interrupts) as a state machine without threads or
//!   clock; its module documentation lists every policy;
//! - [`execute`] runs the engine for real (the driver: worker threads for
//!   reservations, setups, tests and releases, a results thread, signals)
//!   and reports what happens as [`RunEvent`]s to [`EventSink`]s;
//! - [`TerminalDisplay`]: the live progress bar or plain lines, a sink;
//! - [`RunConfig`]: what `atex run` does, from flags and/or a YAML file;
//! - [`run_tests`] and [`plan_spec`]: discovered FMF tests and plans to
//!   scheduler and executor types.
//!
//! [`run`] is what `atex run` does; a toolbox user who wants something
//! else builds an [`Execution`] (own tests, own provisioners implementing
//! [`crate::backend::Provisioner`], own executor, own event sinks) and
//! calls [`execute`].

mod config;
mod display;
mod driver;
mod early;
pub mod engine;
mod events;
mod packed;
mod plan;
#[doc(hidden)]
pub mod sim;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

pub use config::{ConfigError, MAX_RERUNS, RunConfig, parse_deadline};
pub use display::{
    ColorChoice, DisplayOptions, ProgressMode, StatusLevel, StderrLog, TerminalDisplay,
};
pub use driver::{
    ContinueRun, ExecSystem, Execution, FmfExecutor, RunError, RunReport, RunTest, SystemSetup,
    TestExecutor, execute,
};
pub use engine::{
    AttemptEnd, DefaultPolicy, FreeSystem, FreshAfterFailure, Policy, QueuedTest, SchedulePolicy,
};
pub use events::{Counts, EventSink, ReporterSink, RunEvent};
pub use packed::TestList;
pub use plan::{plan_spec, queued_test, run_tests, suite_packages, test_spec};

use atex_plugin_api::time::UtcTime;

use crate::{
    backend::{Provisioner, Reporter},
    fmf,
    plugins::{PluginHost, PluginRegistry, PluginSpec, search_path},
    remote,
    results::TimingHistory,
};

/// A run identifier: UTC date and time plus the process id, e.g.
/// `20260512-101530-4242`.
pub fn new_run_id() -> String {
    let t = UtcTime::from_system_time(SystemTime::now());
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        std::process::id()
    )
}

/// Where the timing history goes by default: beside the results directory.
pub fn default_history_path(results_dir: &Path) -> PathBuf {
    let parent = results_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(".atex-history.json")
}

/// `atex run`: discover the tests, load the plugins, run everything, store
/// the results, tell the reporters.
pub fn run(cfg: RunConfig) -> Result<RunReport, RunError> {
    cfg.validate()
        .map_err(|e| RunError::Config(e.to_string()))?;
    let prov_specs = if cfg.provisioners.is_empty() {
        vec![PluginSpec::parse("local").map_err(|e| RunError::Config(e.to_string()))?]
    } else {
        cfg.provisioners.clone()
    };
    let platforms: Vec<Option<String>> = prov_specs
        .iter()
        .map(|s| s.platform().or_else(|| cfg.platform.clone()))
        .collect();
    // Discovery (with its fetches of remote trees and libraries) runs
    // beside the loading of the plugins and the making of the
    // provisioners and reporters.
    let (fetching_tx, fetching) = crossbeam_channel::bounded::<()>(1);
    let discovering = {
        let cfg = cfg.clone();
        let platforms = platforms.clone();
        std::thread::Builder::new()
            .name("atex-discover".into())
            .spawn(move || discover_run(&cfg, &platforms, &fetching_tx))
            .map_err(|e| RunError::Thread(format!("cannot start a thread: {e}")))?
    };
    let run_id = new_run_id();
    let results_dir = cfg
        .results_dir
        .clone()
        .unwrap_or_else(|| Path::new("atex-results").join(&run_id));
    let holds_results = results_dir.join("results.jsonl").exists();
    match (cfg.continue_run, holds_results) {
        (None, true) => {
            return Err(RunError::Config(format!(
                "{}: already holds results (choose another --results directory, or --resume it)",
                results_dir.display()
            )));
        }
        (Some(_), false) => {
            return Err(RunError::Config(format!(
                "{}: holds no results of an earlier run to continue",
                results_dir.display()
            )));
        }
        _ => {}
    }
    let history_path = cfg
        .history
        .clone()
        .unwrap_or_else(|| default_history_path(&results_dir));
    let history = TimingHistory::load(&history_path);

    // Reporters check at creation that they can write into the results
    // directory, so it is made now; a configuration error below removes
    // what was made, so a failed start leaves nothing behind.
    let made = NewDirGuard::create(&results_dir)?;
    let registry = PluginRegistry::discover(&search_path(&cfg.plugin_dirs));
    let host = PluginHost::new(run_id.clone(), results_dir.clone());
    let get = |spec: &PluginSpec| {
        registry.get(&spec.name).ok_or_else(|| {
            let known: Vec<&str> = registry.plugins().iter().map(|p| p.name()).collect();
            RunError::Config(format!(
                "no plugin named `{}` (found: {})",
                spec.name,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
        })
    };
    let join = |h: std::thread::JoinHandle<Result<Discovered, RunError>>| {
        h.join()
            .map_err(|_| RunError::Thread("discovery panicked".into()))?
    };
    // `prepare: suite` needs to know the tests before the provisioner is
    // made: then discovery is waited for here.
    let mut discovering = Some(discovering);
    let mut discovered = None;
    if prov_specs.iter().any(PluginSpec::wants_suite_packages)
        && let Some(h) = discovering.take()
    {
        discovered = Some(join(h)?);
    }
    let mut provisioners: Vec<Arc<dyn Provisioner>> = Vec::new();
    for (spec, platform) in prov_specs.iter().zip(&platforms) {
        // `prepare: suite`: what this provisioner's tests need, baked into
        // its image before the first system starts.
        let mut spec = spec.clone();
        let tests = discovered.as_ref().and_then(|d: &Discovered| {
            d.found
                .iter()
                .find(|(p, _)| p.is_none() || p == platform)
                .map(|(_, f)| f)
        });
        if spec.wants_suite_packages()
            && let Some(f) = tests
        {
            spec.expand_suite_packages(&f.packages);
        }
        let p = get(&spec)?
            .new_provisioner(&host, &spec.config_text())
            .map_err(|e| RunError::Config(e.to_string()))?
            .with_platform(platform.clone());
        provisioners.push(Arc::new(p));
    }
    // With repositories to fetch (discovery says so once it has read the
    // plan, or ends without), each provisioner starts and brings up its
    // first system meanwhile.
    let mut early = early::StopUnlessRun(Vec::new());
    if fetching.recv().is_ok() {
        for p in &mut provisioners {
            let started: Arc<dyn Provisioner> = early::EarlyStart::begin(Arc::clone(p));
            early.0.push(Arc::clone(&started));
            *p = started;
        }
    }
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    for spec in &cfg.reporters {
        let r = get(spec)?
            .new_reporter(&host, &spec.config_text())
            .map_err(|e| RunError::Config(e.to_string()))?;
        reporters.push(Box::new(r));
    }
    let Discovered {
        found,
        uploads,
        sources,
    } = match (discovered, discovering) {
        (Some(d), _) => d,
        (None, Some(h)) => join(h)?,
        (None, None) => return Err(RunError::Thread("discovery was not started".into())),
    };

    let workers = cfg.workers.unwrap_or_else(|| {
        let maxes: Option<Vec<u32>> = provisioners.iter().map(|p| p.max_remotes()).collect();
        match maxes {
            Some(m) if !m.is_empty() => m.iter().sum::<u32>() as usize,
            _ => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(4),
        }
    });
    let defaults = Policy::default();
    let policy = Policy {
        workers,
        reruns: cfg.reruns.unwrap_or(0),
        failure_budget: cfg.failure_budget.unwrap_or(defaults.failure_budget),
        max_requeues: defaults.max_requeues,
        deadline: cfg.deadline,
        max_fail: cfg.max_fail,
    };
    let tree_root = found[0].1.root.clone();
    let first_plan = plan::plan_spec(&found[0].1.plan);
    let mut tests = TestList::new();
    let mut plans = Vec::new();
    for (platform, mut f) in found {
        if let Some(name) = &platform {
            plans.push((name.clone(), plan::plan_spec(&f.plan)));
        }
        f.tests.set_platform(platform.as_deref());
        for q in f.tests.queued_mut() {
            q.expected = history.expected(&q.name);
        }
        tests.append(f.tests);
    }
    let mut options = crate::executor::SystemOptions {
        extra_uploads: uploads.into_iter().map(|u| (u.dest, u.dir)).collect(),
        ..crate::executor::SystemOptions::default()
    };
    // Results and history kept inside the tree are not tests: never
    // upload them (a later run would carry every earlier one along).
    for path in [&results_dir, &history_path] {
        if let Some(rel) = inside(&tree_root, path) {
            options.upload_exclude.push(rel);
        }
    }
    let executor = FmfExecutor {
        tree_root,
        plan: first_plan,
        plans,
        options,
    };
    early.disarm();
    let results_dir_kept = results_dir.clone();
    // The display with every option the command line has; the driver's
    // own (mode only) is not added.
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if cfg.progress != ProgressMode::Quiet {
        sinks.push(Box::new(TerminalDisplay::with_options(
            cfg.progress,
            cfg.display,
        )));
    }
    let result = execute(Execution {
        tests,
        provisioners,
        reporters,
        sinks,
        executor: Arc::new(executor),
        policy,
        decisions: cfg.decisions.clone(),
        setup: None,
        results_dir,
        platform: cfg.platform.clone(),
        history,
        progress: ProgressMode::Quiet,
        signals: cfg.signals,
        interrupts: None,
        plugin_cancel: Some(Arc::clone(&host.cancel)),
        run_id,
        continue_run: cfg.continue_run,
    });
    // A run none of whose provisioners started ran nothing: like a
    // configuration error, it leaves no results directory behind.
    if !matches!(result, Err(RunError::NoProvisioner(_))) {
        made.keep();
    }
    let report = result?;
    // The commits of the fetched trees, so the run can be reproduced.
    if let Err(e) = remote::record_sources(&results_dir_kept, &sources) {
        tracing::warn!(
            "cannot record the fetched trees in {}/summary.json: {e}",
            results_dir_kept.display()
        );
    }
    Ok(report)
}

/// What [`discover_run`] found: per platform, and the remote trees and
/// libraries to upload and record (the same for every platform).
struct Discovered {
    found: Vec<(Option<String>, plan::Found)>,
    uploads: Vec<remote::Upload>,
    sources: Vec<remote::Source>,
}

/// Fetches the `--url` tree when given, then discovers per platform;
/// sends on `fetching` before it fetches anything.
fn discover_run(
    cfg: &RunConfig,
    platforms: &[Option<String>],
    fetching: &crossbeam_channel::Sender<()>,
) -> Result<Discovered, RunError> {
    let options = cfg.remote_options();
    let mut sources = Vec::new();
    let root = match &cfg.fmf_id {
        Some(id) => {
            let _ = fetching.try_send(());
            let (root, source) =
                remote::fetch_root(id, &options).map_err(|e| RunError::Config(e.to_string()))?;
            sources.push(source);
            root
        }
        None => cfg.root.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    let found = discover_per_platform(&root, cfg, platforms, &options, fetching)?;
    let mut uploads: Vec<remote::Upload> = Vec::new();
    for (_, p) in &found {
        for s in &p.sources {
            if !sources.contains(s) {
                sources.push(s.clone());
            }
        }
        for u in &p.uploads {
            if !uploads.iter().any(|x| x.dest == u.dest) {
                uploads.push(u.clone());
            }
        }
    }
    Ok(Discovered {
        found,
        uploads,
        sources,
    })
}

/// The outermost directory a run created for its results, removed again
/// unless [`NewDirGuard::keep`] is called.
struct NewDirGuard {
    created: Option<PathBuf>,
}

impl NewDirGuard {
    fn create(dir: &Path) -> Result<Self, RunError> {
        let mut outermost = None;
        let mut cur = Some(dir);
        while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            outermost = Some(d.to_path_buf());
            cur = d.parent();
        }
        std::fs::create_dir_all(dir).map_err(|error| RunError::Io {
            path: dir.to_path_buf(),
            error,
        })?;
        Ok(NewDirGuard { created: outermost })
    }

    fn keep(mut self) {
        self.created = None;
    }
}

impl Drop for NewDirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.created.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Discovers the tests once, or, with `context_for`, once per platform
/// with that platform's context (the same context is discovered once).
/// Each discovery comes with the platform it is for (`None`: every one).
fn discover_per_platform(
    root: &Path,
    cfg: &RunConfig,
    platforms: &[Option<String>],
    options: &remote::RemoteOptions,
    fetching: &crossbeam_channel::Sender<()>,
) -> Result<Vec<(Option<String>, plan::Found)>, RunError> {
    let discover = |sel: &fmf::Selection| match plan::Found::stream(root, sel) {
        Some(found) => Ok(found),
        None => remote::discover_notify(root, sel, options, || {
            let _ = fetching.try_send(());
        })
        .map(plan::Found::from_prepared)
        .map_err(|e| RunError::Config(e.to_string())),
    };
    let found = if cfg.context_for.is_empty() {
        vec![(None, discover(&cfg.selection)?)]
    } else {
        for (p, _) in &cfg.context_for {
            if !platforms.iter().any(|q| q.as_deref() == Some(p)) {
                return Err(RunError::Config(format!(
                    "context for platform {p}: no provisioner has that platform (give one `platform={p}`)"
                )));
            }
        }
        if platforms.iter().any(Option::is_none) {
            return Err(RunError::Config(
                "platform contexts need every provisioner to name its platform (`platform=NAME`, or --platform)"
                    .into(),
            ));
        }
        let mut distinct: Vec<&str> = Vec::new();
        for p in platforms.iter().flatten() {
            if !distinct.contains(&p.as_str()) {
                distinct.push(p);
            }
        }
        // Each distinct context once, by its index in `out`.
        let mut seen: Vec<(fmf::Context, usize)> = Vec::new();
        let mut out: Vec<(Option<String>, plan::Found)> = Vec::new();
        for p in distinct {
            let mut sel = cfg.selection.clone();
            for (_, extra) in cfg.context_for.iter().filter(|(q, _)| q == p) {
                for (dim, values) in extra.iter() {
                    sel.context
                        .set(dim, values.iter().map(|v| v.as_str().to_string()));
                }
            }
            let d = match seen.iter().find(|(c, _)| *c == sel.context) {
                Some((_, i)) => out[*i].1.clone(),
                None => {
                    let d = discover(&sel)?;
                    seen.push((sel.context.clone(), out.len()));
                    d
                }
            };
            out.push((Some(p.to_string()), d));
        }
        out
    };
    if found.iter().all(|(_, f)| f.tests.is_empty()) {
        return Err(RunError::Config(format!(
            "no tests selected in {}",
            found[0].1.root.display()
        )));
    }
    Ok(found)
}

/// `path` relative to `root` when it lies inside it (both made absolute;
/// `path` need not exist yet).
fn inside(root: &Path, path: &Path) -> Option<String> {
    let root = std::fs::canonicalize(root).ok()?;
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    // The deepest existing ancestor, canonicalised, plus the rest.
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_os_string());
        existing = existing.parent()?;
    }
    let mut full = std::fs::canonicalize(existing).ok()?;
    for part in rest.iter().rev() {
        full.push(part);
    }
    let rel = full.strip_prefix(&root).ok()?;
    let rel = rel.to_str()?;
    (!rel.is_empty()).then(|| rel.to_string())
}
