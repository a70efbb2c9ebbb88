//! The real driver: the [`Engine`] on one thread, fed by messages over a
//! crossbeam channel; every blocking job on a worker thread that reports
//! back. [`execute`] runs in phases:
//!
//! 1. **start** the provisioners ([`ProvHandle`] keeps what the driver
//!    needs of each); one that fails to start is an engine input of its
//!    own and never asked for systems;
//! 2. **fetchers**: one thread per started provisioner, waiting in
//!    `get_remote` (in short slices, and only while systems are asked of
//!    it) and sending each system it gets;
//! 3. **signals**: SIGINT/SIGTERM and the caller's interrupts forwarded as
//!    messages;
//! 4. **the loop**: messages become engine events, engine actions become
//!    threads (one per setup, per running test, per release) and
//!    [`RunEvent`]s;
//! 5. **wind-down**: fetchers stopped, late systems released, provisioners
//!    stopped, the results thread finished.
//!
//! A *results* thread owns the [`ResultsStore`], the timing history and
//! every [`EventSink`] (the terminal display, the reporters, the caller's
//! own), so a slow sink never holds up scheduling.
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
    display::{ProgressMode, TerminalDisplay},
    engine::{
        Action, DefaultPolicy, Engine, Event, Policy, ProvisionerInfo, QueuedTest, RemoteId,
        SchedulePolicy, TestId,
    },
    events::{Counts, EventSink, ReporterSink, RunEvent},
    packed::TestList,
};
use crate::{
    Status,
    backend::ReportedResult,
    backend::{Connection, Provisioner, Remote, Reporter, RunSummary},
    executor::{
        CancelToken, CommandOutput, ExecError, PlanSpec, System, SystemOptions, TestOutcome,
        TestSpec,
    },
    results::{
        AttemptInfo, FinalTest, Reopened, ResultsError, ResultsStore, RunStats, TimingHistory,
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

    /// [`TestExecutor::open`] for a system of `platform` (the platform its
    /// results are filed under). Default: the same for every platform.
    fn open_for(
        &self,
        remote: &str,
        platform: &str,
        connection: Connection,
        cancel: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError> {
        let _ = platform;
        self.open(remote, connection, cancel)
    }
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
    /// Runs `script` with bash on the system, outside any test (for
    /// [`SystemSetup`] steps). Systems that cannot say they do not.
    fn run_command(
        &mut self,
        script: &str,
        cancel: &CancelToken,
    ) -> Result<CommandOutput, ExecError> {
        let _ = (script, cancel);
        Err(ExecError::Setup {
            system: "system".into(),
            detail: "this system cannot run commands outside a test".into(),
        })
    }
    /// Runs finish steps (best effort) and disconnects.
    fn close(self: Box<Self>);
}

/// A step run on every new system after the plan's prepare steps and
/// before its first test (install a build under test, collect facts, ...).
/// An error is a setup failure: the system is released and its provisioner
/// charged, as when a prepare step fails.
pub trait SystemSetup: Send + Sync {
    /// Sets up `system` (named `name`, for `platform`).
    fn setup(
        &self,
        name: &str,
        platform: &str,
        system: &mut dyn ExecSystem,
        cancel: &CancelToken,
    ) -> Result<(), ExecError>;
}

/// The executor of [`crate::executor`]: uploads the tree and runs the plan's
/// prepare steps on each system.
pub struct FmfExecutor {
    /// The FMF tree root uploaded to each system.
    pub tree_root: PathBuf,
    /// The plan's environment, prepare and finish steps.
    pub plan: PlanSpec,
    /// The plan as some platforms see it (adjusted with their own
    /// context), instead of `plan`.
    pub plans: Vec<(String, PlanSpec)>,
    /// Options for each system.
    pub options: SystemOptions,
}

impl FmfExecutor {
    fn open_with(
        &self,
        remote: &str,
        plan: &PlanSpec,
        connection: Connection,
        cancel: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError> {
        let mut system = System::open(remote, connection, &self.options)?;
        if let Err(e) = system.setup(&self.tree_root, plan, cancel) {
            system.close();
            return Err(e);
        }
        Ok(Box::new(system))
    }
}

impl TestExecutor for FmfExecutor {
    fn open(
        &self,
        remote: &str,
        connection: Connection,
        cancel: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError> {
        self.open_with(remote, &self.plan, connection, cancel)
    }

    fn open_for(
        &self,
        remote: &str,
        platform: &str,
        connection: Connection,
        cancel: &CancelToken,
    ) -> Result<Box<dyn ExecSystem>, ExecError> {
        let plan = self
            .plans
            .iter()
            .find(|(p, _)| p == platform)
            .map_or(&self.plan, |(_, plan)| plan);
        self.open_with(remote, plan, connection, cancel)
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

    fn run_command(
        &mut self,
        script: &str,
        cancel: &CancelToken,
    ) -> Result<CommandOutput, ExecError> {
        System::run_command(self, script, cancel)
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
    /// The platform it is for: `None` runs it once on every platform of
    /// the run (every distinct [`Provisioner::platform`]); `Some` only on
    /// that one (its metadata was discovered with that platform's
    /// context).
    pub platform: Option<String>,
}

impl RunTest {
    /// A test for every platform.
    pub fn new(queued: QueuedTest, spec: TestSpec) -> Self {
        RunTest {
            queued,
            spec,
            platform: None,
        }
    }
}

/// The platform columns of a run and the jobs (test × platform) in them.
/// A test is kept once however many columns run it, packed until it
/// starts; a job is two numbers.
struct Matrix {
    /// Each column's platform name, when it has one.
    columns: Vec<Option<String>>,
    /// The column of each provisioner.
    prov_column: Vec<usize>,
    /// The run's tests.
    tests: TestList,
    /// One entry per (platform, test).
    jobs: Vec<Job>,
}

/// One test on one platform.
#[derive(Debug, Clone, Copy)]
struct Job {
    /// Index into [`Matrix::tests`].
    test: u32,
    /// Index into [`Matrix::columns`].
    column: u32,
}

impl Matrix {
    /// Columns from the provisioners' platforms (a provisioner without one
    /// has `default`'s, the run's `--platform`), in order of appearance.
    fn new(
        tests: TestList,
        provisioners: &[Arc<dyn Provisioner>],
        default: &Option<String>,
    ) -> Self {
        let mut columns: Vec<Option<String>> = Vec::new();
        let mut column_of = |p: Option<String>| {
            columns.iter().position(|c| *c == p).unwrap_or_else(|| {
                columns.push(p);
                columns.len() - 1
            })
        };
        let prov_column: Vec<usize> = provisioners
            .iter()
            .map(|p| column_of(p.platform().or_else(|| default.clone())))
            .collect();
        // A test meant for a platform no provisioner serves gets a column
        // of its own, where the engine gives it a result saying so.
        for i in 0..tests.len() {
            if let Some(p) = tests.platform(i) {
                column_of(Some(p.to_string()));
            }
        }
        if columns.is_empty() {
            columns.push(default.clone());
        }
        let mut jobs = Vec::new();
        for (c, platform) in columns.iter().enumerate() {
            for i in 0..tests.len() {
                let p = tests.platform(i);
                if p.is_none() || p == platform.as_deref() {
                    jobs.push(Job {
                        test: i as u32,
                        column: c as u32,
                    });
                }
            }
        }
        Matrix {
            columns,
            prov_column,
            tests,
            jobs,
        }
    }

    /// The name of `job`'s test.
    fn name(&self, job: TestId) -> &str {
        &self.tests.queued(self.jobs[job].test as usize).name
    }

    /// The platform of `job`'s column, when it has one.
    fn platform(&self, job: TestId) -> &Option<String> {
        &self.columns[self.jobs[job].column as usize]
    }

    /// The scheduler's view of every job, in job order, with its column
    /// and (in a matrix, where runtimes differ between platforms) its
    /// runtime from `history`.
    fn queued(&self, history: &TimingHistory) -> Vec<QueuedTest> {
        (0..self.jobs.len())
            .map(|j| {
                let job = self.jobs[j];
                let mut q = self.tests.queued(job.test as usize).clone();
                q.column = job.column as usize;
                if self.columns.len() > 1 {
                    q.expected = history.expected(&self.history_key(j));
                }
                q
            })
            .collect()
    }

    /// Leaves out the jobs an earlier run already finished: (platform,
    /// test) pairs; a job of a column without a platform name matches its
    /// test on any platform.
    fn skip_done(&mut self, done: &std::collections::HashSet<(String, String)>) {
        if done.is_empty() {
            return;
        }
        let names: std::collections::HashSet<&str> = done.iter().map(|(_, t)| t.as_str()).collect();
        let (columns, tests) = (&self.columns, &self.tests);
        self.jobs.retain(|j| {
            let name = &tests.queued(j.test as usize).name;
            match &columns[j.column as usize] {
                Some(p) => !done.contains(&(p.clone(), name.clone())),
                None => !names.contains(name.as_str()),
            }
        });
    }

    /// The key under which a job's runtime is remembered: the test name,
    /// with the platform when the column has one.
    fn history_key(&self, job: TestId) -> String {
        match self.platform(job) {
            Some(p) if self.columns.len() > 1 => format!("{p}:{}", self.name(job)),
            _ => self.name(job).to_string(),
        }
    }
}

/// Everything [`execute`] needs.
pub struct Execution {
    /// Tests, in discovery order (`collect` them from [`RunTest`]s).
    pub tests: TestList,
    /// Sources of systems (started by [`execute`], stopped at the end).
    pub provisioners: Vec<Arc<dyn Provisioner>>,
    /// Result consumers.
    pub reporters: Vec<Box<dyn Reporter>>,
    /// The caller's own consumers of [`RunEvent`]s (the terminal display
    /// and the reporters are added by [`execute`]).
    pub sinks: Vec<Box<dyn EventSink>>,
    /// Sets systems up and runs tests on them.
    pub executor: Arc<dyn TestExecutor>,
    /// Scheduling policies: numbers.
    pub policy: Policy,
    /// Scheduling policies: decisions (which test next, when a system is
    /// replaced, what is rerun); [`DefaultPolicy`] unless changed.
    pub decisions: Arc<dyn SchedulePolicy>,
    /// A step for every new system before its first test.
    pub setup: Option<Arc<dyn SystemSetup>>,
    /// Results directory.
    pub results_dir: PathBuf,
    /// Platform name for results, instead of each remote's.
    pub platform: Option<String>,
    /// Runtimes from earlier runs, updated with this run's.
    pub history: TimingHistory,
    /// How to show progress on the terminal ([`ProgressMode::Quiet`]: not
    /// at all).
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
    /// Continue the run whose results are already in `results_dir`.
    pub continue_run: Option<ContinueRun>,
}

/// How to continue an earlier run in the same results directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContinueRun {
    /// Run what has no final result yet (an interrupted or partial run);
    /// tests cut short by the interrupt run again.
    Resume,
    /// Run again the tests whose final result is a failure; their earlier
    /// results become earlier attempts.
    RerunFailed,
}

impl ContinueRun {
    /// Whether a stored final result (its status and note) runs again.
    fn again(self, status: Option<&Status>, note: Option<&str>) -> bool {
        let cancelled = note == Some("cancel requested");
        match self {
            ContinueRun::Resume => cancelled,
            ContinueRun::RerunFailed => cancelled || status.is_none_or(Status::is_failure),
        }
    }
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
            tests: super::plan::run_tests(found, &history).into(),
            provisioners,
            reporters: Vec::new(),
            sinks: Vec::new(),
            executor: Arc::new(FmfExecutor {
                tree_root: found.root.clone(),
                plan: super::plan::plan_spec(&found.plan),
                plans: Vec::new(),
                options: SystemOptions::default(),
            }),
            policy: Policy {
                workers: workers.map_or(4, |w| w.max(1) as usize),
                ..Policy::default()
            },
            decisions: Arc::new(DefaultPolicy),
            setup: None,
            results_dir: results_dir.into(),
            platform: None,
            history,
            progress: ProgressMode::Plain,
            signals: true,
            interrupts: None,
            plugin_cancel: None,
            run_id: super::new_run_id(),
            continue_run: None,
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
    /// The run identifier.
    pub run_id: String,
}

impl RunReport {
    /// The exit code: 0 all passed, 1 a test failed, 2 infrastructure
    /// (or results that could not be written), 128 + signal when
    /// interrupted.
    pub fn exit_code(&self) -> u8 {
        exit_code(self.interrupted, self.infra_failure, &self.stats)
    }
}

/// The exit code of a run (see [`RunReport::exit_code`]).
fn exit_code(interrupted: Option<i32>, infra_failure: bool, stats: &RunStats) -> u8 {
    if let Some(sig) = interrupted {
        return (128 + sig).clamp(0, 255) as u8;
    }
    if infra_failure || stats.results_incomplete() {
        2
    } else if stats.any_failed() {
        1
    } else {
        0
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
    /// A file or directory of the run could not be made.
    #[error("{path}: {error}")]
    Io {
        /// What could not be made.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A thread could not be started, or one panicked.
    #[error("{0}")]
    Thread(String),
}

/// Messages to the loop.
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
        name: String,
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

/// Messages to the results thread.
enum ResultsMsg {
    Event(RunEvent),
    /// Results of an earlier run of the same directory.
    Kept(Vec<ReportedResult>),
    Attempt {
        info: AttemptInfo,
        artifacts: PathBuf,
        outcome: TestOutcome,
        history_key: String,
    },
    NotRun {
        platform: String,
        test: String,
        status: Status,
        note: String,
    },
    Error(String),
    Finish {
        wall: Duration,
        interrupted: Option<i32>,
        infra_failure: bool,
        tests_total: u64,
        not_run: Vec<String>,
        /// (platform, test) of each job that never got a result.
        not_run_jobs: Vec<(String, String)>,
        /// Why they did not run.
        not_run_reason: String,
    },
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One provisioner of a run and what the driver keeps for it.
pub(crate) struct ProvHandle {
    provisioner: Arc<dyn Provisioner>,
    started: bool,
    /// Tells the fetcher to end.
    stop: Arc<AtomicBool>,
    /// Systems asked and not received yet. The fetcher only waits in
    /// `get_remote` while something is asked, so a provisioner that hands
    /// out more than it was asked for cannot flood the run.
    asked: Arc<AtomicU32>,
    /// Wakes the fetcher as soon as something is asked.
    wake: (Sender<()>, Receiver<()>),
}

impl ProvHandle {
    /// Phase 1: starts `provisioner`; a failure is reported as an event.
    fn start(
        provisioner: Arc<dyn Provisioner>,
        events: &Sender<ResultsMsg>,
    ) -> (Self, Option<String>) {
        let failure = provisioner.start().err().map(|e| {
            let _ = events.send(ResultsMsg::Event(RunEvent::ProvisionerFailedToStart {
                provisioner: provisioner.name(),
                error: e.to_string(),
            }));
            format!("provisioner {} failed to start: {e}", provisioner.name())
        });
        let handle = ProvHandle {
            started: failure.is_none(),
            provisioner,
            stop: Arc::new(AtomicBool::new(false)),
            asked: Arc::new(AtomicU32::new(0)),
            wake: unbounded(),
        };
        (handle, failure)
    }

    fn name(&self) -> String {
        self.provisioner.name()
    }

    /// Phase 2: the thread that waits for this provisioner's systems.
    fn spawn_fetcher(&self, prov: usize, tx: Sender<Msg>) -> Option<JoinHandle<()>> {
        if !self.started {
            return None;
        }
        let p = Arc::clone(&self.provisioner);
        let (stop, asked, woken) = (
            Arc::clone(&self.stop),
            Arc::clone(&self.asked),
            self.wake.1.clone(),
        );
        Some(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if asked.load(Ordering::SeqCst) == 0 {
                    let _ = woken.recv_timeout(Duration::from_millis(100));
                    continue;
                }
                match p.get_remote(Duration::from_millis(200)) {
                    Ok(Some(remote)) => {
                        let _ = asked
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                        if tx.send(Msg::Ready { prov, remote }).is_err() {
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let error = e.to_string();
                        // The error answers one request.
                        let _ = asked
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                        if tx.send(Msg::ProvError { prov, error }).is_err() {
                            break;
                        }
                        thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }))
    }

    fn ask(&self, count: u32) {
        self.provisioner.provision(count);
        let _ = self
            .asked
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(count))
            });
        let _ = self.wake.0.send(());
    }

    fn clear(&self) {
        self.provisioner.clear();
        self.asked.store(0, Ordering::SeqCst);
    }

    fn halt_fetcher(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Phase 3: SIGINT/SIGTERM (when asked for) and the caller's interrupts,
/// forwarded to the loop.
struct SignalForwarder {
    handle: Option<signal_hook::iterator::Handle>,
    thread: Option<JoinHandle<()>>,
}

impl SignalForwarder {
    fn start(os_signals: bool, extra: Option<Receiver<i32>>, tx: &Sender<Msg>) -> Self {
        let mut fwd = SignalForwarder {
            handle: None,
            thread: None,
        };
        if os_signals {
            use signal_hook::consts::{SIGINT, SIGTERM};
            match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
                Ok(mut signals) => {
                    fwd.handle = Some(signals.handle());
                    let tx = tx.clone();
                    fwd.thread = Some(thread::spawn(move || {
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
        if let Some(ext) = extra {
            let tx = tx.clone();
            thread::spawn(move || {
                for sig in ext.iter() {
                    if tx.send(Msg::Signal(sig)).is_err() {
                        break;
                    }
                }
            });
        }
        fwd
    }

    fn close(self) {
        if let Some(h) = self.handle {
            h.close();
        }
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }
}

/// How long releases and provisioner stops may take after a second
/// signal: a best effort, then the run ends.
const FORCED_WIND_DOWN: Duration = Duration::from_secs(6);

/// How the loop ended.
struct LoopEnd {
    interrupted: Option<i32>,
    forced: bool,
}

/// Runs the tests on the provisioners' systems and stores the results.
pub fn execute(mut exec: Execution) -> Result<RunReport, RunError> {
    let t0 = Instant::now();
    let started_unix_ms = unix_ms(SystemTime::now());
    let (store, reopened) = match exec.continue_run {
        None => (
            ResultsStore::create(&exec.results_dir)?,
            Reopened::default(),
        ),
        Some(mode) => ResultsStore::reopen(&exec.results_dir, |st, note| mode.again(st, note))?,
    };
    let scratch = store.scratch_dir();
    std::fs::create_dir_all(&scratch).map_err(|error| RunError::Io {
        path: scratch.clone(),
        error,
    })?;

    // The results thread first, so that every event has its sinks.
    let (rtx, rrx) = unbounded::<ResultsMsg>();
    let mut sinks: Vec<Box<dyn EventSink>> = Vec::new();
    if exec.progress != ProgressMode::Quiet {
        sinks.push(Box::new(TerminalDisplay::new(exec.progress)));
    }
    for r in std::mem::take(&mut exec.reporters) {
        sinks.push(Box::new(ReporterSink::new(r)));
    }
    sinks.append(&mut exec.sinks);
    let tests = std::mem::take(&mut exec.tests);
    let mut matrix = Matrix::new(tests, &exec.provisioners, &exec.platform);
    matrix.skip_done(&reopened.done);
    let kept_jobs = reopened.done.len();
    let queued = matrix.queued(&exec.history);
    let _ = rtx.send(ResultsMsg::Event(RunEvent::RunStarted {
        run_id: exec.run_id.clone(),
        results_dir: exec.results_dir.clone(),
        tests: matrix.jobs.len(),
        platforms: matrix.columns.iter().flatten().cloned().collect(),
    }));
    let results = ResultsThread {
        store,
        sinks,
        history: std::mem::take(&mut exec.history),
        run_id: exec.run_id.clone(),
        started_unix_ms,
        stats: RunStats::default(),
        earlier: HashMap::new(),
    };
    let _ = rtx.send(ResultsMsg::Kept(reopened.kept));
    let results_thread = thread::Builder::new()
        .name("atex-results".into())
        .spawn(move || results.run(rrx))
        .map_err(|e| RunError::Thread(format!("cannot start a thread: {e}")))?;

    // Phase 1: start the provisioners.
    let mut errors = Vec::new();
    let mut provs: Vec<ProvHandle> = Vec::with_capacity(exec.provisioners.len());
    for p in &exec.provisioners {
        let (handle, failure) = ProvHandle::start(Arc::clone(p), &rtx);
        errors.extend(failure);
        provs.push(handle);
    }
    if !provs.is_empty() && !provs.iter().any(|p| p.started) {
        drop(rtx);
        let _ = results_thread.join();
        return Err(RunError::NoProvisioner(errors.join("; ")));
    }

    // Phase 2: fetchers.
    let (tx, rx) = unbounded::<Msg>();
    let fetchers: Vec<JoinHandle<()>> = provs
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.spawn_fetcher(i, tx.clone()))
        .collect();

    // Phase 3: signals.
    let signals = SignalForwarder::start(exec.signals, exec.interrupts.take(), &tx);

    // Phase 4: the loop.
    let infos: Vec<ProvisionerInfo> = provs
        .iter()
        .zip(&matrix.prov_column)
        .map(|(p, column)| ProvisionerInfo {
            name: p.name(),
            max_remotes: p.provisioner.max_remotes(),
            column: *column,
        })
        .collect();
    let eta = EtaBasis::new(queued.iter().map(|q| q.expected));
    let mut engine =
        Engine::new(queued, infos, exec.policy.clone()).with_policy(Arc::clone(&exec.decisions));
    let mut out = Vec::new();
    for (prov, p) in provs.iter().enumerate() {
        if !p.started {
            engine.handle(
                Duration::ZERO,
                Event::ProvisionerUnavailable { prov },
                &mut out,
            );
        }
    }
    engine.start(Duration::ZERO, &mut out);
    let mut st = LoopState {
        exec: &exec,
        matrix: &matrix,
        provs: &provs,
        tx,
        rtx,
        slots: HashMap::new(),
        releasing: 0,
        next_rid: 0,
        pending: HashMap::new(),
        abort_asked: false,
        counts: Counts {
            queued: engine.queued() as u64,
            ..Counts::default()
        },
        shown: None,
        scratch,
        platform_seen: None,
        infra_failure: false,
        eta,
        running_since: HashMap::new(),
        live: HashMap::new(),
        peak: 0,
    };
    st.apply(&mut engine, &mut out);
    let end = st.run_loop(&mut engine, &rx, t0, &mut out);

    // Phase 5: wind down. A signal while waiting for the fetchers forces
    // the end as a second signal does.
    let mut end = end;
    st.wind_down(fetchers, &rx, &mut end);
    signals.close();
    let wall = t0.elapsed();
    let not_run: Vec<String> = engine
        .not_run()
        .iter()
        .map(|t| job_label(&matrix, *t))
        .collect();
    let not_run_jobs: Vec<(String, String)> = engine
        .not_run()
        .iter()
        .map(|t| (st.job_platform(*t), matrix.name(*t).to_string()))
        .collect();
    let not_run_reason = if end.interrupted.is_some() {
        "run interrupted".to_string()
    } else if let (true, Some(n)) = (engine.max_fail_reached(), exec.policy.max_fail) {
        format!("--max-fail {n} reached")
    } else {
        "the run stopped".to_string()
    };
    for e in errors {
        st.send(ResultsMsg::Error(e));
    }
    st.send(ResultsMsg::Finish {
        wall,
        interrupted: end.interrupted,
        infra_failure: st.infra_failure,
        tests_total: (matrix.jobs.len() + kept_jobs) as u64,
        not_run,
        not_run_jobs,
        not_run_reason,
    });
    let (infra_failure, peak) = (st.infra_failure, st.peak);
    drop(st);
    let stats = if end.forced {
        // Give the results thread a moment to finish its file writes.
        let (done_tx, done_rx) = unbounded();
        thread::spawn(move || {
            let _ = done_tx.send(results_thread.join());
        });
        match done_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(s)) => s,
            _ => RunStats::default(),
        }
    } else {
        results_thread
            .join()
            .map_err(|_| RunError::Thread("the results thread panicked".into()))?
    };
    Ok(RunReport {
        stats,
        tests_total: matrix.jobs.len() + kept_jobs,
        wall,
        interrupted: end.interrupted,
        forced: end.forced,
        infra_failure,
        results_dir: exec.results_dir.clone(),
        peak_systems: peak,
        run_id: exec.run_id.clone(),
    })
}

/// The test output among a result's files (relative to `dir`): the file
/// named `output.txt`, else the first one (where a `testout` goes) when it
/// is a `.txt` or `.log`.
fn own_output(dir: &Path, files: &[String]) -> Option<PathBuf> {
    files
        .iter()
        .find(|f| f.ends_with("/output.txt"))
        .or(files
            .first()
            .filter(|f| f.ends_with(".txt") || f.ends_with(".log")))
        .map(|f| dir.join(f))
}

/// A job's name for lists: the test, with its platform in a matrix.
fn job_label(matrix: &Matrix, job: TestId) -> String {
    match matrix.platform(job) {
        Some(p) if matrix.columns.len() > 1 => format!("{} on {p}", matrix.name(job)),
        _ => matrix.name(job).to_string(),
    }
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

struct LoopState<'a> {
    exec: &'a Execution,
    matrix: &'a Matrix,
    provs: &'a [ProvHandle],
    tx: Sender<Msg>,
    rtx: Sender<ResultsMsg>,
    slots: HashMap<RemoteId, Slot>,
    releasing: usize,
    next_rid: RemoteId,
    /// The attempt that just finished on each system, until recorded.
    pending: HashMap<TestId, (AttemptInfo, PathBuf, TestOutcome)>,
    counts: Counts,
    /// The counts last sent as a progress event.
    shown: Option<Counts>,
    scratch: PathBuf,
    platform_seen: Option<String>,
    infra_failure: bool,
    /// What the ETA is computed from.
    eta: EtaBasis,
    running_since: HashMap<TestId, Instant>,
    /// The live output link of each running test.
    live: HashMap<TestId, PathBuf>,
    peak: usize,
    /// A test called `tmt-abort`: the run stops after its result.
    abort_asked: bool,
}

impl LoopState<'_> {
    fn send(&self, msg: ResultsMsg) {
        let _ = self.rtx.send(msg);
    }

    fn emit(&self, event: RunEvent) {
        self.send(ResultsMsg::Event(event));
    }

    /// Phase 4: until every test is done and every system released.
    fn run_loop(
        &mut self,
        engine: &mut Engine,
        rx: &Receiver<Msg>,
        t0: Instant,
        out: &mut Vec<Action>,
    ) -> LoopEnd {
        let mut end = LoopEnd {
            interrupted: None,
            forced: false,
        };
        while !(engine.finished() && self.releasing == 0) {
            let msg = match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    self.refresh(engine, true);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let event = match msg {
                Msg::Signal(signal) => {
                    if end.interrupted.is_some() {
                        self.emit(RunEvent::ForcedExit { signal });
                        end.forced = true;
                        break;
                    }
                    self.emit(RunEvent::Interrupted { signal });
                    end.interrupted = Some(signal);
                    if let Some(flag) = &self.exec.plugin_cancel {
                        flag.store(true, Ordering::SeqCst);
                    }
                    Some(Event::Interrupt)
                }
                other => self.translate(engine, other),
            };
            if std::mem::take(&mut self.abort_asked) {
                // `tmt-abort`: no further test starts, as in tmt (before the
                // test's end frees its system for the next one).
                engine.handle(t0.elapsed(), Event::Interrupt, out);
                self.apply(engine, out);
            }
            if let Some(event) = event {
                engine.handle(t0.elapsed(), event, out);
                self.apply(engine, out);
            }
            self.refresh(engine, false);
        }
        end
    }

    /// Phase 5: stop the fetchers, release what is left, stop the
    /// provisioners. After a second signal (also one that comes while a
    /// plugin call keeps a fetcher busy), releases and stops together get
    /// [`FORCED_WIND_DOWN`] and the run ends.
    fn wind_down(&mut self, fetchers: Vec<JoinHandle<()>>, rx: &Receiver<Msg>, end: &mut LoopEnd) {
        let provs = self.provs;
        for p in provs {
            p.halt_fetcher();
        }
        if !end.forced {
            // Fetchers end within a `get_remote` slice, unless a plugin
            // ignores its timeout; meanwhile late systems are released and
            // a second signal is heard.
            while fetchers.iter().any(|f| !f.is_finished()) {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(Msg::Ready { remote, .. }) => {
                        let _ = remote.release();
                    }
                    Ok(Msg::Signal(signal)) if end.interrupted.is_some() => {
                        self.emit(RunEvent::ForcedExit { signal });
                        end.forced = true;
                        break;
                    }
                    Ok(Msg::Signal(signal)) => {
                        self.emit(RunEvent::Interrupted { signal });
                        end.interrupted = Some(signal);
                    }
                    _ => {}
                }
            }
        }
        if end.forced {
            for slot in self.slots.values() {
                slot.cancel.cancel();
            }
            let mut joins = Vec::new();
            for (_, s) in self.slots.drain() {
                joins.push(thread::spawn(move || {
                    let _ = s.remote.release();
                }));
            }
            let all: Vec<Arc<dyn Provisioner>> =
                provs.iter().map(|p| Arc::clone(&p.provisioner)).collect();
            joins.push(thread::spawn(move || {
                for p in all {
                    let _ = p.stop();
                }
            }));
            wait_all(joins, FORCED_WIND_DOWN);
            return;
        }
        for f in fetchers {
            let _ = f.join();
        }
        // A system that arrived after the end is released right away.
        while let Ok(msg) = rx.try_recv() {
            if let Msg::Ready { remote, .. } = msg {
                let _ = remote.release();
            }
        }
        for p in provs.iter().filter(|p| p.started) {
            if let Err(e) = p.provisioner.stop() {
                self.emit(RunEvent::ProvisionerStopFailed {
                    provisioner: p.name(),
                    error: e.to_string(),
                });
            }
        }
    }

    fn translate(&mut self, engine: &mut Engine, msg: Msg) -> Option<Event> {
        match msg {
            Msg::Ready { prov, remote } => {
                self.next_rid += 1;
                let rid = self.next_rid;
                let remote: Arc<dyn Remote> = Arc::from(remote);
                let name = remote.name();
                let platform = self.matrix.columns[self.matrix.prov_column[prov]]
                    .clone()
                    .unwrap_or_else(|| remote.platform());
                self.platform_seen.get_or_insert_with(|| platform.clone());
                self.emit(RunEvent::SystemReady {
                    system: name.clone(),
                    provisioner: self.provs[prov].name(),
                    platform: platform.clone(),
                });
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
                self.emit(RunEvent::ProvisionerError {
                    provisioner: self.provs[prov].name(),
                    error: error.clone(),
                });
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
                        let system = self.slots.get(&rid).map(|s| s.name.clone());
                        self.emit(RunEvent::SystemSetupFailed {
                            system: system.unwrap_or_default(),
                            error: e.to_string(),
                        });
                    }
                    Some(Event::SetupFailed {
                        remote: rid,
                        error: e.to_string(),
                    })
                }
            },
            Msg::TestEnd(end) => self.test_ended(engine, *end),
            Msg::Released { name, error, .. } => {
                self.releasing -= 1;
                if let Some(error) = error {
                    self.emit(RunEvent::SystemReleaseFailed {
                        system: name,
                        error,
                    });
                }
                None
            }
            Msg::Signal(_) => None,
        }
    }

    fn test_ended(&mut self, engine: &Engine, end: TestEnd) -> Option<Event> {
        let TestEnd {
            rid,
            test,
            result,
            system,
            artifacts,
            started_unix_ms,
            took,
        } = end;
        self.running_since.remove(&test);
        self.drop_live_output(test);
        let slot = self.slots.get_mut(&rid)?;
        slot.system = Some(system);
        let (system, platform, prov) = (slot.name.clone(), slot.platform.clone(), slot.prov);
        let name = self.matrix.name(test);
        match result {
            // A test cut short by an interrupt is recorded as the executor
            // reports it: `infra`, "cancel requested", with its output.
            Ok(outcome) => {
                let failed = outcome.status.is_failure();
                let info = AttemptInfo {
                    platform,
                    test: name.to_string(),
                    attempt: 0,
                    final_attempt: false,
                    remote: system.clone(),
                    provisioner: self.provs[prov].name(),
                    started_unix_ms,
                    duration: took,
                    exit_code: outcome.exit_code,
                    reboots: outcome.reboots,
                    system_lost: outcome.system_lost,
                    reason: outcome.reason.clone(),
                };
                let lost = outcome.system_lost;
                self.abort_asked |= outcome.abort_run;
                if lost {
                    self.emit(RunEvent::SystemLost {
                        system,
                        test: name.to_string(),
                    });
                }
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
                    self.emit(RunEvent::SystemBroke {
                        system,
                        test: name.to_string(),
                        error: e.to_string(),
                    });
                }
                Some(Event::TestBroken {
                    remote: rid,
                    test,
                    error: e.to_string(),
                })
            }
        }
    }

    fn apply(&mut self, engine: &mut Engine, out: &mut Vec<Action>) {
        for action in out.drain(..) {
            match action {
                Action::Provision { prov, count } => {
                    tracing::debug!(prov, count, "provision");
                    self.provs[prov].ask(count);
                }
                Action::Clear { prov } => self.provs[prov].clear(),
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
                } => self.record(engine, test, attempt, final_attempt),
                Action::GiveUp { test, status, note } => {
                    let expected = engine.tests()[test].expected;
                    self.give_up(test, status, note, expected)
                }
                Action::DropProvisioner { prov, reason } => {
                    self.provs[prov].halt_fetcher();
                    self.emit(RunEvent::ProvisionerDropped {
                        provisioner: self.provs[prov].name(),
                        reason: reason.clone(),
                    });
                    self.send(ResultsMsg::Error(reason));
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

    fn record(&mut self, engine: &Engine, test: TestId, attempt: u32, final_attempt: bool) {
        let Some((mut info, artifacts, outcome)) = self.pending.remove(&test) else {
            return;
        };
        info.attempt = attempt;
        info.final_attempt = final_attempt;
        self.eta.measured(info.duration);
        if final_attempt {
            self.counts.add(&outcome.status);
            self.eta.ended(engine.tests()[test].expected);
            self.counts.running = engine.running() as u64;
            self.counts.queued = engine.queued() as u64;
            self.emit(RunEvent::TestFinished {
                test: info.test.clone(),
                platform: info.platform.clone(),
                system: info.remote.clone(),
                attempt,
                status: outcome.status.clone(),
                note: outcome.note.clone(),
                reason: outcome.reason.clone(),
                duration: info.duration,
            });
        } else {
            self.emit(RunEvent::TestRerun {
                test: info.test.clone(),
                platform: info.platform.clone(),
                attempt,
                status: outcome.status.clone(),
                note: outcome.note.clone(),
                reason: outcome.reason.clone(),
            });
        }
        let history_key = self.matrix.history_key(test);
        self.send(ResultsMsg::Attempt {
            info,
            artifacts,
            outcome,
            history_key,
        });
    }

    fn give_up(&mut self, test: TestId, status: Status, note: String, expected: Option<Duration>) {
        if status == Status::Infra {
            self.infra_failure = true;
        }
        let name = self.matrix.name(test).to_string();
        let platform = self.job_platform(test);
        self.counts.add(&status);
        self.eta.ended(expected);
        self.emit(RunEvent::TestNotRun {
            test: name.clone(),
            platform: platform.clone(),
            status: status.clone(),
            note: note.clone(),
        });
        self.send(ResultsMsg::NotRun {
            platform,
            test: name,
            status,
            note,
        });
    }

    /// The platform a job's results are filed under.
    fn job_platform(&self, test: TestId) -> String {
        self.matrix
            .platform(test)
            .clone()
            .or_else(|| self.platform_seen.clone())
            .or_else(|| self.provs.first().map(ProvHandle::name))
            .unwrap_or_else(|| "unknown".into())
    }

    fn setup(&mut self, rid: RemoteId) {
        let Some(slot) = self.slots.get(&rid) else {
            return;
        };
        let (remote, name, platform, cancel) = (
            Arc::clone(&slot.remote),
            slot.name.clone(),
            slot.platform.clone(),
            slot.cancel.clone(),
        );
        let executor = Arc::clone(&self.exec.executor);
        let hook = self.exec.setup.clone();
        let tx = self.tx.clone();
        thread::spawn(move || {
            let mut result = match remote.connection() {
                Ok(conn) => executor.open_for(&name, &platform, conn, &cancel),
                Err(e) => Err(ExecError::Unreachable {
                    system: name.clone(),
                    detail: e.to_string(),
                }),
            };
            if let (Some(hook), Ok(system)) = (&hook, &mut result)
                && let Err(e) = hook.setup(&name, &platform, system.as_mut(), &cancel)
            {
                if let Ok(system) = result {
                    system.close();
                }
                result = Err(e);
            }
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
        let (cancel, system_name, platform) = (
            slot.cancel.clone(),
            slot.name.clone(),
            slot.platform.clone(),
        );
        let spec = self.matrix.tests.spec(self.matrix.jobs[test].test as usize);
        let prefix = format!(
            "{}-",
            crate::results::normalize_path(&spec.name).replace('/', "-")
        );
        let artifacts = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(&self.scratch)
            .map(|d| d.keep())
            .unwrap_or_else(|_| self.scratch.join(format!("{prefix}{rid}-{attempt}")));
        let _ = std::fs::create_dir_all(&artifacts);
        let name = self.matrix.name(test).to_string();
        if let Some(live) = self.live_output(&platform, &name, &artifacts) {
            self.live.insert(test, live);
        }
        self.running_since.insert(test, Instant::now());
        self.emit(RunEvent::TestStarted {
            test: spec.name.clone(),
            platform,
            system: system_name,
            attempt,
        });
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

    /// Makes the output of a test that starts visible where its results
    /// go, `files/<platform>/<test>/output.txt`, while it runs: the file
    /// the executor appends the output to (`testout.temp` in the
    /// artifacts) is created here and hard-linked there. Returns the link,
    /// which [`LoopState::drop_live_output`] removes when the attempt ends
    /// (its results are then stored as usual).
    fn live_output(&self, platform: &str, test: &str, artifacts: &Path) -> Option<PathBuf> {
        let testout = artifacts.join("testout.temp");
        std::fs::File::create(&testout).ok()?;
        let dir = self.exec.results_dir.join(format!(
            "files/{}/{}",
            crate::results::normalize_path(platform),
            crate::results::normalize_path(test)
        ));
        std::fs::create_dir_all(&dir).ok()?;
        let link = dir.join("output.txt");
        // A leftover of a run that was killed while this test ran.
        let _ = std::fs::remove_file(&link);
        std::fs::hard_link(&testout, &link).ok()?;
        Some(link)
    }

    /// Removes the live output link of `test` and its directory (only
    /// the test's own: the results thread may be filling its parents).
    fn drop_live_output(&mut self, test: TestId) {
        if let Some(link) = self.live.remove(&test) {
            let _ = std::fs::remove_file(&link);
            if let Some(dir) = link.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
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
            let _ = tx.send(Msg::Released {
                name: slot.name,
                error,
            });
        });
    }

    /// Updates the counters; sends them when they changed, or on `tick`
    /// (the ETA moves with time).
    fn refresh(&mut self, engine: &Engine, tick: bool) {
        self.counts.running = engine.running() as u64;
        self.counts.queued = engine.queued() as u64;
        self.counts.not_run = engine.not_run().len() as u64;
        let running: Vec<(Option<Duration>, Duration)> = self
            .running_since
            .iter()
            .map(|(t, since)| (engine.tests()[*t].expected, since.elapsed()))
            .collect();
        let parallel = if running.is_empty() {
            self.exec.policy.workers
        } else {
            running.len()
        };
        let eta = self.eta.left(engine.stopping(), &running, parallel);
        let changed = self.shown.is_none_or(|s| {
            Counts {
                eta: s.eta,
                ..self.counts
            } != s
        });
        self.counts.eta = eta;
        if changed || tick {
            self.shown = Some(self.counts);
            self.emit(RunEvent::Progress {
                counts: self.counts,
            });
        }
    }
}

/// Jobs that never ran handed to the reporters at a time.
const NOT_RUN_BATCH: usize = 1024;

/// The results thread: stores what lands, keeps the summary and the
/// timing history, and hands every event to the sinks.
struct ResultsThread {
    store: ResultsStore,
    sinks: Vec<Box<dyn EventSink>>,
    history: TimingHistory,
    run_id: String,
    started_unix_ms: u64,
    stats: RunStats,
    /// Statuses of earlier attempts of tests that are being rerun, by
    /// (platform, test).
    earlier: HashMap<(String, String), Vec<Status>>,
}

impl ResultsThread {
    fn run(mut self, rx: Receiver<ResultsMsg>) -> RunStats {
        for msg in rx.iter() {
            match msg {
                ResultsMsg::Event(e) => self.dispatch(&e),
                ResultsMsg::Kept(kept) => self.keep(kept),
                ResultsMsg::Attempt {
                    info,
                    artifacts,
                    outcome,
                    history_key,
                } => self.attempt(info, &artifacts, outcome, &history_key),
                ResultsMsg::NotRun {
                    platform,
                    test,
                    status,
                    note,
                } => {
                    match self.store.record_not_run(&platform, &test, &status, &note) {
                        Ok(r) => self.dispatch(&RunEvent::ResultsStored { results: vec![r] }),
                        Err(e) => self.lost(&test, e),
                    }
                    self.stats.push(FinalTest {
                        earlier: self
                            .earlier
                            .remove(&(platform.clone(), test.clone()))
                            .unwrap_or_default(),
                        platform,
                        test,
                        status,
                        reason: Some(note.clone()),
                        note: Some(note),
                        attempts: 0,
                        duration: Duration::ZERO,
                        output: None,
                    });
                }
                ResultsMsg::Error(e) => self.stats.errors.push(e),
                ResultsMsg::Finish {
                    wall,
                    interrupted,
                    infra_failure,
                    tests_total,
                    not_run,
                    not_run_jobs,
                    not_run_reason,
                } => {
                    if !not_run.is_empty() {
                        self.stats.not_run_reason = Some(not_run_reason.clone());
                    }
                    self.report_not_run(&not_run_jobs, &not_run_reason);
                    self.finish(wall, interrupted, infra_failure, tests_total, not_run);
                    break;
                }
            }
        }
        self.stats
    }

    /// Results an earlier run of the same directory finished: into the
    /// summary, and to the sinks (so reports cover the whole run).
    fn keep(&mut self, kept: Vec<ReportedResult>) {
        if kept.is_empty() {
            return;
        }
        for r in kept.iter().filter(|r| r.subtest.is_none()) {
            self.stats.push(FinalTest {
                platform: r.platform.clone(),
                test: r.test.clone(),
                status: r.status.clone().unwrap_or(Status::Pass),
                note: r.note.clone(),
                reason: r
                    .extra
                    .get("reason")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                attempts: r.attempt,
                earlier: Vec::new(),
                duration: Duration::ZERO,
                output: own_output(&r.results_dir, &r.files),
            });
        }
        self.dispatch(&RunEvent::ResultsStored { results: kept });
    }

    /// Hands an event to every sink.
    fn dispatch(&mut self, event: &RunEvent) {
        for sink in &mut self.sinks {
            if let Err(e) = sink.on_event(event) {
                let msg = format!("{}: {e}", sink.name());
                if matches!(event, RunEvent::RunFinished { .. }) {
                    // A report that could not be written: the run says so
                    // at its end and exits 2.
                    self.stats.errors.push(msg.clone());
                    self.stats.unwritten.push(msg);
                } else {
                    tracing::error!("{msg}");
                }
            }
        }
    }

    fn lost(&mut self, test: &str, error: ResultsError) {
        let error = error.to_string();
        self.dispatch(&RunEvent::ResultsLost {
            test: test.to_string(),
            error: error.clone(),
        });
        self.stats.errors.push(format!("storing {test}: {error}"));
        self.stats.lost.push(test.to_string());
    }

    fn attempt(
        &mut self,
        info: AttemptInfo,
        artifacts: &Path,
        outcome: TestOutcome,
        history_key: &str,
    ) {
        if !outcome.system_lost {
            self.history.record(history_key, info.duration);
        }
        let mut output = None;
        match self.store.ingest(&info, artifacts) {
            Ok(results) => {
                if let Some(own) = results.iter().find(|r| r.subtest.is_none()) {
                    output = own_output(&own.results_dir, &own.files);
                }
                self.dispatch(&RunEvent::ResultsStored { results });
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(artifacts);
                self.lost(&info.test, e);
            }
        }
        if info.final_attempt {
            self.stats.push(FinalTest {
                earlier: self
                    .earlier
                    .remove(&(info.platform.clone(), info.test.clone()))
                    .unwrap_or_default(),
                platform: info.platform,
                test: info.test,
                status: outcome.status,
                note: outcome.note,
                reason: outcome.reason,
                attempts: info.attempt,
                duration: info.duration,
                output,
            });
        } else {
            self.earlier
                .entry((info.platform, info.test))
                .or_default()
                .push(outcome.status);
        }
    }

    /// Tells the sinks (the reporters) about each job that never got a
    /// result: a `skip` result with no attempt, marked `not_run`. Nothing
    /// goes to `results.jsonl`, so `--resume` still runs them.
    fn report_not_run(&mut self, jobs: &[(String, String)], why: &str) {
        if jobs.is_empty() {
            return;
        }
        let reason = format!("not run: {why}");
        // In batches: a large run stopped early does not build a result for
        // every job left at once.
        for batch in jobs.chunks(NOT_RUN_BATCH) {
            self.report_not_run_batch(batch, &reason);
        }
    }

    fn report_not_run_batch(&mut self, jobs: &[(String, String)], reason: &str) {
        let results: Vec<ReportedResult> = jobs
            .iter()
            .map(|(platform, test)| {
                let mut extra = serde_json::Map::new();
                extra.insert("not_run".into(), true.into());
                extra.insert("reason".into(), reason.into());
                ReportedResult {
                    platform: platform.clone(),
                    test: test.clone(),
                    subtest: None,
                    status: Some(Status::Skip),
                    note: Some(reason.to_string()),
                    files: Vec::new(),
                    results_dir: self.store.dir().to_path_buf(),
                    // Never started: the run's start, for reports that
                    // place results in time.
                    started_unix_ms: self.started_unix_ms,
                    duration: Duration::ZERO,
                    attempt: 0,
                    final_attempt: true,
                    remote: String::new(),
                    extra,
                }
            })
            .collect();
        self.dispatch(&RunEvent::ResultsStored { results });
    }

    fn finish(
        &mut self,
        wall: Duration,
        signal: Option<i32>,
        infra_failure: bool,
        tests_total: u64,
        not_run: Vec<String>,
    ) {
        let interrupted = signal.is_some();
        self.stats.not_run = not_run;
        let summary = RunSummary {
            run_id: self.run_id.clone(),
            results_dir: self.store.dir().to_path_buf(),
            started_unix_ms: self.started_unix_ms,
            duration: wall,
            tests_total,
            counts: self.stats.counts(),
            interrupted,
            extra: serde_json::Map::new(),
        };
        self.dispatch(&RunEvent::RunFinished { summary });
        let tail: [(&str, serde_json::Value); 7] = [
            ("run_id", self.run_id.clone().into()),
            ("tests_total", tests_total.into()),
            ("atex_version", env!("CARGO_PKG_VERSION").into()),
            (
                "started",
                format!(
                    "{}Z",
                    atex_plugin_api::time::UtcTime::from_unix_ms(self.started_unix_ms)
                        .iso_seconds()
                )
                .into(),
            ),
            ("started_unix_ms", self.started_unix_ms.into()),
            (
                "history",
                self.history
                    .path()
                    .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
                    .map(|p| p.display().to_string())
                    .into(),
            ),
            // As the run will exit, unless writing this very file fails.
            (
                "exit_code",
                exit_code(signal, infra_failure, &self.stats).into(),
            ),
        ];
        // Streamed from the compact per-test records, not built whole.
        let stats = &self.stats;
        let written = self
            .store
            .finish_with(|w| stats.write_json(w, wall, interrupted, &tail));
        if let Err(e) = written {
            self.stats.errors.push(e.to_string());
            self.stats.unwritten.push(e.to_string());
        }
        if let Err(e) = self.history.save() {
            self.stats.errors.push(e.to_string());
        }
    }
}

/// What the ETA is computed from: the runtimes earlier runs measured for
/// the jobs without a final result, how many of those have none, and the
/// attempts measured in this run. Declared `duration`s are limits, not
/// estimates, and are never used.
#[derive(Debug, Default)]
struct EtaBasis {
    /// Sum of the expected runtimes of jobs left that have one.
    known: Duration,
    /// Jobs left without one.
    unknown: usize,
    /// Attempts measured in this run, added up.
    measured: Duration,
    measured_n: u32,
}

impl EtaBasis {
    fn new(expected: impl Iterator<Item = Option<Duration>>) -> Self {
        let mut b = EtaBasis::default();
        for e in expected {
            match e {
                Some(e) => b.known += e,
                None => b.unknown += 1,
            }
        }
        b
    }

    /// An attempt took `took`.
    fn measured(&mut self, took: Duration) {
        self.measured += took;
        self.measured_n += 1;
    }

    /// A job with this expected runtime has its final result.
    fn ended(&mut self, expected: Option<Duration>) {
        match expected {
            Some(e) => self.known = self.known.saturating_sub(e),
            None => self.unknown = self.unknown.saturating_sub(1),
        }
    }

    /// Time left: the work left (each job by its history, else by the mean
    /// attempt of this run) over `parallel` systems, and at least what the
    /// longest running test has left. `running` holds each running job's
    /// expected runtime and elapsed time; when `stopping`, only they are
    /// left. `None` when a job left has no basis.
    fn left(
        &self,
        stopping: bool,
        running: &[(Option<Duration>, Duration)],
        parallel: usize,
    ) -> Option<Duration> {
        let mean = (self.measured_n > 0).then(|| self.measured / self.measured_n);
        let mut work = Duration::ZERO;
        if !stopping {
            work = self.known;
            if self.unknown > 0 {
                work += mean? * u32::try_from(self.unknown).unwrap_or(u32::MAX);
            }
        }
        let mut longest = Duration::ZERO;
        for (expected, elapsed) in running {
            let e = expected.or(mean)?;
            let left = e.saturating_sub(*elapsed);
            longest = longest.max(left);
            if stopping {
                work += left;
            } else {
                work = work.saturating_sub(e.min(*elapsed));
            }
        }
        let parallel = u32::try_from(parallel.max(1)).unwrap_or(u32::MAX);
        Some((work / parallel).max(longest))
    }
}

#[cfg(test)]
mod eta_tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn no_history_and_nothing_measured_gives_no_eta() {
        let b = EtaBasis::new([None, None, None].into_iter());
        assert_eq!(b.left(false, &[], 2), None);
        assert_eq!(b.left(false, &[(None, s(3))], 2), None);
    }

    #[test]
    fn measured_attempts_estimate_tests_without_history() {
        let mut b = EtaBasis::new([None, None, None, None].into_iter());
        b.measured(s(4));
        b.ended(None);
        // Three left at 4 s each, one of them running for 1 s, on 1 system.
        assert_eq!(b.left(false, &[(None, s(1))], 1), Some(s(11)));
        // Two systems: the work is shared.
        assert_eq!(b.left(false, &[(None, s(1))], 2), Some(s(11) / 2));
    }

    #[test]
    fn history_gives_an_eta_before_anything_finished() {
        let b = EtaBasis::new([Some(s(10)), Some(s(20))].into_iter());
        assert_eq!(b.left(false, &[], 2), Some(s(15)));
        // The longest running test bounds it from below.
        assert_eq!(b.left(false, &[(Some(s(20)), s(2))], 2), Some(s(18)));
    }

    #[test]
    fn when_stopping_only_running_tests_are_left() {
        let b = EtaBasis::new([Some(s(10)), Some(s(100))].into_iter());
        assert_eq!(b.left(true, &[(Some(s(10)), s(4))], 1), Some(s(6)));
    }
}
