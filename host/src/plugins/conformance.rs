//! The plugin conformance suite behind `atex plugin check`.
//!
//! It exercises a plugin library through the same adapters a real run uses
//! and reports one [`CheckOutcome`] per check. It is meant for third-party
//! authors as much as for our own plugins: anything a run relies on from a
//! provisioner or reporter should be a check here.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{
    adapter::PluginHost,
    load::{LoadedPlugin, PluginLoadError, load_plugin},
};
use crate::{
    Status,
    backend::{Provisioner, Remote, ReportedResult, Reporter, RunSummary},
    executor::command_for,
};

/// How to run the suite.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Configuration passed to the plugin (YAML/JSON text).
    pub config: String,
    /// How long to wait for one remote.
    pub remote_timeout: Duration,
    /// Where reporters write; a fresh temporary directory when `None`.
    pub work_dir: Option<PathBuf>,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            config: String::new(),
            remote_timeout: Duration::from_secs(180),
            work_dir: None,
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckOutcome {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// Why it failed, or a detail worth showing.
    pub detail: String,
}

/// Why a check failed, for its outcome line.
#[derive(Debug)]
struct Failed(String);

impl From<String> for Failed {
    fn from(s: String) -> Self {
        Failed(s)
    }
}

impl From<&str> for Failed {
    fn from(s: &str) -> Self {
        Failed(s.to_string())
    }
}

/// A check's verdict: what passed, or why it failed.
type Check = Result<String, Failed>;

struct Suite<'a> {
    outcomes: Vec<CheckOutcome>,
    report: &'a mut dyn FnMut(&CheckOutcome),
}

impl Suite<'_> {
    fn record<E: Into<Failed>>(&mut self, name: &str, result: Result<String, E>) -> bool {
        let (passed, detail) = match result.map_err(Into::into) {
            Ok(d) => (true, d),
            Err(Failed(d)) => (false, d),
        };
        let outcome = CheckOutcome {
            name: name.to_string(),
            passed,
            detail,
        };
        (self.report)(&outcome);
        self.outcomes.push(outcome);
        passed
    }
}

/// Loads `path` and runs every check that applies to it. `report` is called
/// as each check finishes. Fails only when the file cannot be loaded.
pub fn check_library(
    path: &Path,
    options: &CheckOptions,
    report: &mut dyn FnMut(&CheckOutcome),
) -> Result<Vec<CheckOutcome>, PluginLoadError> {
    let plugin = load_plugin(path)?;
    let mut suite = Suite {
        outcomes: Vec::new(),
        report,
    };
    let d = plugin.description();
    suite.record(
        "loads and describes itself",
        if d.name.trim().is_empty() {
            Err(Failed::from("the plugin name is empty"))
        } else if d.kinds.is_empty() {
            Err("the plugin provides neither a provisioner nor a reporter".into())
        } else {
            Ok(format!(
                "{} {} ({}), api {}",
                d.name,
                d.version,
                d.kinds.join("+"),
                d.api_version
            ))
        },
    );
    let scratch = tempfile::Builder::new()
        .prefix("atex-plugin-check-")
        .tempdir();
    let work_dir = match (&options.work_dir, &scratch) {
        (Some(dir), _) => dir.clone(),
        (None, Ok(tmp)) => tmp.path().to_path_buf(),
        (None, Err(e)) => {
            suite.record("scratch directory", Err(e.to_string()));
            return Ok(suite.outcomes);
        }
    };
    let host = PluginHost::new("atex-plugin-check", &work_dir);
    if plugin.is_provisioner() {
        check_provisioner(&mut suite, &plugin, &host, options);
    }
    if plugin.is_reporter() {
        check_reporter(&mut suite, &plugin, &host, options, &work_dir);
    }
    Ok(suite.outcomes)
}

/// Bad configurations every plugin must refuse with an error.
const BAD_CONFIGS: &[(&str, &str)] = &[
    ("invalid YAML", "{[}"),
    ("a list instead of a mapping", "- a\n- b\n"),
    ("an unknown option", "atex_conformance_no_such_option: 1\n"),
];

fn check_bad_configs(
    suite: &mut Suite<'_>,
    construct: &dyn Fn(&str) -> Result<(), crate::backend::BackendError>,
) {
    for (what, text) in BAD_CONFIGS {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| construct(text)));
        suite.record(
            &format!("bad configuration ({what}) is an error"),
            match result {
                Ok(Err(e)) if e.panicked => Err(format!("the plugin panicked: {e}")),
                Ok(Err(e)) => Ok(e.to_string()),
                Ok(Ok(())) => Err("the plugin accepted it".into()),
                Err(_) => Err("the host adapter panicked".into()),
            },
        );
    }
}

