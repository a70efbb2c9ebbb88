//! The scheduler's decisions, as a state machine with no threads and no
//! clock of its own.
//!
//! [`Engine::handle`] takes one [`Event`] (a system is ready, a setup or a
//! test finished, a provisioner failed, an interrupt) and the current time,
//! and appends the [`Action`]s to take. The real driver
//! ([`super::execute`]) turns actions into worker threads and their results
//! into events; the simulator ([`super::sim`]) does the same on a virtual
//! clock, which is how the policies are tested and measured.
//!
//! Policies, in one place:
//!
//! - **Free worker.** Whenever a system is free it takes the next test:
//!   highest `extra-priority` first, then the longest expected runtime (the
//!   measured one when known, else the declared `duration`), then
//!   discovery order.
//! - **Platforms.** Every test and every provisioner belongs to a column
//!   (a platform of the run's matrix, `0` when there is one). A system
//!   only runs tests of its provisioner's column; each column has its own
//!   queue, its own systems and the policies below on its own, so a column
//!   whose provisioners all fail ends with results saying so while the
//!   others carry on.
//! - **Systems wanted** (per column) = min(workers, queued + running
//!   tests). Each
//!   provisioner that is short is asked for what it can give (up to its
//!   `max_remotes`); whichever delivers first is used; a system that
//!   arrives when none is wanted is released at once; when nothing is left
//!   to hand out, every provisioner with open requests is `clear()`ed.
//! - **Reruns.** A test whose final status is `fail`, `error` or `infra`
//!   runs again, up to `reruns` more times. The system it failed on is
//!   released and replaced, so the rerun gets a fresh system. Every
//!   attempt is recorded; only the last one is final.
//! - **Destructive tests** (tag `destructive`) and tests after which the
//!   system is lost (`system_lost`): the system is released and replaced;
//!   the test's result stands (it may be rerun under `reruns`).
//! - **Broken systems.** A setup failure, or a system that breaks under a
//!   test (the executor's `ExecError`), costs its provisioner one unit of
//!   its failure budget; the system is released and replaced. A test whose
//!   system broke is requeued without counting an attempt, at most
//!   `max_requeues` times, after which it gets an `infra` result. A
//!   provisioner whose budget is spent is dropped with an error; the
//!   others carry on. When none is left, the remaining tests get `infra`
//!   results: nothing is dropped silently.
//! - **Fit.** With a deadline, a test whose `duration` would end past it is
//!   not started; it gets an `error` result saying why.
//! - **Interrupt.** No more tests are handed out, running tests are
//!   cancelled (the driver records what they left, as upstream does: an
//!   `infra` result with the note `cancel requested` and their output),
//!   every system is released.
//! - **Max fail.** With `max_fail` N, once N tests have a failing final
//!   result (a give-up result counts too), no more tests are handed out:
//!   running tests run to their end (without reruns) and keep their
//!   results, queued ones are left unrun ([`Engine::not_run`]), every idle
//!   system is released. An interrupt after that still cancels what runs.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap},
    time::Duration,
};

use crate::Status;

/// Index of a provisioner in the list given to [`Engine::new`].
pub type ProvId = usize;
/// Identifier of a system, chosen by the driver (unique within a run).
pub type RemoteId = u64;
/// Index of a test in the list given to [`Engine::new`].
pub type TestId = usize;

/// A test waiting to run, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedTest {
    /// Full name.
    pub name: String,
    /// Declared `duration` (the time limit).
    pub duration: Duration,
    /// Runtime measured in earlier runs, when known.
    pub expected: Option<Duration>,
    /// `extra-priority` (higher first; default 0).
    pub priority: i64,
    /// Tag `destructive`: the system is not reused after it.
    pub destructive: bool,
    /// The platform column it runs in (`0` when there is one).
    pub column: usize,
    /// Reruns on top of the run's (`extra-reruns` in its metadata).
    pub extra_reruns: u32,
}

