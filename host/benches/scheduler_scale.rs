//! Scale bench of the scheduler: 100,000 queued tests on 1,000 simulated
//! systems (virtual clock, so no test really runs). Prints the engine's
//! CPU time per dispatched test; a report, not an assertion.
//!
//! `cargo bench -p atex --bench scheduler_scale` (or pass `N M` to change
//! the sizes).

use std::time::Duration;

use atex::scheduler::{
    engine::Policy,
    sim::{SimProvisioner, SimTest, lower_bound, simulate},
};

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec owned by this frame.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(100_000);
    let m = args.get(1).copied().unwrap_or(1_000);
    let tests: Vec<SimTest> = (0..n)
        .map(|i| {
            let x = ((i as u64).wrapping_mul(2_654_435_761) % 10_000) as f64 / 10_000.0;
            let mut t = SimTest::new(
                format!("/scale/{i}"),
                Duration::from_secs_f64(1.0 + 600.0 * x.powi(6)),
            );
            t.queued.priority = (i % 7 == 0) as i64;
            t.fails_first = u32::from(i % 50 == 0);
            t.queued.destructive = i % 100 == 0;
            t
        })
        .collect();
    let provs = vec![
        SimProvisioner::new(
            "podman",
            Some((m / 2) as u32),
            Duration::from_secs(2),
            Duration::from_secs(1),
        ),
        SimProvisioner::new("tf", None, Duration::from_secs(90), Duration::from_secs(20)),
    ];
    let policy = Policy {
        workers: m,
        reruns: 1,
        ..Policy::default()
    };
    let cpu0 = thread_cpu();
    let rep = simulate(&tests, &provs, policy, None);
    let cpu = thread_cpu() - cpu0;
    let bound = lower_bound(&tests.iter().map(|t| t.runtime).collect::<Vec<_>>(), m);
    println!(
        "{n} tests on {m} systems: {} dispatched, {} events",
        rep.dispatched, rep.events
    );
    println!(
        "engine: {:.2} s total, {:.2} µs per dispatched test; whole simulation CPU {:.2} s, {:.2} µs per dispatched test",
        rep.engine_time.as_secs_f64(),
        rep.engine_time.as_secs_f64() * 1e6 / rep.dispatched as f64,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / rep.dispatched as f64
    );
    println!(
        "virtual makespan {:.0} s vs lower bound {:.0} s ({:.3}x); peak systems {}; all released: {}",
        rep.makespan.as_secs_f64(),
        bound.as_secs_f64(),
        rep.makespan.as_secs_f64() / bound.as_secs_f64(),
        rep.peak_systems,
        rep.all_released
    );
}
