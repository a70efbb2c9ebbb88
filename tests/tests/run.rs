//! `atex run` and the scheduler's driver: in-process fakes for the
//! provisioner and the executor (no plugin, no executor needed), then the
//! real binary on the `local` provisioner: results, reruns, exit codes,
//! config files, and SIGINT/SIGTERM in the middle of a run.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex, atomic::Ordering},
    thread,
    time::{Duration, Instant},
};

use atex::{
    backend::{
        BackendError, Connection, Provisioner, Remote, ReportedResult, Reporter, RunSummary,
    },
    executor::{CancelToken, ExecError, TestOutcome, TestSpec},
    results::TimingHistory,
    scheduler::{
        ExecSystem, Execution, Policy, ProgressMode, QueuedTest, RunTest, TestExecutor, execute,
    },
};
use atex_integration_tests::{TestDir, atex_bin, atex_in, plugin_dir_with, stderr};

// ---------------------------------------------------------------- fakes

#[derive(Default)]
struct ProvState {
    pending: u32,
    active: u32,
    made: u32,
    released: u32,
    stopped: bool,
}

struct FakeProvisioner {
    name: String,
    max: u32,
    fail: bool,
    state: Arc<Mutex<ProvState>>,
}

impl FakeProvisioner {
    fn new(name: &str, max: u32) -> Arc<Self> {
        Arc::new(FakeProvisioner {
            name: name.into(),
            max,
            fail: false,
            state: Arc::default(),
        })
    }
}

struct FakeRemote {
    name: String,
    broken: bool,
    released: std::sync::atomic::AtomicBool,
    state: Arc<Mutex<ProvState>>,
}

impl Remote for FakeRemote {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn platform(&self) -> String {
        "fake".into()
    }
    fn connection(&self) -> Result<Connection, BackendError> {
        if self.broken {
            Ok(Connection::Command(vec!["broken".into()]))
        } else {
            Ok(Connection::Local)
        }
    }
    fn alive(&self) -> Result<bool, BackendError> {
        Ok(true)
    }
    fn release(&self) -> Result<(), BackendError> {
        if !self.released.swap(true, Ordering::SeqCst) {
            let mut s = self.state.lock().expect("lock");
            s.active -= 1;
            s.released += 1;
        }
        Ok(())
    }
}