impl QueuedTest {
    /// A test with only a name and a duration.
    pub fn new(name: impl Into<String>, duration: Duration) -> Self {
        QueuedTest {
            name: name.into(),
            duration,
            expected: None,
            priority: 0,
            destructive: false,
            column: 0,
            extra_reruns: 0,
        }
    }

    /// What the ordering uses: the measured runtime, else the duration.
    pub fn estimate(&self) -> Duration {
        self.expected.unwrap_or(self.duration)
    }
}

/// A provisioner as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionerInfo {
    /// Name for messages.
    pub name: String,
    /// The most systems it hands out at once, when known.
    pub max_remotes: Option<u32>,
    /// The platform column its systems serve (`0` when there is one).
    pub column: usize,
}

impl ProvisionerInfo {
    /// A provisioner of column 0.
    pub fn new(name: impl Into<String>, max_remotes: Option<u32>) -> Self {
        ProvisionerInfo {
            name: name.into(),
            max_remotes,
            column: 0,
        }
    }
}

/// A system that is free for a test, as [`SchedulePolicy::next_test`]
/// sees it.
#[derive(Debug, Clone, Copy)]
pub struct FreeSystem<'a> {
    /// The driver's id of the system.
    pub remote: RemoteId,
    /// Its provisioner.
    pub provisioner: &'a str,
    /// Its platform column.
    pub column: usize,
    /// Tests it ran before this one.
    pub tests_run: u32,
}

/// How an attempt ended, as [`SchedulePolicy`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct AttemptEnd {
    /// Attempt number, from 1.
    pub attempt: u32,
    /// Its status is a failure.
    pub failed: bool,
    /// The system is gone.
    pub system_lost: bool,
}

/// The decisions a library user may change, with atex's defaults. The
/// engine asks; it never does I/O on the policy's behalf, so a policy
/// stays testable on the virtual clock of [`super::sim`].
///
/// The setup step run on every new system before its first test is not
/// a scheduling decision: it is [`super::Execution::setup`].
pub trait SchedulePolicy: Send + Sync {
    /// How many queued tests [`SchedulePolicy::next_test`] wants to see
    /// (default 1: always the first in atex's order, no extra work).
    fn lookahead(&self) -> usize {
        1
    }

    /// Which of `candidates` (queued tests of the system's platform, best
    /// first in atex's order: `extra-priority`, then longest expected
    /// runtime, then discovery order) the free `system` runs next, as an
    /// index into `candidates`. Default: the first.
    fn next_test(&self, system: &FreeSystem<'_>, candidates: &[&QueuedTest]) -> usize {
        let _ = (system, candidates);
        0
    }

    /// Whether the system is replaced by a fresh one after `test`.
    /// Default: after a `destructive` test and when the system was lost.
    fn replace_system(&self, test: &QueuedTest, end: &AttemptEnd) -> bool {
        test.destructive || end.system_lost
    }

    /// Whether `test` runs again after this attempt. Default: a failure,
    /// while attempts are within `reruns` plus the test's own
    /// `extra_reruns`.
    fn rerun(&self, test: &QueuedTest, end: &AttemptEnd, reruns: u32) -> bool {
        end.failed && end.attempt <= reruns.saturating_add(test.extra_reruns)
    }
}

/// atex's decisions: every default of [`SchedulePolicy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultPolicy;

impl SchedulePolicy for DefaultPolicy {}

/// The defaults, plus a fresh system after every failed attempt
/// (`--fresh-after-failure`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FreshAfterFailure;

impl SchedulePolicy for FreshAfterFailure {
    fn replace_system(&self, test: &QueuedTest, end: &AttemptEnd) -> bool {
        end.failed || DefaultPolicy.replace_system(test, end)
    }
}

