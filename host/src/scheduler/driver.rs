//! The real driver: the [`Engine`] on one thread, fed by events over a
//! crossbeam channel; every blocking job on a worker thread that reports
//! back.
//!
//! Threads:
//!
//! - one *fetcher* per provisioner, waiting in `get_remote` (in short
//!   slices, so it notices the end of the run) and sending each system it
//!   gets;
//! - one thread per setup, per running test and per release;
//! - one *results* thread that owns the [`ResultsStore`], the timing
//!   history and the reporters, so slow reporters never hold up
//!   scheduling;
//! - with `signals`, a thread forwarding SIGINT/SIGTERM as events.
//!
//! Every system is registered in the loop's table from the moment it
//! arrives until its release finished, so an interrupt finds and frees all
//! of them; provisioners' `stop()` is called at the end as the safety net
//! for anything still in flight.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::{
    engine::{Action, Engine, Event, Policy, ProvisionerInfo, QueuedTest, RemoteId, TestId},
    progress::{Counts, Progress, ProgressMode},
};
use crate::{
    backend::{Connection, Provisioner, Remote, Reporter, RunSummary},
    executor::{CancelToken, ExecError, PlanSpec, System, SystemOptions, TestOutcome, TestSpec},
    results::{
        AttemptInfo, FinalTest, ResultsError, ResultsStore, RunStats, TimingHistory,
        summary::is_failure,
    },
};

/// Opens and sets up systems for tests. [`FmfExecutor`] is the real one;
/// tests use fakes.
pub trait TestExecutor: Send + Sync {
    /// Connects to a system and sets it up for the run's tests.
    fn open(
        &self,
        remote: &str,
        connection: Connection,
        cancel: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError>;
}

/// A set-up system.
pub trait ExecSystem: Send {
    /// Runs one test into `artifacts` (an existing empty directory).
    fn run_test(
        &mut self,
        test: &TestSpec,
        artifacts: &Path,
        extra_env: &[(String, String)],
        cancel: &CancelToken,
    ) -> Result<TestOutcome, ExecError>;
    /// Runs finish steps (best effort) and disconnects.
    fn close(self: Box<Self>);
}

/// The executor of [`crate::executor`]: uploads the tree and runs the plan's
/// prepare steps on each system.
pub struct FmfExecutor {
    /// The FMF tree root uploaded to each system.
    pub tree_root: PathBuf,
    /// The plan's environment, prepare and finish steps.
    pub plan: PlanSpec,
    /// Options for each system.
    pub options: SystemOptions,
}

impl TestExecutor for FmfExecutor {
    fn open(
        &self,
        remote: &str,
        connection: Connection,
        cancel: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError> {
        let mut system = System::open(remote, connection, &self.options)?;
        if let Err(e) = system.setup(&self.tree_root, &self.plan, cancel) {
            system.close();
            return Err(e);
        }
        Ok(Box::new(system))
    }
}

impl ExecSystem for System {
    fn run_test(
        &mut self,
        test: &TestSpec,
        artifacts: &Path,
        extra_env: &[(String, String)],
        cancel: &CancelToken,
    ) -> Result<TestOutcome, ExecError> {
        System::run_test(self, test, artifacts, extra_env, cancel)
    }

