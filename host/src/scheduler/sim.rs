//! The scheduler on a virtual clock, with in-process fake provisioners.
//!
//! [`simulate`] drives an [`Engine`] with a discrete-event loop: systems
//! arrive after a provisioning delay, setups take a fixed time (and may
//! fail), tests take their runtime (and may fail, break or kill their
//! system). Nothing sleeps, so a thousand-system, hundred-thousand-test
//! run takes a second, and policies can be compared exactly: see
//! [`static_split_makespan`] (N/M slices, what upstream's predecessors did)
//! and [`lower_bound`] (no schedule can beat it).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    time::{Duration, Instant},
};

use std::sync::Arc;

use super::engine::{
    Action, DefaultPolicy, Engine, Event, Policy, ProvId, ProvisionerInfo, QueuedTest, RemoteId,
    SchedulePolicy, TestId,
};

/// A fake provisioner.
#[derive(Debug, Clone)]
pub struct SimProvisioner {
    /// Name.
    pub name: String,
    /// Most systems at once.
    pub max: Option<u32>,
    /// Time from a request to a ready system.
    pub provision_delay: Duration,
    /// Time to set a system up.
    pub setup_time: Duration,
    /// Every setup fails (a broken provisioner).
    pub always_fail: bool,
    /// Every n-th setup fails.
    pub fail_setup_every: Option<u32>,
    /// Every n-th test run on its systems breaks the system (`ExecError`).
    pub break_test_every: Option<u32>,
    /// The platform column it serves.
    pub column: usize,
}

impl SimProvisioner {
    /// A reliable provisioner.
    pub fn new(
        name: &str,
        max: Option<u32>,
        provision_delay: Duration,
        setup_time: Duration,
    ) -> Self {
        SimProvisioner {
            name: name.into(),
            max,
            provision_delay,
            setup_time,
            always_fail: false,
            fail_setup_every: None,
            break_test_every: None,
            column: 0,
        }
    }
}

/// A fake test.
#[derive(Debug, Clone)]
pub struct SimTest {
    /// What the scheduler sees.
    pub queued: QueuedTest,
    /// How long it really runs.
    pub runtime: Duration,
    /// Its first `fails_first` attempts fail.
    pub fails_first: u32,
    /// It takes its system down with it.
    pub kills_system: bool,
}

