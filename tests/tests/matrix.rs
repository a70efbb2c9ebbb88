//! Runs that go beyond one pass over one platform: resuming an
//! interrupted run, rerunning the failures of a finished one, and (below)
//! one suite on several platforms. Real podman containers.

use std::{
    collections::BTreeMap,
    fs,
    path::Path,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use atex_integration_tests::{
    TestDir, atex_bin, containers_conf, ensure_image, plugin_dir_with, stderr,
};

const IMAGE: &str = "localhost/atex-test:bookworm";

fn atex_cmd(dir: &Path, plugins: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(atex_bin());
    cmd.current_dir(dir)
        .arg("run")
        .arg("--plugin-dir")
        .arg(plugins)
        .args(args)
        .arg("--plain")
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    cmd
}

fn run(dir: &Path, plugins: &Path, args: &[&str]) -> Output {
    atex_cmd(dir, plugins, args).output().expect("run atex")
}

/// (platform, test) -> the test's own result line, from results.jsonl.
fn finals(results: &Path) -> BTreeMap<(String, String), serde_json::Value> {
    let text = fs::read_to_string(results.join("results.jsonl")).unwrap_or_default();
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        if v[3].is_null() {
            let key = (
                v[0].as_str().unwrap_or_default().to_string(),
                v[2].as_str().unwrap_or_default().to_string(),
            );
            assert!(out.insert(key.clone(), v).is_none(), "{key:?} twice");
        }
    }
    out
}

/// Eight tests of about a second; `/t3` fails.
fn suite(dir: &TestDir) {
    dir.create(".fmf/version", "1\n");
    let mut main = String::new();
    for i in 0..8 {
        let end = if i == 3 { "exit 1" } else { "true" };
        main.push_str(&format!(
            "/t{i}:\n    test: sleep 1; echo t{i} ran; {end}\n    duration: 1m\n"
        ));
    }
    dir.create("main.fmf", &main);
}

#[test]
fn resume_after_sigint_runs_every_test_exactly_once_and_rerun_failed_keeps_attempts() {
    ensure_image("base");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let dir = TestDir::new();
    suite(&dir);
    let prov = format!("podman:image={IMAGE},max=2");
    let results = dir.path().join("out");
    let args = ["-p", prov.as_str(), "--workers", "2"];

    // First run: interrupted once two results are in.
    let mut first: Vec<&str> = args.to_vec();
    first.extend(["--results", "out"]);
    let mut child = atex_cmd(dir.path(), plugins.path(), &first)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while finals(&results).len() < 2 && t0.elapsed() < Duration::from_secs(120) {
        thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc_kill(child.id() as i32, 2) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let before = finals(&results);
    assert!(before.len() < 8, "{before:?}");
    let kept: BTreeMap<_, _> = before
        .iter()
        .filter(|(_, v)| v[5] != "cancel requested")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let kept_output: Vec<(String, String)> = kept
        .keys()
        .map(|(p, t)| {
            let f = results.join(format!("files/{p}{t}/output.txt"));
            (
                t.clone(),
                fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())),
            )
        })
        .collect();

    // Resume: every test exactly once, the kept ones untouched.
    let mut resume: Vec<&str> = args.to_vec();
    resume.extend(["--resume", "out"]);
    let out = run(dir.path(), plugins.path(), &resume);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let after = finals(&results);
    let names: Vec<&str> = after.keys().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        names,
        ["/t0", "/t1", "/t2", "/t3", "/t4", "/t5", "/t6", "/t7"]
    );
    for (k, v) in &kept {
        assert_eq!(&after[k], v);
    }
    for (t, text) in &kept_output {
        let (p, _) = kept.keys().find(|(_, n)| n == t).expect("kept");
        let now =
            fs::read_to_string(results.join(format!("files/{p}{t}/output.txt"))).expect("output");
        assert_eq!(&now, text, "{t}: output changed");
    }
    // Only the tests without a result ran in the second run.
    let ran_again = stderr(&out)
        .lines()
        .filter(|l| l.trim_start().starts_with("START"))
        .count();
    assert_eq!(ran_again, 8 - kept.len(), "{}", stderr(&out));
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(results.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["tests_total"], 8);
    assert_eq!(summary["tests"].as_array().map(Vec::len), Some(8));

    // Rerun the failures: /t3 runs again, its first attempt is kept.
    let mut rerun: Vec<&str> = args.to_vec();
    rerun.extend(["--rerun-failed", "out"]);
    let out = run(dir.path(), plugins.path(), &rerun);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let last = finals(&results);
    assert_eq!(last.len(), 8);
    let err = stderr(&out);
    let ran: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("START"))
        .collect();
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].contains("/t3"), "{ran:?}");
    let (p, _) = last.keys().find(|(_, t)| t == "/t3").expect("/t3");
    let earlier = results.join(format!("attempts/{p}/t3"));
    let attempts: Vec<String> = fs::read_dir(&earlier)
        .unwrap_or_else(|e| panic!("{}: {e}", earlier.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!attempts.is_empty(), "no earlier attempt of /t3 kept");
    let first_output = earlier.join(format!("{}/files/output.txt", attempts[0]));
    assert!(
        fs::read_to_string(&first_output)
            .unwrap_or_default()
            .contains("t3 ran"),
        "{}",
        first_output.display()
    );
    // attempts.jsonl numbers /t3's attempts without repeating one.
    let log = fs::read_to_string(results.join("attempts.jsonl")).expect("attempts.jsonl");
    let mut numbers: Vec<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["test"] == "/t3")
        .filter_map(|v| v["attempt"].as_u64())
        .collect();
    let n = numbers.len();
    numbers.dedup();
    assert_eq!(numbers.len(), n, "{log}");
    assert!(n >= 2, "{log}");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Two images as two platforms, each with its own fmf context: `adjust`