    fn close(self: Box<Self>) {
        System::close(*self)
    }
}

/// One test to run.
#[derive(Debug, Clone)]
pub struct RunTest {
    /// Scheduling data.
    pub queued: QueuedTest,
    /// What the executor runs.
    pub spec: TestSpec,
}

/// Everything [`execute`] needs.
pub struct Execution {
    /// Tests, in discovery order.
    pub tests: Vec<RunTest>,
    /// Sources of systems (started by [`execute`], stopped at the end).
    pub provisioners: Vec<Arc<dyn Provisioner>>,
    /// Result consumers.
    pub reporters: Vec<Box<dyn Reporter>>,
    /// Sets systems up and runs tests on them.
    pub executor: Arc<dyn TestExecutor>,
    /// Scheduling policies.
    pub policy: Policy,
    /// Results directory.
    pub results_dir: PathBuf,
    /// Platform name for results, instead of each remote's.
    pub platform: Option<String>,
    /// Runtimes from earlier runs, updated with this run's.
    pub history: TimingHistory,
    /// How to show progress.
    pub progress: ProgressMode,
    /// Handle SIGINT and SIGTERM.
    pub signals: bool,
    /// Extra interrupt source: a signal number sent here acts like that
    /// signal (for callers and tests).
    pub interrupts: Option<Receiver<i32>>,
    /// Cancel flag shared with the plugins (set on interrupt).
    pub plugin_cancel: Option<Arc<AtomicBool>>,
    /// Run identifier.
    pub run_id: String,
}

impl Execution {
    /// Runs `found`'s tests on systems from `provisioners`, storing results
    /// in `results_dir`: the executor for the tree, default policies (with
    /// as many workers as the provisioners hand out, 4 when unknown), no
    /// reporters, timing history in memory, plain progress lines, SIGINT
    /// and SIGTERM handled. Change any field before calling [`execute`].
    pub fn new(
        found: &crate::fmf::Discovery,
        provisioners: Vec<Arc<dyn Provisioner>>,
        results_dir: impl Into<PathBuf>,
    ) -> Execution {
        let history = TimingHistory::in_memory();
        let workers: Option<u32> = provisioners.iter().map(|p| p.max_remotes()).sum();
        Execution {
            tests: super::plan::run_tests(found, &history),
            provisioners,
            reporters: Vec::new(),
            executor: Arc::new(FmfExecutor {
                tree_root: found.root.clone(),
                plan: super::plan::plan_spec(&found.plan),
                options: SystemOptions::default(),
            }),
            policy: Policy {
                workers: workers.map_or(4, |w| w.max(1) as usize),
                ..Policy::default()
            },
            results_dir: results_dir.into(),
            platform: None,
            history,
            progress: ProgressMode::Plain,
            signals: true,
            interrupts: None,
            plugin_cancel: None,
            run_id: super::new_run_id(),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Final results, reruns, errors.
    pub stats: RunStats,
    /// Tests selected.
    pub tests_total: usize,
    /// Wall time.
    pub wall: Duration,
    /// The signal that interrupted the run.
    pub interrupted: Option<i32>,
    /// A second signal cut the cleanup short.
    pub forced: bool,
    /// Some tests could not run for infrastructure reasons.
    pub infra_failure: bool,
    /// Results directory.
    pub results_dir: PathBuf,
    /// Most systems held at once.
    pub peak_systems: usize,
}

impl RunReport {
    /// The exit code: 0 all passed, 1 a test failed, 2 infrastructure,
    /// 128 + signal when interrupted.
    pub fn exit_code(&self) -> u8 {
        if let Some(sig) = self.interrupted {
            return (128 + sig).clamp(0, 255) as u8;
        }
        if self.infra_failure {
            2
        } else if self.stats.any_failed() {
            1
        } else {
            0
        }
    }
}

/// Errors that stop a run before it starts or break its results.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results store failed.
    #[error(transparent)]
    Results(#[from] ResultsError),
    /// No provisioner could be started.
    #[error("no provisioner could be started: {0}")]
    NoProvisioner(String),
    /// Bad configuration, selection or plugin.
    #[error("{0}")]
    Config(String),
    /// Something else.
    #[error("{0}")]
    Other(String),
}

enum Msg {
    Ready {
        prov: usize,
        remote: Box<dyn Remote>,
    },
    ProvError {
        prov: usize,
        error: String,
    },
    SetupEnd {
        rid: RemoteId,
        result: Result<Box<dyn ExecSystem>, ExecError>,
    },
    TestEnd(Box<TestEnd>),
    Released {
        rid: RemoteId,
        error: Option<String>,
    },
    Signal(i32),
}

struct TestEnd {
    rid: RemoteId,
    test: TestId,
    result: Result<TestOutcome, ExecError>,
    system: Box<dyn ExecSystem>,
    artifacts: PathBuf,
    started_unix_ms: u64,
    took: Duration,
}

struct Slot {
    prov: usize,
    remote: Arc<dyn Remote>,
    name: String,
    platform: String,
    system: Option<Box<dyn ExecSystem>>,
    cancel: CancelToken,
}

enum ResultsMsg {
    Attempt {
        info: AttemptInfo,
        artifacts: PathBuf,
        outcome: TestOutcome,
    },
    NotRun {
        platform: String,
        test: String,
        status: &'static str,
        note: String,
    },
    Error(String),
    Finish {
        wall: Duration,
        interrupted: bool,
        tests_total: u64,
        not_run: Vec<String>,
    },
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the tests on the provisioners' systems and stores the results.
pub fn execute(mut exec: Execution) -> Result<RunReport, RunError> {
    let t0 = Instant::now();
    let started_unix_ms = unix_ms(SystemTime::now());
    let store = ResultsStore::create(&exec.results_dir)?;
    let scratch = store.scratch_dir();
    std::fs::create_dir_all(&scratch)
        .map_err(|e| RunError::Other(format!("{}: {e}", scratch.display())))?;
    let (tx, rx) = unbounded::<Msg>();
    let progress = Progress::new(exec.progress, exec.tests.len() as u64);

    // Start the provisioners; one that fails to start is dropped.
    let mut errors = Vec::new();
    let mut started = vec![false; exec.provisioners.len()];
    for (i, p) in exec.provisioners.iter().enumerate() {
        match p.start() {
            Ok(()) => started[i] = true,
            Err(e) => {
                progress.line(&format!(
                    "error: provisioner {} failed to start: {e}",
                    p.name()
                ));
                errors.push(format!("provisioner {} failed to start: {e}", p.name()));
            }
        }
    }
    if !exec.provisioners.is_empty() && !started.iter().any(|s| *s) {
        for (i, p) in exec.provisioners.iter().enumerate() {
            if started[i] {
                let _ = p.stop();
            }
        }
        return Err(RunError::NoProvisioner(errors.join("; ")));
    }

    // Results thread.
    let (rtx, rrx) = unbounded::<ResultsMsg>();
    let reporters = std::mem::take(&mut exec.reporters);
    let history = std::mem::take(&mut exec.history);
    let run_id = exec.run_id.clone();
    let results_thread = thread::Builder::new()
        .name("atex-results".into())
        .spawn(move || results_loop(store, reporters, history, rrx, run_id, started_unix_ms))
        .map_err(|e| RunError::Other(format!("cannot start a thread: {e}")))?;

    // Fetchers.
    let fetch_stop: Vec<Arc<AtomicBool>> = exec
        .provisioners
        .iter()
        .enumerate()
        .map(|(i, _)| Arc::new(AtomicBool::new(!started[i])))
        .collect();
    // Systems asked of each provisioner and not received yet. A fetcher
    // only waits in get_remote while something is asked, so a provisioner
    // that hands out more than it was asked for cannot flood the run.
    let asked: Vec<Arc<AtomicU32>> = exec
        .provisioners
        .iter()
        .map(|_| Arc::new(AtomicU32::new(0)))
        .collect();
    // Wakes a fetcher as soon as something is asked of its provisioner.
    let wake: Vec<(Sender<()>, Receiver<()>)> =
        exec.provisioners.iter().map(|_| unbounded()).collect();
    let mut fetchers: Vec<JoinHandle<()>> = Vec::new();
    for (i, p) in exec.provisioners.iter().enumerate() {
        if !started[i] {
            continue;
        }
        let (p, stop, tx) = (Arc::clone(p), Arc::clone(&fetch_stop[i]), tx.clone());
        let asked = Arc::clone(&asked[i]);
        let woken = wake[i].1.clone();
        fetchers.push(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if asked.load(Ordering::SeqCst) == 0 {
                    let _ = woken.recv_timeout(Duration::from_millis(100));
                    continue;
                }
                match p.get_remote(Duration::from_millis(200)) {
                    Ok(Some(remote)) => {
                        let _ = asked
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                        if tx.send(Msg::Ready { prov: i, remote }).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let _ = tx.send(Msg::ProvError {
                            prov: i,
                            error: e.to_string(),
                        });
                        thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }));
    }

    // Signals.
    let mut signal_handle = None;
    let mut signal_thread = None;
    if exec.signals {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
            Ok(mut signals) => {
                signal_handle = Some(signals.handle());
                let tx = tx.clone();
                signal_thread = Some(thread::spawn(move || {
                    for sig in signals.forever() {
                        if tx.send(Msg::Signal(sig)).is_err() {
                            break;
                        }
                    }
                }));
            }
            Err(e) => tracing::warn!("cannot handle signals: {e}"),
        }
    }
    if let Some(ext) = exec.interrupts.take() {
        let tx = tx.clone();
        thread::spawn(move || {
            for sig in ext.iter() {
                if tx.send(Msg::Signal(sig)).is_err() {
                    break;
                }
            }
        });
    }

    let infos: Vec<ProvisionerInfo> = exec
        .provisioners
        .iter()
        .map(|p| ProvisionerInfo {
            name: p.name(),
            max_remotes: p.max_remotes(),
        })
        .collect();
    let queued: Vec<QueuedTest> = exec.tests.iter().map(|t| t.queued.clone()).collect();
    let mut engine = Engine::new(queued, infos, exec.policy.clone());
    // Provisioners that did not start are dropped from the beginning.
    let mut out = Vec::new();
    for (i, s) in started.iter().enumerate() {
        if !s {
            for _ in 0..exec.policy.failure_budget.max(1) {
                engine.handle(
                    Duration::ZERO,
                    Event::ProvisionerFailed {
                        prov: i,
                        error: "did not start".into(),
                    },
                    &mut Vec::new(),
                );
            }
        }
    }
    engine.start(Duration::ZERO, &mut out);

    let mut st = LoopState {
        exec: &exec,
        tx: tx.clone(),
        rtx: rtx.clone(),
        slots: HashMap::new(),
        releasing: 0,
        next_rid: 0,
        pending: HashMap::new(),
        progress: &progress,
        counts: Counts {
            queued: engine.queued() as u64,
            ..Counts::default()
        },
        fetch_stop: &fetch_stop,
        asked: &asked,
        wake: &wake,
        scratch,
        platform_seen: None,
        infra_failure: false,
        remaining_work: exec.tests.iter().map(|t| t.queued.estimate()).sum(),
        running_since: HashMap::new(),
        peak: 0,
    };
    let mut interrupted = None;
    let mut forced = false;
    st.apply(&mut engine, t0.elapsed(), &mut out);
    drop(tx);

    while !(engine.finished() && st.releasing == 0) {
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                st.refresh(&engine);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let now = t0.elapsed();
        let event = match msg {
            Msg::Signal(sig) => {
                if interrupted.is_some() {
                    progress.line(&format!(
                        "atex: second signal ({sig}): releasing what can be released and exiting"
                    ));
                    forced = true;
                    break;
                }
                progress.line(&format!(
                    "atex: {} received: cancelling running tests and releasing every system (again to exit at once)",
                    signal_name(sig)
                ));
                interrupted = Some(sig);
                if let Some(flag) = &exec.plugin_cancel {
                    flag.store(true, Ordering::SeqCst);
                }
                Some(Event::Interrupt)
            }
            other => st.translate(&mut engine, other),
        };
        if let Some(event) = event {
            engine.handle(now, event, &mut out);
            st.apply(&mut engine, now, &mut out);
        }
        st.refresh(&engine);
    }

    // Wind down: fetchers, leftovers, provisioners.
    for f in &fetch_stop {
        f.store(true, Ordering::SeqCst);
    }
    if forced {
        for slot in st.slots.values() {
            slot.cancel.cancel();
        }
        let slots: Vec<Slot> = st.slots.drain().map(|(_, s)| s).collect();
        let mut joins = Vec::new();
        for s in slots {
            let remote = Arc::clone(&s.remote);
            joins.push(thread::spawn(move || {
                let _ = remote.release();
            }));
        }
        let provs = exec.provisioners.clone();
        joins.push(thread::spawn(move || {
            for p in provs {
                let _ = p.stop();
            }
        }));
        wait_all(joins, Duration::from_secs(20));
    } else {
        for f in fetchers {
            let _ = f.join();
        }
        // A system that arrived after the end is released right away.
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Ready { remote, .. } = msg {
                let _ = remote.release();
            }
        }
        for (i, p) in exec.provisioners.iter().enumerate() {
            if started[i]
                && let Err(e) = p.stop()
            {
                progress.line(&format!("warning: stopping provisioner {}: {e}", p.name()));
            }
        }
    }
    if let Some(h) = signal_handle {
        h.close();
    }
    if let Some(t) = signal_thread {
        let _ = t.join();
    }

    let wall = t0.elapsed();
    let not_run: Vec<String> = engine
        .not_run()
        .iter()
        .map(|t| exec.tests[*t].queued.name.clone())
        .collect();
    for e in &errors {
        let _ = rtx.send(ResultsMsg::Error(e.clone()));
    }
    let _ = rtx.send(ResultsMsg::Finish {
        wall,
        interrupted: interrupted.is_some(),
        tests_total: exec.tests.len() as u64,
        not_run,
    });
    drop(rtx);
    drop(st.rtx);
    let stats = if forced {
        // Give the results thread a moment to finish its file writes.
        let (done_tx, done_rx) = unbounded();
        thread::spawn(move || {
            let _ = done_tx.send(results_thread.join());
        });
        match done_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(s)) => s?,
            _ => RunStats::default(),
        }
    } else {
        results_thread
            .join()
            .map_err(|_| RunError::Other("the results thread panicked".into()))??
    };
    progress.finish();
    let infra_failure = st.infra_failure;
    let peak = st.peak;
    Ok(RunReport {
        stats,
        tests_total: exec.tests.len(),
        wall,
        interrupted,
        forced,
        infra_failure,
        results_dir: exec.results_dir.clone(),
        peak_systems: peak,
    })
}

fn wait_all(joins: Vec<JoinHandle<()>>, limit: Duration) {
    let deadline = Instant::now() + limit;
    for j in joins {
        while !j.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        if j.is_finished() {
            let _ = j.join();
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "signal",
    }
}

struct LoopState<'a> {
    exec: &'a Execution,
    tx: Sender<Msg>,
    rtx: Sender<ResultsMsg>,
    slots: HashMap<RemoteId, Slot>,
    releasing: usize,
    next_rid: RemoteId,
    /// The attempt that just finished on each system, until recorded.
    pending: HashMap<TestId, (AttemptInfo, PathBuf, TestOutcome)>,
    progress: &'a Progress,
    counts: Counts,
    fetch_stop: &'a [Arc<AtomicBool>],
    asked: &'a [Arc<AtomicU32>],
    wake: &'a [(Sender<()>, Receiver<()>)],
    scratch: PathBuf,
    platform_seen: Option<String>,
    infra_failure: bool,
    remaining_work: Duration,
    running_since: HashMap<TestId, Instant>,
    peak: usize,
}

impl LoopState<'_> {
    fn translate(&mut self, engine: &mut Engine, msg: Msg) -> Option<Event> {
        match msg {
            Msg::Ready { prov, remote } => {
                self.next_rid += 1;
                let rid = self.next_rid;
                let remote: Arc<dyn Remote> = Arc::from(remote);
                let name = remote.name();
                let platform = self
                    .exec
                    .platform
                    .clone()
                    .unwrap_or_else(|| remote.platform());
                self.platform_seen.get_or_insert_with(|| platform.clone());
                tracing::info!(remote = %name, "system ready");
                self.slots.insert(
                    rid,
                    Slot {
                        prov,
                        remote,
                        name,
                        platform,
                        system: None,
                        cancel: CancelToken::new(),
                    },
                );
                Some(Event::RemoteReady { prov, remote: rid })
            }
            Msg::ProvError { prov, error } => {
                if engine.dropped(prov) || engine.stopping() {
                    return None;
                }
                self.progress.line(&format!("warning: {error}"));
                Some(Event::ProvisionerFailed { prov, error })
            }
            Msg::SetupEnd { rid, result } => match result {
                Ok(system) => {
                    if let Some(slot) = self.slots.get_mut(&rid) {
                        slot.system = Some(system);
                    }
                    Some(Event::SetupDone { remote: rid })
                }
                Err(e) => {
                    if !engine.stopping() {
                        self.progress.line(&format!("warning: {e}"));
                    }
                    Some(Event::SetupFailed {
                        remote: rid,
                        error: e.to_string(),
                    })
                }
            },
            Msg::TestEnd(end) => {
                let TestEnd {
                    rid,
                    test,
                    result,
                    system,
                    artifacts,
                    started_unix_ms,
                    took,
                } = *end;
                self.running_since.remove(&test);
                let slot = self.slots.get_mut(&rid)?;
                slot.system = Some(system);
                // A test cut short by an interrupt did not finish: it is
                // not recorded (the executor reports it as an `infra`
                // result with the cancel note).
                let result = match result {
                    Ok(o) if slot.cancel.is_cancelled() && is_failure(&o.status) => {
                        Err(ExecError::Cancelled {
                            system: slot.name.clone(),
                        })
                    }
                    other => other,
                };
                match result {
                    Ok(outcome) => {
                        let failed = is_failure(&outcome.status);
                        let info = AttemptInfo {
                            platform: slot.platform.clone(),
                            test: self.exec.tests[test].queued.name.clone(),
                            attempt: 0,
                            final_attempt: false,
                            remote: slot.name.clone(),
                            provisioner: self.exec.provisioners[slot.prov].name(),
                            started_unix_ms,
                            duration: took,
                            exit_code: outcome.exit_code,
                            reboots: outcome.reboots,
                            system_lost: outcome.system_lost,
                        };
                        if outcome.system_lost {
                            self.progress.line(&format!(
                                "warning: {} was lost during {}",
                                slot.name, info.test
                            ));
                        }
                        let lost = outcome.system_lost;
                        self.pending.insert(test, (info, artifacts, outcome));
                        Some(Event::TestFinished {
                            remote: rid,
                            test,
                            failed,
                            system_lost: lost,
                        })
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&artifacts);
                        if !engine.stopping() {
                            self.progress.line(&format!(
                                "warning: {} broke during {}: {e}",
                                slot.name, self.exec.tests[test].queued.name
                            ));
                        }
                        Some(Event::TestBroken {
                            remote: rid,
                            test,
                            error: e.to_string(),
                        })
                    }
                }
            }
            Msg::Released { rid, error } => {
                self.releasing -= 1;
                if let Some(e) = error {
                    self.progress
                        .line(&format!("warning: releasing system {rid}: {e}"));
                }
                None
            }
            Msg::Signal(_) => None,
        }
    }

    fn apply(&mut self, engine: &mut Engine, _now: Duration, out: &mut Vec<Action>) {
        for action in out.drain(..) {
            match action {
                Action::Provision { prov, count } => {
                    tracing::debug!(prov, count, "provision");
                    self.exec.provisioners[prov].provision(count);
                    let _ =
                        self.asked[prov].fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            Some(n.saturating_add(count))
                        });
                    let _ = self.wake[prov].0.send(());
                }
                Action::Clear { prov } => {
                    self.exec.provisioners[prov].clear();
                    self.asked[prov].store(0, Ordering::SeqCst);
                }
                Action::Setup { remote } => self.setup(remote),
                Action::Run {
                    remote,
                    test,
                    attempt,
                } => self.run(remote, test, attempt),
                Action::Release { remote } => self.release(remote),
                Action::Record {
                    test,
                    attempt,
                    final_attempt,
                } => {
                    if let Some((mut info, artifacts, outcome)) = self.pending.remove(&test) {
                        info.attempt = attempt;
                        info.final_attempt = final_attempt;
                        if final_attempt {
                            self.counts.done += 1;
                            if is_failure(&outcome.status) {
                                self.counts.failed += 1;
                            } else {
                                self.counts.passed += 1;
                            }
                            self.remaining_work = self
                                .remaining_work
                                .saturating_sub(self.exec.tests[test].queued.estimate());
                            self.counts.running = engine.running() as u64;
                            self.counts.queued = engine.queued() as u64;
                            self.progress.finished(
                                &self.counts,
                                &outcome.status,
                                &info.test,
                                info.duration,
                                &info.remote,
                                outcome.note.as_deref(),
                            );
                        } else {
                            self.progress.line(&format!(
                                "{} {} (attempt {attempt}), will rerun on a fresh system",
                                outcome.status, info.test
                            ));
                        }
                        let _ = self.rtx.send(ResultsMsg::Attempt {
                            info,
                            artifacts,
                            outcome,
                        });
                    }
                }
                Action::GiveUp { test, status, note } => {
                    if status == "infra" {
                        self.infra_failure = true;
                    }
                    let name = self.exec.tests[test].queued.name.clone();
                    let platform = self
                        .exec
                        .platform
                        .clone()
                        .or_else(|| self.platform_seen.clone())
                        .or_else(|| self.exec.provisioners.first().map(|p| p.name()))
                        .unwrap_or_else(|| "unknown".into());
                    self.counts.done += 1;
                    self.counts.failed += 1;
                    self.progress.finished(
                        &self.counts,
                        status,
                        &name,
                        Duration::ZERO,
                        "-",
                        Some(&note),
                    );
                    let _ = self.rtx.send(ResultsMsg::NotRun {
                        platform,
                        test: name,
                        status,
                        note,
                    });
                }
                Action::DropProvisioner { prov, reason } => {
                    self.fetch_stop[prov].store(true, Ordering::SeqCst);
                    self.progress.line(&format!("error: {reason}"));
                    let _ = self.rtx.send(ResultsMsg::Error(reason));
                }
                Action::CancelAll => {
                    for slot in self.slots.values() {
                        slot.cancel.cancel();
                    }
                }
            }
        }
        self.peak = self.peak.max(self.slots.len());
    }

    fn setup(&mut self, rid: RemoteId) {
        let Some(slot) = self.slots.get(&rid) else {
            return;
        };
        let (remote, name, cancel) = (
            Arc::clone(&slot.remote),
            slot.name.clone(),
            slot.cancel.clone(),
        );
        let executor = Arc::clone(&self.exec.executor);
        let tx = self.tx.clone();
        thread::spawn(move || {
            let result = match remote.connection() {
                Ok(conn) => executor.open(&name, conn, &cancel),
                Err(e) => Err(ExecError::Unreachable {
                    system: name.clone(),
                    detail: e.to_string(),
                }),
            };
            let _ = tx.send(Msg::SetupEnd { rid, result });
        });
    }

    fn run(&mut self, rid: RemoteId, test: TestId, attempt: u32) {
        let Some(slot) = self.slots.get_mut(&rid) else {
            return;
        };
        let Some(mut system) = slot.system.take() else {
            return;
        };
        let cancel = slot.cancel.clone();
        let spec = self.exec.tests[test].spec.clone();
        let prefix = format!(
            "{}-",
            crate::results::store::normalize_path(&spec.name).replace('/', "-")
        );
        let artifacts = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&self.scratch)
            .map(|d| d.keep())
            .unwrap_or_else(|_| self.scratch.join(format!("{prefix}{rid}-{attempt}")));
        let _ = std::fs::create_dir_all(&artifacts);
        self.running_since.insert(test, Instant::now());
        let tx = self.tx.clone();
        let env = vec![("ATEX_TEST_ATTEMPT".to_string(), attempt.to_string())];
        thread::spawn(move || {
            let started = SystemTime::now();
            let t0 = Instant::now();
            let result = system.run_test(&spec, &artifacts, &env, &cancel);
            let end = TestEnd {
                rid,
                test,
                result,
                system,
                artifacts,
                started_unix_ms: unix_ms(started),
                took: t0.elapsed(),
            };
            let _ = tx.send(Msg::TestEnd(Box::new(end)));
        });
    }

    fn release(&mut self, rid: RemoteId) {
        let Some(slot) = self.slots.remove(&rid) else {
            return;
        };
        self.releasing += 1;
        let tx = self.tx.clone();
        thread::spawn(move || {
            if let Some(system) = slot.system {
                system.close();
            }
            let error = slot.remote.release().err().map(|e| e.to_string());
            let _ = tx.send(Msg::Released { rid, error });
        });
    }

    fn refresh(&mut self, engine: &Engine) {
        self.counts.running = engine.running() as u64;
        self.counts.queued = engine.queued() as u64;
        let in_progress: Duration = self.running_since.values().map(Instant::elapsed).sum();
        let workers = (self.slots.len().max(1)) as u32;
        self.counts.eta = Some(self.remaining_work.saturating_sub(in_progress) / workers);
        self.progress.update(&self.counts);
    }
}

