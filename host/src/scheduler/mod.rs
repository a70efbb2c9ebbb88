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

pub use config::{ConfigError, RunConfig, parse_deadline};
pub use display::{ProgressMode, TerminalDisplay};
pub use driver::{
    ContinueRun, ExecSystem, Execution, FmfExecutor, RunError, RunReport, RunTest, SystemSetup,
    TestExecutor, execute,
};
pub use engine::{
    AttemptEnd, DefaultPolicy, FreeSystem, FreshAfterFailure, Policy, QueuedTest, SchedulePolicy,
};
pub use events::{Counts, EventSink, ReporterSink, RunEvent};
pub use plan::{plan_spec, queued_test, run_tests, test_spec};

use atex_plugin_api::time::UtcTime;

use crate::{
    backend::{Provisioner, Reporter},
    fmf,
    plugins::{PluginHost, PluginRegistry, PluginSpec, search_path},
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
    let root = cfg.root.clone().unwrap_or_else(|| PathBuf::from("."));
    let prov_specs = if cfg.provisioners.is_empty() {
        vec![PluginSpec::parse("local").map_err(|e| RunError::Config(e.to_string()))?]
    } else {
        cfg.provisioners.clone()
    };
    let platforms: Vec<Option<String>> = prov_specs
        .iter()
        .map(|s| s.platform().or_else(|| cfg.platform.clone()))
        .collect();
    let found = discover_per_platform(&root, &cfg, &platforms)?;
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
    let mut provisioners: Vec<Arc<dyn Provisioner>> = Vec::new();
    for (spec, platform) in prov_specs.iter().zip(&platforms) {
        let p = get(spec)?
            .new_provisioner(&host, &spec.config_text())
            .map_err(|e| RunError::Config(e.to_string()))?
            .with_platform(platform.clone());
        provisioners.push(Arc::new(p));
    }
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    for spec in &cfg.reporters {
        let r = get(spec)?
            .new_reporter(&host, &spec.config_text())
            .map_err(|e| RunError::Config(e.to_string()))?;
        reporters.push(Box::new(r));
    }

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
    };
    let tree_root = found[0].1.root.clone();
    let first_plan = plan::plan_spec(&found[0].1.plan);
    let mut tests = Vec::new();
    let mut plans = Vec::new();
    // The discoveries are consumed: their tests become run tests one by
    // one, without a second copy of every test's metadata.
    for (platform, d) in found {
        if let Some(p) = &platform {
            plans.push((p.clone(), plan::plan_spec(&d.plan)));
        }
        let mut these = plan::into_run_tests(d.tests, &history);
        for t in &mut these {
            t.platform = platform.clone();
        }
        tests.extend(these);
    }
    let mut options = crate::executor::SystemOptions::default();
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
    made.keep();
    execute(Execution {
        tests,
        provisioners,
        reporters,
        sinks: Vec::new(),
        executor: Arc::new(executor),
        policy,
        decisions: cfg.decisions.clone(),
        setup: None,
        results_dir,
        platform: cfg.platform.clone(),
        history,
        progress: cfg.progress,
        signals: cfg.signals,
        interrupts: None,
        plugin_cancel: Some(Arc::clone(&host.cancel)),
        run_id,
        continue_run: cfg.continue_run,
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
) -> Result<Vec<(Option<String>, fmf::Discovery)>, RunError> {
    let discover = |sel: &fmf::Selection| {
        fmf::discover(root, sel).map_err(|e| RunError::Config(e.to_string()))
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
        let mut out: Vec<(Option<String>, fmf::Discovery)> = Vec::new();
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
    if found.iter().all(|(_, d)| d.tests.is_empty()) {
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