fn run_on(remote: &dyn Remote, token: &str) -> Check {
    let conn = remote.connection().map_err(|e| e.to_string())?;
    let script = format!("echo {token}; echo err >&2; exit 3");
    let out = command_for(&conn, &["bash", "-c", script.as_str()])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run a command through {conn}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() != Some(3) {
        return Err(format!(
            "through {conn}: expected exit code 3, got {:?} (stderr: {})",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    if stdout.trim() != token {
        return Err(format!("through {conn}: expected output {token:?}, got {stdout:?}").into());
    }
    Ok(format!("{} via {conn}", remote.name()))
}

fn check_provisioner(
    suite: &mut Suite<'_>,
    plugin: &LoadedPlugin,
    host: &PluginHost,
    options: &CheckOptions,
) {
    check_bad_configs(suite, &|text| {
        plugin.new_provisioner(host, text).map(|_| ())
    });
    let prov = match plugin.new_provisioner(host, &options.config) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            suite.record(
                "provisioner constructs with the given configuration",
                Err(e.to_string()),
            );
            return;
        }
    };
    suite.record(
        "provisioner constructs with the given configuration",
        Check::Ok(String::new()),
    );
    if !suite.record(
        "start",
        prov.start()
            .map(|()| String::new())
            .map_err(|e| e.to_string()),
    ) {
        let _ = prov.stop();
        return;
    }
    let timeout = options.remote_timeout;

    // Two remotes at once, each reachable through its connection data.
    prov.provision(2);
    let mut remotes: Vec<Box<dyn Remote>> = Vec::new();
    for i in 0..2 {
        match prov.get_remote(timeout) {
            Ok(Some(r)) => remotes.push(r),
            Ok(None) => {
                suite.record(
                    &format!("provision(2): remote {}", i + 1),
                    Err(format!("none within {timeout:?}")),
                );
            }
            Err(e) => {
                suite.record(
                    &format!("provision(2): remote {}", i + 1),
                    Err(e.to_string()),
                );
            }
        }
    }
    if remotes.len() == 2 {
        let names: BTreeSet<String> = remotes.iter().map(|r| r.name()).collect();
        suite.record(
            "provision(2) gives two distinct remotes",
            if names.len() == 2 {
                Ok(names.into_iter().collect::<Vec<_>>().join(", "))
            } else {
                Err(Failed::from("names are not distinct"))
            },
        );
    }
    for (i, r) in remotes.iter().enumerate() {
        suite.record(
            &format!("run a command on remote {}", i + 1),
            run_on(r.as_ref(), &format!("atex-check-{i}")),
        );
        suite.record(
            &format!("remote {} is alive while in use", i + 1),
            match r.alive() {
                Ok(true) => Ok(String::new()),
                Ok(false) => Err("alive() is false".into()),
                Err(e) => Err(e.to_string()),
            },
        );
    }
    for (i, r) in remotes.iter().enumerate() {
        let first = r.release();
        let second = r.release();
        suite.record(
            &format!("release remote {} twice (idempotent)", i + 1),
            match (first, second) {
                (Ok(()), Ok(())) => Ok(String::new()),
                (Err(e), _) => Err(format!("first release: {e}")),
                (_, Err(e)) => Err(format!("second release: {e}")),
            },
        );
        suite.record(
            &format!("remote {} is not alive after release", i + 1),
            match r.alive() {
                Ok(false) | Err(_) => Ok(String::new()),
                Ok(true) => Err(Failed::from("alive() is still true")),
            },
        );
    }
    drop(remotes);

    // Eight threads asking, using and releasing at once.
    let outcomes: Vec<Check> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let prov = Arc::clone(&prov);
                scope.spawn(move || -> Check {
                    prov.provision(1);
                    let remote = prov
                        .get_remote(timeout)
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| format!("thread {i}: no remote within {timeout:?}"))?;
                    let ran = run_on(remote.as_ref(), &format!("atex-thread-{i}"));
                    remote.release().map_err(|e| e.to_string())?;
                    ran
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    let failures: Vec<String> = outcomes
        .into_iter()
        .filter_map(|o| o.err().map(|Failed(f)| f))
        .collect();
    // Nothing is pending any more; clear() must still be callable.
    prov.clear();
    suite.record(
        "8 threads provision, use and release at once",
        if failures.is_empty() {
            Ok(String::new())
        } else {
            Err(failures.join("; "))
        },
    );

    // stop() releases what is still handed out.
    prov.provision(1);
    let kept = prov.get_remote(timeout);
    let stopped = prov.stop();
    suite.record(
        "stop releases remotes still in use",
        match (kept, stopped) {
            (_, Err(e)) => Err(format!("stop: {e}")),
            (Ok(Some(r)), Ok(())) => match r.alive() {
                Ok(true) => Err(format!("{} is still alive after stop", r.name())),
                _ => r
                    .release()
                    .map(|()| "and release after stop is still fine".into())
                    .map_err(|e| format!("release after stop: {e}")),
            },
            (Ok(None), Ok(())) => Err(format!("no remote within {timeout:?}")),
            (Err(e), Ok(())) => Err(e.to_string()),
        },
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// Synthetic results covering what reporters must handle.
fn synthetic_results(results_dir: &Path) -> Vec<ReportedResult> {
    let base = ReportedResult {
        platform: "conformance".into(),
        test: "/check/pass".into(),
        subtest: None,
        status: Some(Status::Pass),
        note: None,
        files: Vec::new(),
        results_dir: results_dir.to_path_buf(),
        started_unix_ms: now_ms(),
        duration: Duration::from_millis(1500),
        attempt: 1,
        final_attempt: true,
        remote: "conformance-1".into(),
        extra: serde_json::Map::new(),
    };
    let with = |f: &dyn Fn(&mut ReportedResult)| {
        let mut r = base.clone();
        f(&mut r);
        r
    };
    let output = "files/conformance/check/fail/output.txt";
    if let Some(parent) = results_dir.join(output).parent() {
        let _ = std::fs::create_dir_all(parent);
        let _ = std::fs::write(
            results_dir.join(output),
            "line 1\n\x1b[31mred\x1b[0m ]]> <&>\n",
        );
    }
    vec![
        base.clone(),
        with(&|r| {
            r.test = "/check/fail".into();
            r.status = Some(Status::parse("fail"));
            r.note = Some("exit code 1 <&>".into());
            r.files = vec![output.into()];
        }),
        with(&|r| {
            r.test = "/check/fail".into();
            r.subtest = Some("sub/one".into());
            r.status = Some(Status::parse("pass"));
        }),
        with(&|r| {
            r.test = "/check/flaky".into();
            r.status = Some(Status::parse("fail"));
            r.final_attempt = false;
        }),
        with(&|r| {
            r.test = "/check/flaky".into();
            r.attempt = 2;
        }),
        with(&|r| {
            r.test = "/check/error".into();
            r.status = Some(Status::parse("error"));
            r.note = Some("duration exceeded \u{0}\u{7}".into());
        }),
        with(&|r| {
            r.test = "/check/infra".into();
            r.status = Some(Status::parse("infra"));
        }),
        with(&|r| {
            r.test = "/check/skip".into();
            r.status = Some(Status::parse("skip"));
        }),
        with(&|r| {
            r.test = "/check/custom".into();
            r.status = Some(Status::parse("weird-custom-status"));
        }),
    ]
}

fn check_reporter(
    suite: &mut Suite<'_>,
    plugin: &LoadedPlugin,
    host: &PluginHost,
    options: &CheckOptions,
    work_dir: &Path,
) {
    check_bad_configs(suite, &|text| plugin.new_reporter(host, text).map(|_| ()));
    let mut reporter = match plugin.new_reporter(host, &options.config) {
        Ok(r) => r,
        Err(e) => {
            suite.record(
                "reporter constructs with the given configuration",
                Err(e.to_string()),
            );
            return;
        }
    };
    suite.record(
        "reporter constructs with the given configuration",
        Check::Ok(String::new()),
    );
    let results = synthetic_results(work_dir);
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| {
            reporter
                .on_result(r)
                .err()
                .map(|e| format!("{}: {e}", r.test))
        })
        .collect();
    suite.record(
        "on_result accepts pass, fail, error, infra, skip, custom, sub-results and reruns",
        if failures.is_empty() {
            Ok(format!("{} results", results.len()))
        } else {
            Err(failures.join("; "))
        },
    );
    let summary = RunSummary {
        run_id: "atex-plugin-check".into(),
        results_dir: work_dir.to_path_buf(),
        started_unix_ms: now_ms(),
        duration: Duration::from_secs(3),
        tests_total: 7,
        counts: vec![
            (Status::parse("error"), 1),
            (Status::parse("fail"), 1),
            (Status::parse("infra"), 1),
            (Status::parse("pass"), 2),
            (Status::parse("skip"), 1),
            (Status::parse("weird-custom-status"), 1),
        ],
        interrupted: false,
        extra: serde_json::Map::new(),
    };
    suite.record(
        "finish writes what it says it wrote",
        match reporter.finish(&summary) {
            Err(e) => Err(e.to_string()),
            Ok(paths) => {
                let missing: Vec<String> = paths
                    .iter()
                    .filter(|p| std::fs::metadata(p).map(|m| m.len() == 0).unwrap_or(true))
                    .map(|p| p.display().to_string())
                    .collect();
                if missing.is_empty() {
                    Ok(paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "))
                } else {
                    Err(format!("missing or empty: {}", missing.join(", ")))
                }
            }
        },
    );
}