impl SimTest {
    /// A passing test that runs exactly its declared duration.
    pub fn new(name: impl Into<String>, runtime: Duration) -> Self {
        SimTest {
            queued: QueuedTest::new(name, runtime),
            runtime,
            fails_first: 0,
            kills_system: false,
        }
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    /// Test name.
    pub test: String,
    /// Attempt.
    pub attempt: u32,
    /// Final.
    pub final_attempt: bool,
    /// Failed.
    pub failed: bool,
    /// Provisioner of the system it ran on.
    pub prov: ProvId,
    /// System it ran on.
    pub remote: RemoteId,
    /// Virtual time it finished.
    pub at: Duration,
}

/// What a simulation did.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Time when the last test finished.
    pub makespan: Duration,
    /// Attempts recorded.
    pub records: Vec<SimRecord>,
    /// Tests given up on, with status and note.
    pub given_up: Vec<(String, crate::Status, String)>,
    /// Dropped provisioners and why.
    pub dropped: Vec<String>,
    /// Systems handed out per provisioner.
    pub provisioned: Vec<u32>,
    /// Most systems held at once.
    pub peak_systems: usize,
    /// Tests dispatched.
    pub dispatched: u64,
    /// Engine events handled.
    pub events: u64,
    /// Wall time spent inside the engine.
    pub engine_time: Duration,
    /// Every system was released at the end.
    pub all_released: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SimEvent {
    Arrive(ProvId),
    SetupEnd(RemoteId),
    TestEnd(RemoteId, TestId, u64),
    Interrupt,
}

#[derive(Default)]
struct ProvModel {
    pending: u32,
    inflight: u32,
    alive: u32,
    setups: u32,
    tests: u32,
    handed: u32,
}

/// Runs `tests` on `provs` under `policy`; `interrupt_at` sends an
/// interrupt at that virtual time.
pub fn simulate(
    tests: &[SimTest],
    provs: &[SimProvisioner],
    policy: Policy,
    interrupt_at: Option<Duration>,
) -> SimReport {
    simulate_with(tests, provs, policy, Arc::new(DefaultPolicy), interrupt_at)
}

/// [`simulate`] with the decisions of `hook` instead of atex's.
pub fn simulate_with(
    tests: &[SimTest],
    provs: &[SimProvisioner],
    policy: Policy,
    hook: Arc<dyn SchedulePolicy>,
    interrupt_at: Option<Duration>,
) -> SimReport {
    let infos = provs
        .iter()
        .map(|p| ProvisionerInfo {
            name: p.name.clone(),
            max_remotes: p.max,
            column: p.column,
        })
        .collect();
    let mut engine = Engine::new(
        tests.iter().map(|t| t.queued.clone()).collect(),
        infos,
        policy,
    )
    .with_policy(hook);
    let mut models: Vec<ProvModel> = provs.iter().map(|_| ProvModel::default()).collect();
    let mut clock: BinaryHeap<Reverse<(Duration, u64, SimEvent)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut owner: HashMap<RemoteId, ProvId> = HashMap::new();
    let mut running: HashMap<RemoteId, (TestId, u64)> = HashMap::new();
    let mut next_remote: RemoteId = 0;
    let mut report = SimReport {
        provisioned: vec![0; provs.len()],
        ..SimReport::default()
    };
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    let mut run_seq = 0u64;
    let mut finished_attempts = vec![0u32; tests.len()];
    let mut last_finished: Option<(bool, ProvId, RemoteId)> = None;
    if let Some(t) = interrupt_at {
        clock.push(Reverse((t, 0, SimEvent::Interrupt)));
    }

    let t0 = Instant::now();
    engine.start(now, &mut out);
    report.engine_time += t0.elapsed();

    loop {
        // Carry out the actions.
        for action in out.drain(..) {
            match action {
                Action::Provision { prov, count } => {
                    models[prov].pending = models[prov].pending.saturating_add(count);
                }
                Action::Clear { prov } => models[prov].pending = 0,
                Action::Setup { remote } => {
                    seq += 1;
                    clock.push(Reverse((
                        now + provs[owner[&remote]].setup_time,
                        seq,
                        SimEvent::SetupEnd(remote),
                    )));
                }
                Action::Run { remote, test, .. } => {
                    seq += 1;
                    run_seq += 1;
                    running.insert(remote, (test, run_seq));
                    clock.push(Reverse((
                        now + tests[test].runtime,
                        seq,
                        SimEvent::TestEnd(remote, test, run_seq),
                    )));
                }
                Action::Release { remote } => {
                    if let Some(p) = owner.remove(&remote) {
                        models[p].alive -= 1;
                    }
                    running.remove(&remote);
                }
                Action::Record {
                    test,
                    attempt,
                    final_attempt,
                } => {
                    let (failed, prov, remote) = last_finished.take().unwrap_or((false, 0, 0));
                    report.records.push(SimRecord {
                        test: tests[test].queued.name.clone(),
                        attempt,
                        final_attempt,
                        failed,
                        prov,
                        remote,
                        at: now,
                    });
                    report.makespan = report.makespan.max(now);
                }
                Action::GiveUp { test, status, note } => {
                    report
                        .given_up
                        .push((tests[test].queued.name.clone(), status, note));
                }
                Action::DropProvisioner { reason, .. } => report.dropped.push(reason),
                Action::CancelAll => {
                    let ids: Vec<(RemoteId, (TestId, u64))> = running.drain().collect();
                    for (remote, (test, rs)) in ids {
                        seq += 1;
                        clock.push(Reverse((
                            now,
                            seq,
                            SimEvent::TestEnd(remote, test, rs | CANCELLED),
                        )));
                    }
                }
            }
        }
        // Start provisioning what was asked for and fits.
        for (p, m) in models.iter_mut().enumerate() {
            while m.pending > 0 && provs[p].max.is_none_or(|max| m.alive + m.inflight < max) {
                m.pending -= 1;
                m.inflight += 1;
                seq += 1;
                clock.push(Reverse((
                    now + provs[p].provision_delay,
                    seq,
                    SimEvent::Arrive(p),
                )));
            }
        }
        report.peak_systems = report.peak_systems.max(engine.systems());
        if engine.finished() {
            break;
        }
        let Some(Reverse((t, _, ev))) = clock.pop() else {
            break;
        };
        now = t;
        let event = match ev {
            SimEvent::Interrupt => Event::Interrupt,
            SimEvent::Arrive(p) => {
                let m = &mut models[p];
                m.inflight -= 1;
                m.alive += 1;
                m.handed += 1;
                report.provisioned[p] += 1;
                next_remote += 1;
                owner.insert(next_remote, p);
                Event::RemoteReady {
                    prov: p,
                    remote: next_remote,
                }
            }
            SimEvent::SetupEnd(remote) => {
                let Some(&p) = owner.get(&remote) else {
                    continue;
                };
                let m = &mut models[p];
                m.setups += 1;
                let fail = provs[p].always_fail
                    || provs[p]
                        .fail_setup_every
                        .is_some_and(|n| m.setups.is_multiple_of(n));
                if fail {
                    Event::SetupFailed {
                        remote,
                        error: format!("{}: setup failed", provs[p].name),
                    }
                } else {
                    Event::SetupDone { remote }
                }
            }
            SimEvent::TestEnd(remote, test, rs) => {
                if rs & CANCELLED == 0 && running.get(&remote).map(|r| r.1) != Some(rs) {
                    continue; // cancelled before; its end is stale
                }
                running.remove(&remote);
                let Some(&p) = owner.get(&remote) else {
                    continue;
                };
                if rs & CANCELLED != 0 {
                    Event::TestBroken {
                        remote,
                        test,
                        error: "cancelled".into(),
                    }
                } else {
                    let m = &mut models[p];
                    m.tests += 1;
                    if provs[p]
                        .break_test_every
                        .is_some_and(|n| m.tests.is_multiple_of(n))
                    {
                        Event::TestBroken {
                            remote,
                            test,
                            error: format!("{}: system unreachable", provs[p].name),
                        }
                    } else {
                        let st = &tests[test];
                        let failed = finished_attempts[test] < st.fails_first;
                        finished_attempts[test] += 1;
                        last_finished = Some((failed, p, remote));
                        Event::TestFinished {
                            remote,
                            test,
                            failed,
                            system_lost: st.kills_system,
                        }
                    }
                }
            }
        };
        report.events += 1;
        let t0 = Instant::now();
        engine.handle(now, event, &mut out);
        report.engine_time += t0.elapsed();
    }
    report.dispatched = engine.dispatched();
    report.all_released = engine.systems() == 0 && owner.is_empty();
    report
}

const CANCELLED: u64 = 1 << 63;

/// Makespan of a static split: tests dealt round-robin in the given order
/// to `m` systems that all start after `start`.
pub fn static_split_makespan(runtimes: &[Duration], m: usize, start: Duration) -> Duration {
    let mut slices = vec![Duration::ZERO; m.max(1)];
    for (i, r) in runtimes.iter().enumerate() {
        slices[i % m.max(1)] += *r;
    }
    start + slices.into_iter().max().unwrap_or_default()
}

/// No schedule on `m` systems can finish sooner: max(longest, total / m).
pub fn lower_bound(runtimes: &[Duration], m: usize) -> Duration {
    let total: Duration = runtimes.iter().sum();
    let longest = runtimes.iter().max().copied().unwrap_or_default();
    longest.max(total / m.max(1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    fn policy(workers: usize) -> Policy {
        Policy {
            workers,
            ..Policy::default()
        }
    }

    /// 40 tests adding up to 120 s with a few long ones, in "file order"
    /// (the long ones scattered).
    fn skewed40() -> Vec<SimTest> {
        let long = [(3, 18.0), (11, 14.0), (25, 11.0), (37, 9.0)];
        let rest_total = 120.0 - long.iter().map(|l| l.1).sum::<f64>();
        let mut out = Vec::new();
        // 36 short tests between 0.5 and 2.9 s, adding up to rest_total.
        let weights: Vec<f64> = (0..36).map(|i| 1.0 + ((i * 7) % 11) as f64 / 2.0).collect();
        let wsum: f64 = weights.iter().sum();
        let mut short = weights.iter().map(|w| w / wsum * rest_total);
        for i in 0..40 {
            let rt = match long.iter().find(|l| l.0 == i) {
                Some(l) => l.1,
                None => short.next().unwrap_or(1.0),
            };
            out.push(SimTest::new(format!("/t/{i:02}"), s(rt)));
        }
        out
    }

    /// Same tests, but the scheduler only knows a useless default duration
    /// (upstream's file order).
    fn unknown(tests: &[SimTest]) -> Vec<SimTest> {
        tests
            .iter()
            .map(|t| {
                let mut t = t.clone();
                t.queued.duration = s(300.0);
                t
            })
            .collect()
    }

    fn runtimes(tests: &[SimTest]) -> Vec<Duration> {
        tests.iter().map(|t| t.runtime).collect()
    }

    fn podman(max: u32) -> SimProvisioner {
        SimProvisioner::new("podman", Some(max), s(1.0), s(0.5))
    }

    #[test]
    fn free_worker_beats_static_split_and_nears_the_bound() {
        let mut lines = Vec::new();
        for (label, tests, m) in [
            ("40 tests / 120 s", skewed40(), 4usize),
            ("1000 skewed", skewed_many(1000), 16),
        ] {
            let rt = runtimes(&tests);
            let startup = s(1.5); // provisioning + setup of the first system
            let bound = lower_bound(&rt, m);
            let free = simulate(&tests, &[podman(m as u32)], policy(m), None);
            let file_order = simulate(&unknown(&tests), &[podman(m as u32)], policy(m), None);
            let stat = static_split_makespan(&rt, m, startup);
            let r = |d: Duration| d.as_secs_f64() / (bound + startup).as_secs_f64();
            lines.push(format!(
                "{label} on {m}: bound {:.1}s (+{:.1}s start); longest-first {:.1}s ({:.3}x); file order {:.1}s ({:.3}x); static N/M {:.1}s ({:.3}x)",
                bound.as_secs_f64(),
                startup.as_secs_f64(),
                free.makespan.as_secs_f64(),
                r(free.makespan),
                file_order.makespan.as_secs_f64(),
                r(file_order.makespan),
                stat.as_secs_f64(),
                r(stat),
            ));
            assert!(free.all_released);
            assert_eq!(free.records.len(), tests.len());
            assert!(r(free.makespan) <= 1.05, "{}", lines.join("\n"));
            assert!(
                free.makespan < file_order.makespan && free.makespan < stat,
                "{}",
                lines.join("\n")
            );
        }
        println!("{}", lines.join("\n"));
    }

    fn skewed_many(n: usize) -> Vec<SimTest> {
        // A heavy tail: most tests short, a few hundred times longer.
        (0..n)
            .map(|i| {
                let x = ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
                let rt = 0.5 + 200.0 * x.powi(8);
                SimTest::new(format!("/m/{i}"), s(rt))
            })
            .collect()
    }

    #[test]
    fn reruns_use_fresh_systems_and_keep_every_attempt() {
        let mut tests = skewed40();
        tests[5].fails_first = 2; // flaky: fails twice, then passes
        tests[6].fails_first = 9; // always fails
        let rep = simulate(
            &tests,
            &[podman(4)],
            Policy {
                workers: 4,
                reruns: 2,
                ..Policy::default()
            },
            None,
        );
        let of = |name: &str| {
            rep.records
                .iter()
                .filter(|r| r.test == name)
                .cloned()
                .collect::<Vec<_>>()
        };
        let flaky = of(&tests[5].queued.name);
        assert_eq!(
            flaky
                .iter()
                .map(|r| (r.attempt, r.final_attempt, r.failed))
                .collect::<Vec<_>>(),
            [(1, false, true), (2, false, true), (3, true, false)]
        );
        let remotes: std::collections::HashSet<_> = flaky.iter().map(|r| r.remote).collect();
        assert_eq!(remotes.len(), 3, "each attempt on a fresh system");
        let bad = of(&tests[6].queued.name);
        assert_eq!(bad.len(), 3);
        assert!(bad[2].final_attempt && bad[2].failed);
        assert_eq!(rep.records.iter().filter(|r| r.final_attempt).count(), 40);
        assert!(rep.all_released);
    }

    #[test]
    fn destructive_tests_and_dying_systems_get_replaced() {
        let mut tests = skewed40();
        for i in [0, 1, 2, 3] {
            tests[i].queued.destructive = true;
        }
        tests[10].kills_system = true;
        let rep = simulate(&tests, &[podman(4)], policy(4), None);
        assert_eq!(rep.records.len(), 40);
        // No test ran on a system after a destructive test or a death on it.
        for r in &rep.records {
            let t = tests
                .iter()
                .find(|t| t.queued.name == r.test)
                .expect("test");
            if t.queued.destructive || t.kills_system {
                assert!(
                    !rep.records
                        .iter()
                        .any(|o| o.remote == r.remote && o.at > r.at)
                );
            }
        }
        assert!(rep.provisioned[0] >= 4 + 4, "{:?}", rep.provisioned);
        assert!(rep.peak_systems <= 4);
        assert!(rep.all_released);
    }

    #[test]
    fn broken_systems_requeue_and_budgets_are_per_provisioner() {
        let tests = skewed40();
        let mut broken = SimProvisioner::new("tf", Some(4), s(0.2), s(0.1));
        broken.always_fail = true;
        let mut flaky = podman(2);
        flaky.break_test_every = Some(15);
        let rep = simulate(
            &tests,
            &[broken, flaky],
            Policy {
                workers: 4,
                failure_budget: 3,
                ..Policy::default()
            },
            None,
        );
        assert_eq!(rep.dropped.len(), 1, "{:?}", rep.dropped);
        assert!(
            rep.dropped[0].starts_with("tf: dropped after 3"),
            "{}",
            rep.dropped[0]
        );
        let finals = rep.records.iter().filter(|r| r.final_attempt).count();
        assert_eq!(
            finals + rep.given_up.len(),
            40,
            "nothing dropped silently: {:?}",
            rep.given_up
        );
        assert!(rep.records.iter().all(|r| r.prov == 1));
        assert!(rep.all_released);
    }

    #[test]
    fn no_provisioner_left_gives_every_test_a_result() {
        let tests = skewed40();
        let mut a = podman(4);
        a.always_fail = true;
        let mut b = SimProvisioner::new("tf", None, s(5.0), s(1.0));
        b.always_fail = true;
        let rep = simulate(
            &tests,
            &[a, b],
            Policy {
                workers: 4,
                failure_budget: 2,
                ..Policy::default()
            },
            None,
        );
        assert_eq!(rep.dropped.len(), 2);
        assert_eq!(rep.given_up.len(), 40);
        assert!(
            rep.given_up
                .iter()
                .all(|g| g.1 == crate::Status::Infra && g.2.contains("no provisioner left"))
        );
    }

    #[test]
    fn tests_beyond_the_deadline_are_reported_not_dropped() {
        let mut tests = skewed40();
        tests[0].queued.duration = s(4000.0);
        let rep = simulate(
            &tests,
            &[podman(4)],
            Policy {
                deadline: Some(s(3600.0)),
                ..policy(4)
            },
            None,
        );
        assert_eq!(rep.given_up.len(), 1);
        assert_eq!(rep.given_up[0].1, crate::Status::Error);
        assert!(
            rep.given_up[0].2.contains("deadline"),
            "{}",
            rep.given_up[0].2
        );
        assert_eq!(rep.records.len(), 39);
    }

    #[test]
    fn several_provisioners_first_ready_wins_and_surplus_is_released() {
        let tests = skewed40();
        let fast = podman(2);
        let slow = SimProvisioner::new("tf", Some(8), s(20.0), s(2.0));
        let rep = simulate(&tests, &[fast, slow], policy(4), None);
        assert_eq!(rep.records.len(), 40);
        let first = rep.records.iter().map(|r| r.at).min().expect("records");
        assert!(first < s(20.0), "tests start on the first ready system");
        assert!(
            rep.records.iter().any(|r| r.prov == 1),
            "the slow one helps once it delivers"
        );
        assert!(rep.peak_systems <= 4);
        assert!(rep.all_released);
    }

    #[test]
    fn interrupt_cancels_and_releases_everything() {
        let tests = skewed40();
        let rep = simulate(&tests, &[podman(4)], policy(4), Some(s(15.0)));
        assert!(rep.all_released);
        assert!(rep.records.len() < 40 && !rep.records.is_empty());
        assert!(rep.records.iter().all(|r| r.at <= s(15.0)));
    }
}

#[cfg(test)]
mod matrix_tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    /// `n` tests of 1–9 s, names `/t/NN`, in column `column`.
    fn column_tests(n: usize, column: usize, scale: f64) -> Vec<SimTest> {
        (0..n)
            .map(|i| {
                let mut t = SimTest::new(format!("/t/{i:02}"), s((1 + (i * 5) % 9) as f64 * scale));
                t.queued.column = column;
                t
            })
            .collect()
    }

    fn provisioner(name: &str, max: u32, column: usize) -> SimProvisioner {
        let mut p = SimProvisioner::new(name, Some(max), s(1.0), s(0.5));
        p.column = column;
        p
    }

    /// Three platforms with pools of 4, 2 and 1 systems and different test
    /// sets (as different fmf contexts give), plus a fourth platform whose
    /// only provisioner always fails: each working platform finishes near
    /// its own lower bound, the failing one ends with `infra` results, and
    /// no test runs outside its platform.
    #[test]
    fn a_matrix_of_platforms_schedules_each_column_on_its_own_pool() {
        let columns = [
            (40usize, 4u32, 1.0),
            (30, 2, 1.5),
            (12, 1, 0.5),
            (5, 3, 1.0),
        ];
        let mut tests = Vec::new();
        let mut provs = Vec::new();
        for (c, (n, pool, scale)) in columns.iter().enumerate() {
            tests.extend(column_tests(*n, c, *scale));
            let mut p = provisioner(&format!("pool-{c}"), *pool, c);
            p.always_fail = c == 3;
            provs.push(p);
        }
        let policy = Policy {
            workers: 8,
            failure_budget: 2,
            ..Policy::default()
        };
        let rep = simulate(&tests, &provs, policy, None);
        assert!(rep.all_released);
        let startup = s(1.5);
        let mut lines = Vec::new();
        let mut first = 0;
        for (c, (n, pool, _)) in columns.iter().enumerate() {
            let ids = first..first + n;
            first += n;
            let col_tests = &tests[ids.clone()];
            if c == 3 {
                let given_up: Vec<_> = rep
                    .given_up
                    .iter()
                    .filter(|g| col_tests.iter().any(|t| t.queued.name == g.0))
                    .collect();
                assert_eq!(given_up.len(), *n, "{:?}", rep.given_up);
                assert!(
                    given_up
                        .iter()
                        .all(|g| g.1 == crate::Status::Infra && g.2.contains("pool-3"))
                );
                continue;
            }
            // Every test of the column ran once, on its column's provisioner.
            let recs: Vec<&SimRecord> = rep.records.iter().filter(|r| r.prov == c).collect();
            assert_eq!(recs.len(), *n, "column {c}");
            let mut names: Vec<&str> = recs.iter().map(|r| r.test.as_str()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), *n, "column {c}: a test ran twice");
            let makespan = recs.iter().map(|r| r.at).max().unwrap_or_default();
            let rt: Vec<Duration> = col_tests.iter().map(|t| t.runtime).collect();
            let bound = lower_bound(&rt, *pool as usize) + startup;
            let ratio = makespan.as_secs_f64() / bound.as_secs_f64();
            lines.push(format!(
                "platform {c} ({n} tests on {pool}): makespan {:.1}s, bound {:.1}s, {ratio:.3}x",
                makespan.as_secs_f64(),
                bound.as_secs_f64()
            ));
            assert!(ratio <= 1.10, "{}", lines.join("\n"));
        }
        assert_eq!(rep.dropped.len(), 1, "{:?}", rep.dropped);
        eprintln!("{}", lines.join("\n"));
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::scheduler::engine::{AttemptEnd, FreeSystem, FreshAfterFailure};

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    fn one_pool(max: u32) -> Vec<SimProvisioner> {
        vec![SimProvisioner::new("pool", Some(max), s(1.0), s(0.5))]
    }

    fn policy(workers: usize, reruns: u32) -> Policy {
        Policy {
            workers,
            reruns,
            ..Policy::default()
        }
    }

    /// Shortest first, the opposite of atex's order.
    struct ShortestFirst;

    impl SchedulePolicy for ShortestFirst {
        fn lookahead(&self) -> usize {
            usize::MAX
        }
        fn next_test(&self, _: &FreeSystem<'_>, candidates: &[&QueuedTest]) -> usize {
            (0..candidates.len())
                .min_by_key(|i| candidates[*i].estimate())
                .unwrap_or(0)
        }
    }

    #[test]
    fn a_policy_can_choose_the_next_test() {
        let tests: Vec<SimTest> = [5.0, 1.0, 3.0, 2.0, 4.0]
            .iter()
            .enumerate()
            .map(|(i, r)| SimTest::new(format!("/t{i}"), s(*r)))
            .collect();
        let order = |rep: &SimReport| -> Vec<String> {
            rep.records.iter().map(|r| r.test.clone()).collect()
        };
        let default = simulate(&tests, &one_pool(1), policy(1, 0), None);
        assert_eq!(order(&default), ["/t0", "/t4", "/t2", "/t3", "/t1"]);
        let custom = simulate_with(
            &tests,
            &one_pool(1),
            policy(1, 0),
            Arc::new(ShortestFirst),
            None,
        );
        assert_eq!(order(&custom), ["/t1", "/t3", "/t2", "/t4", "/t0"]);
    }

    #[test]
    fn fresh_after_failure_replaces_the_system_after_each_failed_attempt() {
        // Four tests on one system; /t1 fails once and is not rerun.
        let mut tests: Vec<SimTest> = (0..4)
            .map(|i| SimTest::new(format!("/t{i}"), s(4.0 - i as f64)))
            .collect();
        tests[1].fails_first = 1;
        let default = simulate(&tests, &one_pool(1), policy(1, 0), None);
        let fresh = simulate_with(
            &tests,
            &one_pool(1),
            policy(1, 0),
            Arc::new(FreshAfterFailure),
            None,
        );
        assert_eq!(default.provisioned, [1]);
        assert_eq!(fresh.provisioned, [2]);
        // The test after the failure ran on a new system.
        let after = |rep: &SimReport| rep.records[2].remote != rep.records[1].remote;
        assert!(!after(&default) && after(&fresh));
    }

    #[test]
    fn extra_reruns_of_one_test_add_to_the_runs_reruns() {
        let mut tests: Vec<SimTest> = (0..2)
            .map(|i| SimTest::new(format!("/t{i}"), s(1.0)))
            .collect();
        tests[0].fails_first = 10;
        tests[1].fails_first = 10;
        tests[1].queued.extra_reruns = 2;
        let rep = simulate(&tests, &one_pool(2), policy(2, 1), None);
        let attempts = |name: &str| rep.records.iter().filter(|r| r.test == name).count();
        assert_eq!(attempts("/t0"), 2);
        assert_eq!(attempts("/t1"), 4);
    }

    /// A policy may rerun on its own terms: here only `infra`-like lost
    /// systems, never plain failures.
    struct RerunLostOnly;

    impl SchedulePolicy for RerunLostOnly {
        fn rerun(&self, _: &QueuedTest, end: &AttemptEnd, reruns: u32) -> bool {
            end.system_lost && end.attempt <= reruns
        }
    }

    #[test]
    fn a_policy_decides_what_is_rerun() {
        let mut tests: Vec<SimTest> = (0..2)
            .map(|i| SimTest::new(format!("/t{i}"), s(1.0)))
            .collect();
        tests[0].fails_first = 1;
        let rep = simulate_with(
            &tests,
            &one_pool(2),
            policy(2, 3),
            Arc::new(RerunLostOnly),
            None,
        );
        assert_eq!(rep.records.len(), 2, "{:?}", rep.records);
        assert!(rep.records.iter().all(|r| r.final_attempt));
    }
}