/// Tunable policies.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The most systems in use at once (all provisioners of a column
    /// together).
    pub workers: usize,
    /// Extra attempts for a failed or errored test.
    pub reruns: u32,
    /// Broken systems (setup failures, systems lost to infrastructure)
    /// each provisioner may produce before it is dropped.
    pub failure_budget: u32,
    /// Times one test is requeued because its system broke under it.
    pub max_requeues: u32,
    /// Tests must end (by their `duration`) before this time since the
    /// start of the run.
    pub deadline: Option<Duration>,
    /// Stop starting tests once this many have a failing final result
    /// (`--max-fail`); running tests finish.
    pub max_fail: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            workers: 4,
            reruns: 0,
            failure_budget: 5,
            max_requeues: 2,
            deadline: None,
            max_fail: None,
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A provisioner handed out a system; the driver named it `remote`.
    RemoteReady {
        /// Which provisioner.
        prov: ProvId,
        /// The new system's id.
        remote: RemoteId,
    },
    /// A provisioner is not available at all (its `start` failed): it is
    /// never asked for systems. Give this before [`Engine::start`].
    ProvisionerUnavailable {
        /// Which provisioner.
        prov: ProvId,
    },
    /// A provisioner failed to provide a system.
    ProvisionerFailed {
        /// Which provisioner.
        prov: ProvId,
        /// What happened.
        error: String,
    },
    /// A system is set up and ready for tests.
    SetupDone {
        /// The system.
        remote: RemoteId,
    },
    /// Setting a system up failed.
    SetupFailed {
        /// The system.
        remote: RemoteId,
        /// What happened.
        error: String,
    },
    /// A test ran to its end (whatever its result).
    TestFinished {
        /// The system it ran on.
        remote: RemoteId,
        /// The test.
        test: TestId,
        /// Its status is `fail`, `error`, `infra` (or another failure).
        failed: bool,
        /// The system is gone.
        system_lost: bool,
    },
    /// The system broke under a test (or the test was cancelled).
    TestBroken {
        /// The system.
        remote: RemoteId,
        /// The test.
        test: TestId,
        /// What happened.
        error: String,
    },
    /// Stop: SIGINT, SIGTERM or a caller's request.
    Interrupt,
}

/// Something to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask a provisioner for more systems.
    Provision {
        /// Which.
        prov: ProvId,
        /// How many more.
        count: u32,
    },
    /// Drop a provisioner's open requests.
    Clear {
        /// Which.
        prov: ProvId,
    },
    /// Set a new system up (upload the tree, run prepare).
    Setup {
        /// The system.
        remote: RemoteId,
    },
    /// Run a test on a set-up system.
    Run {
        /// The system.
        remote: RemoteId,
        /// The test.
        test: TestId,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Give a system back to its provisioner.
    Release {
        /// The system.
        remote: RemoteId,
    },
    /// Store the artifacts of the attempt that just finished on `remote`.
    Record {
        /// The test.
        test: TestId,
        /// Its attempt number.
        attempt: u32,
        /// Whether no rerun follows.
        final_attempt: bool,
    },
    /// A test will not run: store a result saying why.
    GiveUp {
        /// The test.
        test: TestId,
        /// Status of the result ([`Status::Infra`] or [`Status::Error`]).
        status: Status,
        /// Why.
        note: String,
    },
    /// A provisioner is dropped for good.
    DropProvisioner {
        /// Which.
        prov: ProvId,
        /// Why, for the user.
        reason: String,
    },
    /// Cancel every running test and setup.
    CancelAll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    SettingUp,
    Idle,
    Running(TestId),
}

#[derive(Debug)]
struct RemoteState {
    prov: ProvId,
    column: usize,
    phase: Phase,
    tests_run: u32,
}

