//! `atex run` on real podman containers (ignored by default: they need
//! podman and the test image; run with
//! `cargo test --test integration run_podman -- --ignored --nocapture`).
//!
//! - 40 generated tests whose sleeps add up to 120 s, a few long ones, on 4
//!   containers: the makespan is compared with the lower bound
//!   max(longest, total / 4) plus one container start;
//! - SIGINT and SIGTERM in the middle of a run: afterwards no container
//!   carries the run's label, and `results.jsonl` is valid and holds every
//!   test that had finished.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use atex_integration_tests::{TestDir, atex_bin, containers_conf, ensure_image, plugin_dir_with};

fn containers_with(label: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=atex.run={label}"),
        ])
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("podman ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_tree(dir: &TestDir, tests: &[(String, f64)]) {
    dir.create(".fmf/version", "1\n");
    let mut main = String::new();
    for (name, secs) in tests {
        // Declared durations keep the sleeps' order (longest first).
        let duration = (secs * 2.0).ceil() as u64 + 30;
        main.push_str(&format!(
            "{name}:\n    test: sleep {secs:.3}\n    duration: {duration}s\n"
        ));
        if name == "/quick" {
            main.push_str("    extra-priority: 10\n");
        }
    }
    dir.create("main.fmf", &main);
}

/// 40 tests adding up to 120 s: four long ones (18, 14, 11, 9 s) scattered
/// among 36 short ones.
fn workload() -> Vec<(String, f64)> {
    let long = [(3, 18.0), (11, 14.0), (25, 11.0), (37, 9.0)];
    let rest: f64 = 120.0 - long.iter().map(|l| l.1).sum::<f64>();
    let weights: Vec<f64> = (0..36).map(|i| 1.0 + ((i * 7) % 11) as f64 / 2.0).collect();
    let wsum: f64 = weights.iter().sum();
    let mut short = weights.iter().map(|w| w / wsum * rest);
    (0..40)
        .map(|i| {
            let secs = long
                .iter()
                .find(|l| l.0 == i)
                .map(|l| l.1)
                .unwrap_or_else(|| short.next().unwrap_or(1.0));
            (format!("/t{i:02}"), secs)
        })
        .collect()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn run_podman(
    dir: &Path,
    plugins: &Path,
    label: &str,
    results: &str,
    extra: &[&str],
) -> (std::process::ExitStatus, String, u64) {
    let start = unix_ms();
    let mut args = vec![
        "run".to_string(),
        "--plugin-dir".into(),
        plugins.display().to_string(),
        "-p".into(),
        format!("podman:max=4,label={label}"),
        "--workers".into(),
        "4".into(),
        "--results".into(),
        results.into(),
        "--plain".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(atex_bin())
        .current_dir(dir)
        .args(&args)
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .output()
        .expect("atex run");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start,
    )
}

#[test]
#[ignore = "needs podman and the test image; about 1 minute"]
fn podman_40_tests_near_the_lower_bound() {
    ensure_image("base");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let dir = TestDir::new();
    let tests = workload();
    write_tree(&dir, &tests);
    let total: f64 = tests.iter().map(|t| t.1).sum();
    let longest = tests.iter().map(|t| t.1).fold(0.0, f64::max);
    let bound = longest.max(total / 4.0);
    for (round, results) in ["out1", "out2"].iter().enumerate() {
        let label = format!("atex-sched-{}-{round}", std::process::id());
        let (status, err, start) = run_podman(dir.path(), plugins.path(), &label, results, &[]);
        assert_eq!(status.code(), Some(0), "{err}");
        let attempts: Vec<serde_json::Value> =
            fs::read_to_string(dir.path().join(results).join("attempts.jsonl"))
                .expect("attempts")
                .lines()
                .map(|l| serde_json::from_str(l).expect("json"))
                .collect();
        assert_eq!(attempts.len(), 40);
        let first_start = attempts
            .iter()
            .map(|a| a["started_unix_ms"].as_u64().unwrap_or(0))
            .min()
            .unwrap_or(0);
        let last_end = attempts
            .iter()
            .map(|a| {
                a["started_unix_ms"].as_u64().unwrap_or(0) + a["duration_ms"].as_u64().unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        let container_start = (first_start - start) as f64 / 1000.0;
        let makespan = (last_end - start) as f64 / 1000.0;
        let target = bound + container_start;
        println!(
            "round {} ({}): makespan {makespan:.2}s, lower bound {bound:.1}s + first container {container_start:.2}s = {target:.2}s, ratio {:.3}",
            round + 1,
            if round == 0 {
                "ordered by declared duration"
            } else {
                "ordered by measured runtimes"
            },
            makespan / target
        );
        assert!(containers_with(&label).is_empty(), "containers left");
        assert!(
            makespan <= target * 1.05,
            "makespan {makespan:.2}s > 1.05 x {target:.2}s\n{err}"
        );
    }
}

fn interrupt_podman(signal: i32, code: i32) {
    ensure_image("base");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let dir = TestDir::new();
    let mut tests = vec![("/quick".to_string(), 0.1)];
    tests.extend((0..7).map(|i| (format!("/slow{i}"), 60.0)));
    write_tree(&dir, &tests);
    let label = format!("atex-int-{}-{signal}", std::process::id());
    let mut child = Command::new(atex_bin())
        .current_dir(dir.path())
        .args([
            "run",
            "--plugin-dir",
            &plugins.path().display().to_string(),
            "-p",
            &format!("podman:max=3,label={label}"),
            "--results",
            "out",
            "--plain",
        ])
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let jsonl = dir.path().join("out/results.jsonl");
    let t0 = Instant::now();
    while fs::read_to_string(&jsonl)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 1
        && t0.elapsed() < Duration::from_secs(120)
    {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(2));
    assert!(
        !containers_with(&label).is_empty(),
        "containers are running"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { kill(child.id() as i32, signal) };
    let t1 = Instant::now();
    let status = child.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    println!(
        "{} stopped the run in {:.1}s",
        if signal == 2 { "SIGINT" } else { "SIGTERM" },
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(code), "{err}");
    let lines: Vec<serde_json::Value> = fs::read_to_string(&jsonl)
        .expect("results.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid line"))
        .collect();
    assert!(
        lines.iter().any(|l| l[2] == "/quick" && l[1] == "pass"),
        "{err}"
    );
    assert!(!dir.path().join("out/.scratch").exists());
    assert_eq!(
        containers_with(&label),
        Vec::<String>::new(),
        "containers left\n{err}"
    );
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

#[test]
#[ignore = "needs podman and the test image"]
fn podman_sigint_leaves_no_container() {
    interrupt_podman(2, 130);
}

#[test]
#[ignore = "needs podman and the test image"]
fn podman_sigterm_leaves_no_container() {
    interrupt_podman(15, 143);
}