impl Provisioner for FakeProvisioner {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn start(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn provision(&self, count: u32) {
        let mut s = self.state.lock().expect("lock");
        s.pending = s.pending.saturating_add(count);
    }
    fn get_remote(&self, timeout: Duration) -> Result<Option<Box<dyn Remote>>, BackendError> {
        let deadline = Instant::now() + timeout.min(Duration::from_secs(1));
        loop {
            {
                let mut s = self.state.lock().expect("lock");
                if s.pending > 0 && s.active < self.max {
                    s.pending -= 1;
                    s.active += 1;
                    s.made += 1;
                    return Ok(Some(Box::new(FakeRemote {
                        name: format!("{}-{}", self.name, s.made),
                        broken: self.fail,
                        released: false.into(),
                        state: Arc::clone(&self.state),
                    })));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    fn clear(&self) {
        self.state.lock().expect("lock").pending = 0;
    }
    fn max_remotes(&self) -> Option<u32> {
        Some(self.max)
    }
    fn stop(&self) -> Result<(), BackendError> {
        self.state.lock().expect("lock").stopped = true;
        Ok(())
    }
}

/// Tests: name -> (milliseconds, statuses of successive attempts).
struct FakeExecutor {
    plan: HashMap<String, (u64, Vec<&'static str>)>,
    runs: Mutex<HashMap<String, usize>>,
}

struct FakeSystem {
    exec: Arc<FakeExecutor>,
}

struct FakeExec(Arc<FakeExecutor>);

impl TestExecutor for FakeExec {
    fn open(
        &self,
        remote: &str,
        connection: Connection,
        _: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError> {
        if connection != Connection::Local {
            return Err(ExecError::Setup {
                system: remote.into(),
                detail: "cannot set up".into(),
            });
        }
        Ok(Box::new(FakeSystem {
            exec: Arc::clone(&self.0),
        }))
    }
}

impl ExecSystem for FakeSystem {
    fn run_test(
        &mut self,
        test: &TestSpec,
        artifacts: &Path,
        _: &[(String, String)],
        cancel: &CancelToken,
    ) -> Result<TestOutcome, ExecError> {
        let (ms, statuses) = self.exec.plan[&test.name].clone();
        let n = {
            let mut runs = self.exec.runs.lock().expect("lock");
            let e = runs.entry(test.name.clone()).or_default();
            *e += 1;
            *e - 1
        };
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(ms) {
            if cancel.is_cancelled() {
                return Err(ExecError::Cancelled {
                    system: "fake".into(),
                });
            }
            thread::sleep(Duration::from_millis(5));
        }
        let status = statuses[n.min(statuses.len() - 1)];
        fs::create_dir_all(artifacts.join("files")).expect("mkdir");
        fs::write(
            artifacts.join("files/output.txt"),
            format!("{} attempt {}\n", test.name, n + 1),
        )
        .expect("write");
        fs::write(
            artifacts.join("results"),
            format!("{{\"status\": \"{status}\", \"files\": [\"output.txt\"]}}\n"),
        )
        .expect("write");
        Ok(TestOutcome {
            exit_code: Some(i32::from(status != "pass")),
            status: status.into(),
            note: None,
            duration: t0.elapsed(),
            reboots: 0,
            system_lost: false,
            abort_run: false,
            reason: Some(format!("exit code {}", i32::from(status != "pass"))),
        })
    }
    fn close(self: Box<Self>) {}
}

#[derive(Default)]
struct Seen {
    results: Vec<ReportedResult>,
    summary: Option<RunSummary>,
}

struct FakeReporter(Arc<Mutex<Seen>>);

impl Reporter for FakeReporter {
    fn name(&self) -> String {
        "fake".into()
    }
    fn on_result(&mut self, result: &ReportedResult) -> Result<(), BackendError> {
        self.0.lock().expect("lock").results.push(result.clone());
        Ok(())
    }
    fn finish(&mut self, summary: &RunSummary) -> Result<Vec<PathBuf>, BackendError> {
        self.0.lock().expect("lock").summary = Some(summary.clone());
        Ok(Vec::new())
    }
}

fn spec(name: &str) -> TestSpec {
    TestSpec {
        name: name.into(),
        rel_dir: ".".into(),
        script: "true".into(),
        duration: Duration::from_secs(60),
        environment: Vec::new(),
        require: Vec::new(),
        recommend: Vec::new(),
        tty: false,
        metadata: serde_json::Value::Null,
    }
}

fn fake_run(
    tests: &[(&str, u64, Vec<&'static str>)],
    provisioners: Vec<Arc<FakeProvisioner>>,
    policy: Policy,
    dir: &Path,
    interrupts: Option<crossbeam_channel::Receiver<i32>>,
) -> (atex::scheduler::RunReport, Arc<Mutex<Seen>>) {
    let exec = Arc::new(FakeExecutor {
        plan: tests
            .iter()
            .map(|(n, ms, st)| (n.to_string(), (*ms, st.clone())))
            .collect(),
        runs: Mutex::default(),
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let report = execute(Execution {
        tests: tests
            .iter()
            .map(|(n, ms, _)| {
                RunTest::new(QueuedTest::new(*n, Duration::from_millis(*ms)), spec(n))
            })
            .collect(),
        provisioners: provisioners
            .into_iter()
            .map(|p| p as Arc<dyn Provisioner>)
            .collect(),
        reporters: vec![Box::new(FakeReporter(Arc::clone(&seen)))],
        sinks: Vec::new(),
        executor: Arc::new(FakeExec(exec)),
        policy,
        decisions: Arc::new(atex::scheduler::DefaultPolicy),
        setup: None,
        results_dir: dir.join("results"),
        platform: None,
        history: TimingHistory::load(&dir.join("history.json")),
        progress: ProgressMode::Quiet,
        signals: false,
        interrupts,
        plugin_cancel: None,
        run_id: "test".into(),
        continue_run: None,
    })
    .expect("run");
    (report, seen)
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect()
}

#[test]
fn driver_runs_reruns_stores_and_reports() {
    let dir = TestDir::new();
    let mut tests: Vec<(String, u64, Vec<&'static str>)> = (0..12)
        .map(|i| {
            (
                format!("/t/{i:02}"),
                20 + (i * 13 % 50) as u64,
                vec!["pass"],
            )
        })
        .collect();
    tests[3].2 = vec!["fail", "pass"]; // flaky
    tests[4].2 = vec!["fail"]; // really failing
    let tests: Vec<(&str, u64, Vec<&'static str>)> = tests
        .iter()
        .map(|(n, m, s)| (n.as_str(), *m, s.clone()))
        .collect();
    let prov = FakeProvisioner::new("fake", 3);
    let (report, seen) = fake_run(
        &tests,
        vec![Arc::clone(&prov)],
        Policy {
            workers: 3,
            reruns: 1,
            ..Policy::default()
        },
        dir.path(),
        None,
    );
    assert_eq!(report.exit_code(), 1);
    let res = dir.path().join("results");
    let lines = lines(&res.join("results.jsonl"));
    assert_eq!(lines.len(), 12);
    assert!(lines.iter().any(|l| l[2] == "/t/03" && l[1] == "pass"));
    assert!(lines.iter().any(|l| l[2] == "/t/04" && l[1] == "fail"));
    assert_eq!(
        fs::read_to_string(res.join("files/fake/t/03/output.txt")).expect("read"),
        "/t/03 attempt 2\n"
    );
    assert_eq!(
        fs::read_to_string(res.join("attempts/fake/t/03/1/files/output.txt")).expect("read"),
        "/t/03 attempt 1\n"
    );
    assert_eq!(lines_count(&res.join("attempts.jsonl")), 14);
    assert!(!res.join(".scratch").exists());
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.results.len(), 14, "reporters see every attempt");
    assert_eq!(seen.results.iter().filter(|r| r.final_attempt).count(), 12);
    assert!(
        seen.summary
            .as_ref()
            .is_some_and(|s| s.tests_total == 12 && !s.interrupted)
    );
    let s = prov.state.lock().expect("lock");
    assert_eq!(s.active, 0, "every system released");
    assert!(s.stopped);
    assert!(
        s.made >= 4,
        "a failed test's system is replaced: {}",
        s.made
    );
    for t in ["/t/03", "/t/04"] {
        let remotes: Vec<&str> = seen
            .results
            .iter()
            .filter(|r| r.test == t)
            .map(|r| r.remote.as_str())
            .collect();
        assert_eq!(remotes.len(), 2);
        assert_ne!(
            remotes[0], remotes[1],
            "the rerun of {t} ran on another system"
        );
    }
    assert!(report.stats.render(report.wall, false).contains("(flaky)"));
    // The history now knows the runtimes.
    let h = TimingHistory::load(&dir.path().join("history.json"));
    assert!(h.expected("/t/00").is_some());
}

fn lines_count(path: &Path) -> usize {
    fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn driver_drops_a_failing_provisioner_and_carries_on() {
    let dir = TestDir::new();
    let tests: Vec<(String, u64, Vec<&'static str>)> = (0..8)
        .map(|i| (format!("/t/{i}"), 10, vec!["pass"]))
        .collect();
    let tests: Vec<(&str, u64, Vec<&'static str>)> = tests
        .iter()
        .map(|(n, m, s)| (n.as_str(), *m, s.clone()))
        .collect();
    let bad = Arc::new(FakeProvisioner {
        name: "bad".into(),
        max: 4,
        fail: true,
        state: Arc::default(),
    });
    let good = FakeProvisioner::new("good", 2);
    let (report, _) = fake_run(
        &tests,
        vec![Arc::clone(&bad), Arc::clone(&good)],
        Policy {
            workers: 4,
            failure_budget: 2,
            ..Policy::default()
        },
        dir.path(),
        None,
    );
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(report.stats.len(), 8);
    assert!(
        report
            .stats
            .errors
            .iter()
            .any(|e| e.starts_with("bad: dropped after 2")),
        "{:?}",
        report.stats.errors
    );
    assert_eq!(bad.state.lock().expect("lock").active, 0);
    assert_eq!(good.state.lock().expect("lock").active, 0);
}

#[test]
fn driver_interrupt_releases_everything_and_keeps_finished_results() {
    let dir = TestDir::new();
    let tests: Vec<(String, u64, Vec<&'static str>)> = (0..20)
        .map(|i| {
            (
                format!("/t/{i:02}"),
                100 + (i % 3) as u64 * 20,
                vec!["pass"],
            )
        })
        .collect();
    let tests: Vec<(&str, u64, Vec<&'static str>)> = tests
        .iter()
        .map(|(n, m, s)| (n.as_str(), *m, s.clone()))
        .collect();
    let prov = FakeProvisioner::new("fake", 3);
    let (tx, rx) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(350));
        let _ = tx.send(15);
    });
    let t0 = Instant::now();
    let (report, seen) = fake_run(
        &tests,
        vec![Arc::clone(&prov)],
        Policy {
            workers: 3,
            ..Policy::default()
        },
        dir.path(),
        Some(rx),
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(report.exit_code(), 143);
    let res = dir.path().join("results");
    let finished = lines(&res.join("results.jsonl"));
    assert!(
        !finished.is_empty() && finished.len() < 20,
        "{}",
        finished.len()
    );
    assert_eq!(finished.len() + report.stats.not_run.len(), 20);
    assert!(!res.join(".scratch").exists());
    assert_eq!(prov.state.lock().expect("lock").active, 0);
    assert!(
        seen.lock()
            .expect("lock")
            .summary
            .as_ref()
            .is_some_and(|s| s.interrupted)
    );
}

// ------------------------------------------------- the binary, local plugin

fn tree(dir: &TestDir, tests: &[(&str, &str)]) {
    dir.create(".fmf/version", "1\n");
    let mut main = String::new();
    for (name, script) in tests {
        main.push_str(&format!(
            "{name}:\n    test: |\n        {}\n",
            script.replace('\n', "\n        ")
        ));
    }
    dir.create("main.fmf", &main);
}

#[test]
fn run_on_local_stores_results_and_exits_1_on_failure() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/good", "echo hello"),
            ("/bad", "echo oops; exit 3"),
            ("/other", "true"),
        ],
    );
    let out = atex_in(
        Some(dir.path()),
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "--results",
            "out",
            "--plain",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines = lines(&dir.path().join("out/results.jsonl"));
    assert_eq!(lines.len(), 3, "{err}");
    let good = lines.iter().find(|l| l[2] == "/good").expect("good");
    assert_eq!(good[0], "local");
    assert_eq!(good[1], "pass");
    assert_eq!(good[3], serde_json::Value::Null);
    assert!(lines.iter().any(|l| l[2] == "/bad" && l[1] == "fail"));
    let output =
        fs::read_to_string(dir.path().join("out/files/local/good/output.txt")).expect("output.txt");
    assert!(output.contains("hello"));
    assert!(dir.path().join("out/summary.json").exists());
    assert!(dir.path().join(".atex-history.json").exists());
    assert!(err.contains("failed:") && err.contains("/bad"), "{err}");
}

#[test]
fn run_reruns_a_flaky_test_and_reads_a_config_file() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    let marker = dir.path().join("flaky-marker");
    tree(
        &dir,
        &[
            (
                "/flaky",
                &format!(
                    "if [ -e {0} ]; then exit 0; fi; touch {0}; exit 1",
                    marker.display()
                ),
            ),
            ("/ok", "true"),
        ],
    );
    dir.create(
        "atex.yaml",
        &format!(
            "provisioners:\n  - local: {{max: 2}}\nreruns: 1\nresults: res\nplugin-dirs: [{}]\n",
            plugins.path().display()
        ),
    );
    let out = atex_in(
        Some(dir.path()),
        &["run", "--config", "atex.yaml", "--plain"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let attempts = lines(&dir.path().join("res/attempts.jsonl"));
    let flaky: Vec<_> = attempts.iter().filter(|a| a["test"] == "/flaky").collect();
    assert_eq!(flaky.len(), 2);
    assert_eq!(flaky[0]["status"], "fail");
    assert_eq!(flaky[1]["status"], "pass");
    assert!(
        dir.path()
            .join("res/attempts/local/flaky/1/files/output.txt")
            .exists()
    );
    assert!(err.contains("(flaky)"), "{err}");
}

#[test]
fn run_usage_errors_exit_2() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(&dir, &[("/a", "true")]);
    let pd = plugins.path().to_str().expect("utf8");
    let out = atex_in(
        Some(dir.path()),
        &["run", "--plugin-dir", pd, "-p", "nosuch"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no plugin named `nosuch`"),
        "{}",
        stderr(&out)
    );
    let out = atex_in(
        Some(dir.path()),
        &["run", "--plugin-dir", pd, "--test", "nomatch"],
    );
    assert_eq!(out.status.code(), Some(2));
}

fn interrupt_local(signal: i32, code: i32) {
    interrupt_local_n(signal, code, 1)
}

/// Sends `signal` `times` times, 50 ms apart.
fn interrupt_local_n(signal: i32, code: i32, times: u32) {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    let tag = format!("atex-int-{}-{signal}", std::process::id());
    let mut tests = vec![("/quick", "true".to_string())];
    for i in 0..6 {
        tests.push((
            ["/s0", "/s1", "/s2", "/s3", "/s4", "/s5"][i],
            format!("sleep 30 # {tag}"),
        ));
    }
    let tests: Vec<(&str, &str)> = tests.iter().map(|(n, s)| (*n, s.as_str())).collect();
    tree(&dir, &tests);
    let mut child = Command::new(atex_bin())
        .current_dir(dir.path())
        .args([
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "--results",
            "out",
            "--plain",
            "--workers",
            "3",
        ])
        .env_remove("ATEX_PLUGIN_PATH")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait until /quick finished and sleeps are running.
    let jsonl = dir.path().join("out/results.jsonl");
    let t0 = Instant::now();
    while lines_count(&jsonl) < 1 && t0.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(1500));
    let pid = child.id() as i32;
    // SAFETY: kill(2) on our own child.
    unsafe { libc_kill(pid, signal) };
    let t1 = Instant::now();
    for _ in 1..times {
        thread::sleep(Duration::from_millis(50));
        // SAFETY: as above.
        unsafe { libc_kill(pid, signal) };
    }
    let status = child.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        t1.elapsed() < Duration::from_secs(20),
        "took {:?} to stop",
        t1.elapsed()
    );
    assert_eq!(status.code(), Some(code), "{err}");
    let lines = lines(&jsonl);
    assert!(lines.iter().any(|l| l[2] == "/quick"), "{err}");
    assert!(lines.len() < 7);
    assert!(
        !dir.path().join("out/.scratch").exists(),
        "scratch dir left behind"
    );
    // No test process survives.
    thread::sleep(Duration::from_millis(300));
    let ps = Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let left: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&tag))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "processes left: {left:?}\n{err}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn sigint_on_local_stops_cleanly_with_130() {
    interrupt_local(2, 130);
}

#[test]
fn sigterm_on_local_stops_cleanly_with_143() {
    interrupt_local(15, 143);
}

/// A second Ctrl-C exits at once, still after releasing what it can:
/// the same checks hold (results valid, no test process left).
#[test]
fn a_second_sigint_exits_at_once_and_still_cleans_up() {
    interrupt_local_n(2, 130, 2);
}

/// Regression: the run's fetchers used to call `get_remote` in a loop
/// whatever was asked, so a provisioner that hands out a system on every
/// call (ignoring `provision` counts) flooded the host with systems until
/// the OOM killer ended the run. Now only asked-for systems are fetched.
#[test]
fn a_provisioner_that_hands_out_unasked_systems_cannot_flood_the_run() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

    struct Slot(AtomicBool);
    impl atex::backend::Remote for Slot {
        fn name(&self) -> String {
            "greedy".into()
        }
        fn platform(&self) -> String {
            "local".into()
        }
        fn connection(&self) -> Result<atex::backend::Connection, atex::backend::BackendError> {
            Ok(atex::backend::Connection::Local)
        }
        fn alive(&self) -> Result<bool, atex::backend::BackendError> {
            Ok(!self.0.load(SeqCst))
        }
        fn release(&self) -> Result<(), atex::backend::BackendError> {
            self.0.store(true, SeqCst);
            Ok(())
        }
    }
    struct Greedy(std::sync::Arc<AtomicU32>);
    impl atex::backend::Provisioner for Greedy {
        fn name(&self) -> String {
            "greedy".into()
        }
        fn get_remote(
            &self,
            _: std::time::Duration,
        ) -> Result<Option<Box<dyn atex::backend::Remote>>, atex::backend::BackendError> {
            self.0.fetch_add(1, SeqCst);
            Ok(Some(Box::new(Slot(AtomicBool::new(false)))))
        }
        fn max_remotes(&self) -> Option<u32> {
            Some(2)
        }
    }

    let tree = atex_integration_tests::TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "main.fmf",
        "/a:\n    test: sleep 1\n/b:\n    test: sleep 1\n/c:\n    test: sleep 1\n",
    );
    let found =
        atex::fmf::discover(tree.path(), &atex::fmf::Selection::default()).expect("discover");
    let made = std::sync::Arc::new(AtomicU32::new(0));
    let results = tempfile::tempdir().expect("tempdir");
    let mut run = atex::scheduler::Execution::new(
        &found,
        vec![std::sync::Arc::new(Greedy(std::sync::Arc::clone(&made)))],
        results.path().join("r"),
    );
    run.signals = false;
    let report = atex::scheduler::execute(run).expect("runs");
    assert_eq!(report.exit_code(), 0);
    let made = made.load(SeqCst);
    assert!(
        made <= 6,
        "{made} systems were taken for 3 tests on 2 workers"
    );
}

/// Results and the timing history kept inside the tree are never uploaded
/// with it: a second run in the same directory sees neither the first
/// run's results nor its own.
#[test]
fn results_and_history_inside_the_tree_are_not_uploaded() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(
        &dir,
        &[(
            "/list",
            "ls -A \"$TMT_TREE\"; ls -A \"$TMT_TREE/out\" 2>&1 || true",
        )],
    );
    let run = |results: &str| {
        let out = atex_in(
            Some(dir.path()),
            &[
                "run",
                "--plugin-dir",
                plugins.path().to_str().expect("utf8"),
                "--results",
                results,
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        std::fs::read_to_string(dir.path().join(results).join("files/local/list/output.txt"))
            .expect("output.txt")
    };
    run("atex-results/first");
    let second = run("out/second");
    assert!(dir.path().join("atex-results/first/results.jsonl").exists());
    assert!(
        dir.path().join(".atex-history.json").exists()
            || dir.path().join("atex-results/.atex-history.json").exists()
    );
    for unwanted in ["atex-results", ".atex-history.json", "second"] {
        assert!(
            !second.lines().any(|l| l.trim() == unwanted),
            "{unwanted} was uploaded:\n{second}"
        );
    }
    assert!(second.lines().any(|l| l.trim() == "main.fmf"), "{second}");
}