#[derive(Debug)]
struct ProvState {
    info: ProvisionerInfo,
    alive: u32,
    outstanding: u32,
    budget: u32,
    dropped: bool,
    last_error: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
struct Key {
    priority: i64,
    estimate: Duration,
    test: TestId,
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(self.estimate.cmp(&other.estimate))
            .then(Reverse(self.test).cmp(&Reverse(other.test)))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The scheduler's state.
pub struct Engine {
    tests: Vec<QueuedTest>,
    attempts: Vec<u32>,
    requeues: Vec<u32>,
    /// One queue per column.
    queues: Vec<BinaryHeap<Key>>,
    provs: Vec<ProvState>,
    remotes: HashMap<RemoteId, RemoteState>,
    /// Systems held per column.
    held: Vec<usize>,
    /// Tests running per column.
    running_in: Vec<usize>,
    running: usize,
    setting_up: usize,
    policy: Policy,
    stopping: bool,
    /// An interrupt was handled (running tests were cancelled).
    interrupted: bool,
    /// Tests with a failing final result.
    failures: u32,
    /// `max_fail` was reached.
    halted: bool,
    not_run: Vec<TestId>,
    dispatched: u64,
    hook: std::sync::Arc<dyn SchedulePolicy>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("tests", &self.tests.len())
            .field("queued", &self.queued())
            .field("running", &self.running)
            .field("systems", &self.remotes.len())
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Replaces atex's decisions with `hook`'s.
    pub fn with_policy(mut self, hook: std::sync::Arc<dyn SchedulePolicy>) -> Self {
        self.hook = hook;
        self
    }

    /// A scheduler for `tests` on systems from `provisioners`.
    pub fn new(
        tests: Vec<QueuedTest>,
        provisioners: Vec<ProvisionerInfo>,
        mut policy: Policy,
    ) -> Self {
        policy.workers = policy.workers.max(1);
        let columns = tests
            .iter()
            .map(|t| t.column)
            .chain(provisioners.iter().map(|p| p.column))
            .max()
            .map_or(1, |c| c + 1);
        let mut queues: Vec<BinaryHeap<Key>> = (0..columns).map(|_| BinaryHeap::new()).collect();
        for (i, t) in tests.iter().enumerate() {
            queues[t.column].push(Key {
                priority: t.priority,
                estimate: t.estimate(),
                test: i,
            });
        }
        let n = tests.len();
        Engine {
            attempts: vec![0; n],
            requeues: vec![0; n],
            tests,
            queues,
            held: vec![0; columns],
            running_in: vec![0; columns],
            provs: provisioners
                .into_iter()
                .map(|info| ProvState {
                    info,
                    alive: 0,
                    outstanding: 0,
                    budget: policy.failure_budget.max(1),
                    dropped: false,
                    last_error: None,
                })
                .collect(),
            remotes: HashMap::new(),
            running: 0,
            setting_up: 0,
            policy,
            stopping: false,
            interrupted: false,
            failures: 0,
            halted: false,
            not_run: Vec::new(),
            dispatched: 0,
            hook: std::sync::Arc::new(DefaultPolicy),
        }
    }

    /// The tests, as given.
    pub fn tests(&self) -> &[QueuedTest] {
        &self.tests
    }

    /// Tests waiting for a system.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(BinaryHeap::len).sum()
    }

    /// The number of platform columns.
    pub fn columns(&self) -> usize {
        self.queues.len()
    }

    /// Tests running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Systems held now (setting up, idle or running a test).
    pub fn systems(&self) -> usize {
        self.remotes.len()
    }

    /// Tests started so far (attempts, reruns included).
    pub fn dispatched(&self) -> u64 {
        self.dispatched
    }

    /// Tests left unrun by an interrupt or by `max_fail`.
    pub fn not_run(&self) -> &[TestId] {
        &self.not_run
    }

    /// Whether `max_fail` failing tests stopped the run.
    pub fn max_fail_reached(&self) -> bool {
        self.halted
    }

    /// Tests with a failing final result so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether an interrupt was handled.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// Whether provisioner `prov` was dropped.
    pub fn dropped(&self, prov: ProvId) -> bool {
        self.provs[prov].dropped
    }

    /// Nothing is queued or running and every system is released.
    pub fn finished(&self) -> bool {
        self.queued() == 0 && self.running == 0 && self.remotes.is_empty()
    }

    /// The first actions: ask for systems.
    pub fn start(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.check_providers_left(now, out);
        self.replenish(out);
    }

    /// Handles one event at time `now` (since the start of the run).
    pub fn handle(&mut self, now: Duration, event: Event, out: &mut Vec<Action>) {
        let first = out.len();
        self.handle_event(now, event, out);
        self.check_providers_left(now, out);
        self.check_max_fail(first, out);
        self.replenish(out);
    }