/// removes a test on one and changes a test's environment on the other.
/// The results hold exactly the expected (platform, test) pairs, with the
/// environment each platform's context gave.
#[test]
fn two_platforms_with_their_own_contexts_run_their_own_tests() {
    ensure_image("base");
    ensure_image("ssh");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    dir.create(
        "main.fmf",
        "/common:\n    test: echo \"greeting=$GREETING\"\n    environment:\n        GREETING: hello\n    \
         adjust:\n      - when: distro == beta\n        environment+:\n            GREETING: beta-hello\n\
         /only-alpha:\n    test: 'true'\n    adjust:\n      - when: distro == beta\n        enabled: false\n\
         /both:\n    test: 'true'\n",
    );
    let a = format!("podman:image={IMAGE},max=1,platform=deb-a");
    let b = "podman:image=localhost/atex-test-ssh:bookworm,max=1,platform=deb-b";
    let out = run(
        dir.path(),
        plugins.path(),
        &[
            "-p",
            &a,
            "-p",
            b,
            "--context-for",
            "deb-a:distro=alpha",
            "--context-for",
            "deb-b:distro=beta",
            "--results",
            "out",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let results = dir.path().join("out");
    let got: Vec<(String, String)> = finals(&results).into_keys().collect();
    let want: Vec<(String, String)> = [
        ("deb-a", "/both"),
        ("deb-a", "/common"),
        ("deb-a", "/only-alpha"),
        ("deb-b", "/both"),
        ("deb-b", "/common"),
    ]
    .iter()
    .map(|(p, t)| (p.to_string(), t.to_string()))
    .collect();
    assert_eq!(got, want, "{}", stderr(&out));
    let greeting = |p: &str| {
        fs::read_to_string(results.join(format!("files/{p}/common/output.txt")))
            .expect("output.txt")
    };
    assert!(
        greeting("deb-a").contains("greeting=hello"),
        "{}",
        greeting("deb-a")
    );
    assert!(
        greeting("deb-b").contains("greeting=beta-hello"),
        "{}",
        greeting("deb-b")
    );
    // Each platform's tests ran on its own image's containers.
    let attempts = fs::read_to_string(results.join("attempts.jsonl")).expect("attempts");
    for line in attempts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(v["provisioner"], "podman", "{line}");
    }
    // The terminal summary shows the matrix.
    let err = stderr(&out);
    assert!(err.contains("tests × platforms:"), "{err}");
    let row = err
        .lines()
        .find(|l| l.trim_start().starts_with("/only-alpha"))
        .unwrap_or_default();
    assert!(
        row.contains("pass") && row.trim_end().ends_with('-'),
        "{err}"
    );
}