fn results_loop(
    mut store: ResultsStore,
    mut reporters: Vec<Box<dyn Reporter>>,
    mut history: TimingHistory,
    rx: Receiver<ResultsMsg>,
    run_id: String,
    started_unix_ms: u64,
) -> Result<RunStats, RunError> {
    let mut stats = RunStats::default();
    let mut earlier: HashMap<String, Vec<String>> = HashMap::new();
    let mut first_error: Option<ResultsError> = None;
    let report = |reporters: &mut Vec<Box<dyn Reporter>>,
                  results: &[crate::backend::ReportedResult]| {
        for r in reporters.iter_mut() {
            for res in results {
                if let Err(e) = r.on_result(res) {
                    tracing::error!("reporter {}: {e}", r.name());
                }
            }
        }
    };
    for msg in rx.iter() {
        match msg {
            ResultsMsg::Attempt {
                info,
                artifacts,
                outcome,
            } => {
                if !outcome.system_lost {
                    history.record(&info.test, info.duration);
                }
                let results = match store.ingest(&info, &artifacts) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("storing {}: {e}", info.test);
                        stats.errors.push(format!("storing {}: {e}", info.test));
                        first_error.get_or_insert(e);
                        continue;
                    }
                };
                report(&mut reporters, &results);
                if info.final_attempt {
                    stats.finals.push(FinalTest {
                        test: info.test.clone(),
                        status: outcome.status.clone(),
                        note: outcome.note.clone(),
                        attempts: info.attempt,
                        earlier: earlier.remove(&info.test).unwrap_or_default(),
                        duration: info.duration,
                    });
                } else {
                    earlier
                        .entry(info.test.clone())
                        .or_default()
                        .push(outcome.status.clone());
                }
            }
            ResultsMsg::NotRun {
                platform,
                test,
                status,
                note,
            } => {
                match store.record_not_run(&platform, &test, status, &note) {
                    Ok(r) => report(&mut reporters, std::slice::from_ref(&r)),
                    Err(e) => {
                        stats.errors.push(format!("storing {test}: {e}"));
                        first_error.get_or_insert(e);
                    }
                }
                stats.finals.push(FinalTest {
                    test: test.clone(),
                    status: status.into(),
                    note: Some(note),
                    attempts: 0,
                    earlier: earlier.remove(&test).unwrap_or_default(),
                    duration: Duration::ZERO,
                });
            }
            ResultsMsg::Error(e) => stats.errors.push(e),
            ResultsMsg::Finish {
                wall,
                interrupted,
                tests_total,
                not_run,
            } => {
                stats.not_run = not_run;
                let summary = RunSummary {
                    run_id: run_id.clone(),
                    results_dir: store.dir().to_path_buf(),
                    started_unix_ms,
                    duration: wall,
                    tests_total,
                    counts: stats.counts(),
                    interrupted,
                    extra: serde_json::Map::new(),
                };
                for r in reporters.iter_mut() {
                    match r.finish(&summary) {
                        Ok(files) => {
                            for f in files {
                                tracing::info!("{} wrote {}", r.name(), f.display());
                            }
                        }
                        Err(e) => stats.errors.push(format!("reporter {}: {e}", r.name())),
                    }
                }
                let mut json = stats.to_json(wall, interrupted);
                json["run_id"] = serde_json::Value::String(run_id.clone());
                json["tests_total"] = tests_total.into();
                if let Err(e) = store.finish(&json) {
                    stats.errors.push(e.to_string());
                }
                if let Err(e) = history.save() {
                    stats
                        .errors
                        .push(format!("cannot save the timing history: {e}"));
                }
                break;
            }
        }
    }
    match first_error {
        Some(e) if stats.finals.is_empty() => Err(e.into()),
        _ => Ok(stats),
    }
}