    fn handle_event(&mut self, now: Duration, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::RemoteReady { prov, remote } => {
                let p = &mut self.provs[prov];
                p.outstanding = p.outstanding.saturating_sub(1);
                p.alive += 1;
                let (dropped, column) = (p.dropped, p.info.column);
                let surplus = self.held[column] >= self.wanted(column);
                self.remotes.insert(
                    remote,
                    RemoteState {
                        prov,
                        column,
                        phase: Phase::SettingUp,
                        tests_run: 0,
                    },
                );
                self.held[column] += 1;
                if self.stopping || dropped || surplus {
                    self.release(remote, out);
                } else {
                    self.setting_up += 1;
                    out.push(Action::Setup { remote });
                }
            }
            Event::ProvisionerUnavailable { prov } => {
                let p = &mut self.provs[prov];
                p.dropped = true;
                p.outstanding = 0;
            }
            Event::ProvisionerFailed { prov, error } => {
                // The error answers one request: that system will not
                // come (`replenish` below asks again if still needed).
                let p = &mut self.provs[prov];
                p.outstanding = p.outstanding.saturating_sub(1);
                if !self.stopping {
                    self.charge(prov, error, out);
                }
            }
            Event::SetupDone { remote } => {
                let Some(r) = self.remotes.get_mut(&remote) else {
                    return;
                };
                if r.phase == Phase::SettingUp {
                    self.setting_up -= 1;
                }
                r.phase = Phase::Idle;
                self.dispatch(now, remote, out);
            }
            Event::SetupFailed { remote, error } => {
                let Some(r) = self.remotes.get(&remote) else {
                    return;
                };
                let prov = r.prov;
                if r.phase == Phase::SettingUp {
                    self.setting_up -= 1;
                }
                self.release(remote, out);
                if !self.stopping {
                    self.charge(prov, error, out);
                }
            }
            Event::TestFinished {
                remote,
                test,
                failed,
                system_lost,
            } => {
                self.running -= 1;
                self.running_in[self.tests[test].column] -= 1;
                let end = AttemptEnd {
                    attempt: self.attempts[test],
                    failed,
                    system_lost,
                };
                let attempt = end.attempt;
                let rerun =
                    !self.stopping && self.hook.rerun(&self.tests[test], &end, self.policy.reruns);
                out.push(Action::Record {
                    test,
                    attempt,
                    final_attempt: !rerun,
                });
                if failed && !rerun {
                    // Counted before the system takes its next test.
                    self.failures += 1;
                    self.check_max_fail(out.len(), out);
                }
                if rerun {
                    self.enqueue(test);
                }
                if let Some(r) = self.remotes.get_mut(&remote) {
                    r.phase = Phase::Idle;
                }
                if rerun || self.hook.replace_system(&self.tests[test], &end) {
                    self.release(remote, out);
                } else {
                    self.dispatch(now, remote, out);
                }
            }
            Event::TestBroken {
                remote,
                test,
                error,
            } => {
                self.running -= 1;
                self.running_in[self.tests[test].column] -= 1;
                let prov = self.remotes.get(&remote).map(|r| r.prov);
                self.release(remote, out);
                if self.stopping {
                    self.not_run.push(test);
                } else {
                    self.attempts[test] -= 1;
                    self.requeues[test] += 1;
                    if self.requeues[test] > self.policy.max_requeues {
                        out.push(Action::GiveUp {
                            test,
                            status: Status::Infra,
                            note: format!(
                                "its system broke {} times, last: {error}",
                                self.requeues[test]
                            ),
                        });
                    } else {
                        self.enqueue(test);
                    }
                    if let Some(prov) = prov {
                        self.charge(prov, error, out);
                    }
                }
            }
            Event::Interrupt => {
                if !self.interrupted {
                    self.interrupted = true;
                    self.stop(out);
                    out.push(Action::CancelAll);
                }
            }
        }
    }

    /// No more tests start: the queued ones are not run, idle systems are
    /// released. Running tests are left alone.
    fn stop(&mut self, out: &mut Vec<Action>) {
        self.stopping = true;
        for q in &mut self.queues {
            self.not_run.extend(q.drain().map(|k| k.test));
        }
        let idle: Vec<RemoteId> = self
            .remotes
            .iter()
            .filter(|(_, r)| r.phase == Phase::Idle)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.release(id, out);
        }
    }

    /// Counts the give-up results among the actions from `first` on, and
    /// stops the run when `max_fail` failing tests are reached.
    fn check_max_fail(&mut self, first: usize, out: &mut Vec<Action>) {
        let given_up = out[first..]
            .iter()
            .filter(|a| matches!(a, Action::GiveUp { status, .. } if status.is_failure()))
            .count();
        self.failures += given_up as u32;
        if let Some(max) = self.policy.max_fail
            && !self.stopping
            && self.failures >= max.max(1)
        {
            self.halted = true;
            self.stop(out);
        }
    }

    fn enqueue(&mut self, test: TestId) {
        let t = &self.tests[test];
        self.queues[t.column].push(Key {
            priority: t.priority,
            estimate: t.estimate(),
            test,
        });
    }

    fn wanted(&self, column: usize) -> usize {
        if self.stopping {
            return 0;
        }
        self.policy
            .workers
            .min(self.queues[column].len() + self.running_in[column])
    }

    fn release(&mut self, remote: RemoteId, out: &mut Vec<Action>) {
        if let Some(r) = self.remotes.remove(&remote) {
            self.provs[r.prov].alive -= 1;
            self.held[r.column] -= 1;
            out.push(Action::Release { remote });
        }
    }

    fn dispatch(&mut self, now: Duration, remote: RemoteId, out: &mut Vec<Action>) {
        if self.stopping {
            self.release(remote, out);
            return;
        }
        let Some(column) = self.remotes.get(&remote).map(|r| r.column) else {
            return;
        };
        while let Some(key) = self.next_for(remote, column) {
            let test = key.test;
            if let Some(deadline) = self.policy.deadline {
                let duration = self.tests[test].duration;
                if now + duration > deadline {
                    out.push(Action::GiveUp {
                        test,
                        status: Status::Error,
                        note: format!(
                            "not run: its duration ({}s) ends past the run's deadline ({}s left)",
                            duration.as_secs(),
                            deadline.saturating_sub(now).as_secs()
                        ),
                    });
                    continue;
                }
            }
            self.attempts[test] += 1;
            self.running += 1;
            self.running_in[column] += 1;
            self.dispatched += 1;
            if let Some(r) = self.remotes.get_mut(&remote) {
                r.phase = Phase::Running(test);
                r.tests_run += 1;
            }
            out.push(Action::Run {
                remote,
                test,
                attempt: self.attempts[test],
            });
            return;
        }
        self.release(remote, out);
    }

    /// Takes the test `remote` runs next off its column's queue: the first
    /// in atex's order, or the policy's choice among the first few.
    fn next_for(&mut self, remote: RemoteId, column: usize) -> Option<Key> {
        let want = self.hook.lookahead();
        if want <= 1 {
            return self.queues[column].pop();
        }
        let mut head: Vec<Key> = Vec::with_capacity(want.min(self.queues[column].len()));
        while head.len() < want {
            match self.queues[column].pop() {
                Some(k) => head.push(k),
                None => break,
            }
        }
        if head.is_empty() {
            return None;
        }
        let chosen = {
            let r = self.remotes.get(&remote);
            let system = FreeSystem {
                remote,
                provisioner: r.map_or("", |r| self.provs[r.prov].info.name.as_str()),
                column,
                tests_run: r.map_or(0, |r| r.tests_run),
            };
            let candidates: Vec<&QueuedTest> = head.iter().map(|k| &self.tests[k.test]).collect();
            self.hook
                .next_test(&system, &candidates)
                .min(head.len() - 1)
        };
        let key = head.swap_remove(chosen);
        self.queues[column].extend(head);
        Some(key)
    }

    /// One broken system for `prov`'s budget.
    fn charge(&mut self, prov: ProvId, error: String, out: &mut Vec<Action>) {
        let p = &mut self.provs[prov];
        if p.dropped {
            return;
        }
        p.budget = p.budget.saturating_sub(1);
        p.last_error = Some(error.clone());
        if p.budget == 0 {
            p.dropped = true;
            if p.outstanding > 0 {
                p.outstanding = 0;
                out.push(Action::Clear { prov });
            }
            out.push(Action::DropProvisioner {
                prov,
                reason: format!(
                    "{}: dropped after {} broken systems, last: {error}",
                    p.info.name, self.policy.failure_budget
                ),
            });
        }
    }

    /// When every provisioner of a column is dropped and the column holds
    /// no system, its queued tests cannot run: give each an `infra` result.
    fn check_providers_left(&mut self, _now: Duration, out: &mut Vec<Action>) {
        for column in 0..self.queues.len() {
            let mut provs = self.provs.iter().filter(|p| p.info.column == column);
            if self.queues[column].is_empty()
                || self.held[column] > 0
                || provs.clone().any(|p| !p.dropped)
            {
                continue;
            }
            let names: Vec<&str> = provs.by_ref().map(|p| p.info.name.as_str()).collect();
            let why = if names.is_empty() {
                "no provisioner to run it on".to_string()
            } else {
                format!(
                    "not run: no provisioner left ({} dropped)",
                    names.join(", ")
                )
            };
            let mut left: Vec<Key> = self.queues[column].drain().collect();
            left.sort_by_key(|k| k.test);
            for k in left {
                out.push(Action::GiveUp {
                    test: k.test,
                    status: Status::Infra,
                    note: why.clone(),
                });
            }
        }
    }

    fn replenish(&mut self, out: &mut Vec<Action>) {
        for column in 0..self.queues.len() {
            let want = self.wanted(column);
            let have = self.held[column];
            let in_column = |p: &ProvState| p.info.column == column;
            if have >= want {
                for (prov, p) in self.provs.iter_mut().enumerate() {
                    if in_column(p) && p.outstanding > 0 {
                        p.outstanding = 0;
                        out.push(Action::Clear { prov });
                    }
                }
                continue;
            }
            let deficit = (want - have) as u32;
            for (prov, p) in self.provs.iter_mut().enumerate() {
                if p.dropped || !in_column(p) {
                    continue;
                }
                let room = p
                    .info
                    .max_remotes
                    .map_or(u32::MAX, |m| m.saturating_sub(p.alive));
                let target = deficit.min(room);
                if p.outstanding < target {
                    out.push(Action::Provision {
                        prov,
                        count: target - p.outstanding,
                    });
                    p.outstanding = target;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn order_is_priority_then_longest_then_discovery() {
        let mut tests = vec![
            QueuedTest::new("/a", secs(10)),
            QueuedTest::new("/b", secs(30)),
            QueuedTest::new("/c", secs(30)),
            QueuedTest::new("/d", secs(5)),
        ];
        tests[3].priority = 1;
        tests[0].expected = Some(secs(100));
        let prov = ProvisionerInfo::new("p", Some(1));
        let mut e = Engine::new(
            tests,
            vec![prov],
            Policy {
                workers: 1,
                ..Policy::default()
            },
        );
        let mut out = Vec::new();
        e.start(Duration::ZERO, &mut out);
        assert_eq!(out, vec![Action::Provision { prov: 0, count: 1 }]);
        let mut order = Vec::new();
        out.clear();
        e.handle(
            Duration::ZERO,
            Event::RemoteReady { prov: 0, remote: 1 },
            &mut out,
        );
        e.handle(Duration::ZERO, Event::SetupDone { remote: 1 }, &mut out);
        for _ in 0..4 {
            let Some(Action::Run { test, .. }) = out
                .iter()
                .find(|a| matches!(a, Action::Run { .. }))
                .cloned()
            else {
                panic!("no run in {out:?}")
            };
            order.push(e.tests()[test].name.clone());
            out.clear();
            e.handle(
                secs(1),
                Event::TestFinished {
                    remote: 1,
                    test,
                    failed: false,
                    system_lost: false,
                },
                &mut out,
            );
        }
        assert_eq!(order, ["/d", "/a", "/b", "/c"]);
        assert!(out.contains(&Action::Release { remote: 1 }));
        assert!(e.finished());
    }

    #[test]
    fn max_fail_stops_starting_tests_and_lets_running_ones_finish() {
        let tests: Vec<QueuedTest> = ["/a", "/b", "/c", "/d"]
            .iter()
            .map(|n| QueuedTest::new(*n, secs(10)))
            .collect();
        let mut e = Engine::new(
            tests,
            vec![ProvisionerInfo::new("p", Some(2))],
            Policy {
                workers: 2,
                max_fail: Some(1),
                ..Policy::default()
            },
        );
        let mut out = Vec::new();
        e.start(Duration::ZERO, &mut out);
        for remote in [1, 2] {
            e.handle(
                Duration::ZERO,
                Event::RemoteReady { prov: 0, remote },
                &mut out,
            );
            e.handle(Duration::ZERO, Event::SetupDone { remote }, &mut out);
        }
        let runs: Vec<(RemoteId, TestId)> = out
            .iter()
            .filter_map(|a| match a {
                Action::Run { remote, test, .. } => Some((*remote, *test)),
                _ => None,
            })
            .collect();
        assert_eq!(runs.len(), 2, "{out:?}");
        out.clear();
        let (r1, t1) = runs[0];
        e.handle(
            secs(1),
            Event::TestFinished {
                remote: r1,
                test: t1,
                failed: true,
                system_lost: false,
            },
            &mut out,
        );
        assert!(out.contains(&Action::Record {
            test: t1,
            attempt: 1,
            final_attempt: true
        }));
        assert!(out.contains(&Action::Release { remote: r1 }), "{out:?}");
        assert!(!out.iter().any(|a| matches!(a, Action::Run { .. })));
        assert!(!out.contains(&Action::CancelAll));
        assert!(e.max_fail_reached());
        assert_eq!(e.not_run().len(), 2);
        assert_eq!(e.running(), 1);
        out.clear();
        let (r2, t2) = runs[1];
        e.handle(
            secs(2),
            Event::TestFinished {
                remote: r2,
                test: t2,
                failed: false,
                system_lost: false,
            },
            &mut out,
        );
        assert!(out.contains(&Action::Record {
            test: t2,
            attempt: 1,
            final_attempt: true
        }));
        assert!(out.contains(&Action::Release { remote: r2 }));
        assert!(e.finished());
        assert_eq!(e.failures(), 1);
    }

    #[test]
    fn an_interrupt_after_max_fail_still_cancels_running_tests() {
        let tests = vec![
            QueuedTest::new("/a", secs(1)),
            QueuedTest::new("/b", secs(1)),
        ];
        let mut e = Engine::new(
            tests,
            vec![ProvisionerInfo::new("p", Some(2))],
            Policy {
                workers: 2,
                max_fail: Some(1),
                ..Policy::default()
            },
        );
        let mut out = Vec::new();
        e.start(Duration::ZERO, &mut out);
        for remote in [1, 2] {
            e.handle(
                Duration::ZERO,
                Event::RemoteReady { prov: 0, remote },
                &mut out,
            );
            e.handle(Duration::ZERO, Event::SetupDone { remote }, &mut out);
        }
        let first = out
            .iter()
            .find_map(|a| match a {
                Action::Run { remote, test, .. } => Some((*remote, *test)),
                _ => None,
            })
            .expect("a test runs");
        out.clear();
        e.handle(
            secs(1),
            Event::TestFinished {
                remote: first.0,
                test: first.1,
                failed: true,
                system_lost: false,
            },
            &mut out,
        );
        assert!(e.max_fail_reached());
        out.clear();
        e.handle(secs(2), Event::Interrupt, &mut out);
        assert!(out.contains(&Action::CancelAll), "{out:?}");
    }
}
