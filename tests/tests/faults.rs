//! The fault-injection suite (issue #14): every provisioner operation
//! failing or hanging (through the `faulty` fixture plugin and real
//! podman), a results directory on a tiny tmpfs, SIGKILL of a system and of
//! atex itself, daemons and descriptor tricks inside tests, and odd inputs
//! upstream accepts. `docs/faults.md` lists every case and what it asserts.
//!
//! Each case checks what must hold after the fault: the run ends (a
//! watchdog kills a hung atex and fails the case) with the right exit code,
//! every finished result is on disk or the run names the ones that are not
//! and exits non-zero, and nothing is left running or allocated.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use atex_integration_tests::{TestDir, atex_bin, plugin_dir_with};

// ------------------------------------------------------------- helpers

/// What one `atex` run did.
struct Run {
    code: Option<i32>,
    stderr: String,
    took: Duration,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "exit {:?} after {:?}; stderr:\n{}",
            self.code, self.took, self.stderr
        )
    }
}

/// The plugins the suite loads, and nothing else.
fn plugins() -> tempfile::TempDir {
    plugin_dir_with(&[
        "atex_fixture_faulty",
        "atex_local",
        "atex_podman",
        "atex_junit",
    ])
}

/// Runs `atex ARGS` in `cwd`; a run still going after `limit` is killed and
/// the case fails: the first thing every case asserts is that the run ends.
fn atex_within(cwd: &Path, args: &[&str], limit: Duration) -> Run {
    let child = Command::new(atex_bin())
        .current_dir(cwd)
        .args(args)
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .env("CONTAINERS_CONF", containers_conf())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn atex");
    finish_within(child, limit)
}

/// Starts `atex run [-p PROVISIONER] --results out --plain` in `cwd` with
/// only `plugins`, stderr piped, for the cases that signal or kill it.
fn spawn_run(cwd: &Path, plugins: &Path, provisioner: Option<&str>) -> std::process::Child {
    let mut cmd = Command::new(atex_bin());
    cmd.current_dir(cwd)
        .arg("run")
        .arg("--plugin-dir")
        .arg(plugins);
    if let Some(p) = provisioner {
        cmd.args(["-p", p]);
    }
    cmd.args(["--results", "out", "--plain"])
        .env_remove("ATEX_PLUGIN_PATH")
        .env("CONTAINERS_CONF", containers_conf())
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn finish_within(mut child: std::process::Child, limit: Duration) -> Run {
    let t0 = Instant::now();
    let pid = child.id() as i32;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            // SAFETY: kill(2) on our own child, which has not been reaped
            // yet (the main thread is still waiting for it).
            unsafe { kill(pid, 9) };
            return true;
        }
        false
    });
    let out: Output = {
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let status = child.wait().expect("wait for atex");
        Output {
            status,
            stdout: Vec::new(),
            stderr: reader.join().unwrap_or_default().into_bytes(),
        }
    };
    let _ = done_tx.send(());
    let hung = watchdog.join().unwrap_or(false);
    let run = Run {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: t0.elapsed(),
    };
    assert!(
        !hung,
        "atex did not end within {limit:?} and was killed\n{}",
        run.context()
    );
    run
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

fn containers_conf() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("containers.conf")
}

/// An FMF tree with one test per `(name, script)`.
fn tree(tests: &[(&str, &str)]) -> TestDir {
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    let mut main = String::new();
    for (name, script) in tests {
        main.push_str(&format!(
            "{name}:\n    duration: 1m\n    test: |\n        {}\n",
            script.replace('\n', "\n        ")
        ));
    }
    dir.create("main.fmf", &main);
    dir
}

const ABC: &[(&str, &str)] = &[("/a", "echo a"), ("/b", "echo b"), ("/c", "echo c")];

/// `atex run` in `dir` with the suite's plugins, the given provisioner and
/// results in `dir/out`.
fn run_with(dir: &TestDir, provisioner: &str, extra: &[&str], limit: Duration) -> Run {
    run_to(dir, provisioner, Path::new("out"), extra, limit)
}

/// As [`run_with`], with results in `out`.
fn run_to(dir: &TestDir, provisioner: &str, out: &Path, extra: &[&str], limit: Duration) -> Run {
    let plugins = plugins();
    let mut args = vec![
        "run",
        "--plugin-dir",
        plugins.path().to_str().expect("utf8"),
        "-p",
        provisioner,
        "--results",
        out.to_str().expect("utf8"),
        "--plain",
    ];
    args.extend_from_slice(extra);
    atex_within(dir.path(), &args, limit)
}

fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Test names in `results.jsonl` with their status.
fn results(dir: &Path) -> Vec<(String, String)> {
    jsonl(&dir.join("results.jsonl"))
        .iter()
        .filter(|l| l[3].is_null())
        .map(|l| {
            (
                l[2].as_str().unwrap_or_default().to_string(),
                l[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The operations the faulty plugin logged.
fn plugin_log(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// `stop` ran, no system was handed out after it, and every system handed
/// out was released.
fn assert_all_released(log: &[String]) {
    let stop_at = log
        .iter()
        .position(|l| l == "stop")
        .unwrap_or_else(|| panic!("stop was not called: {log:?}"));
    let got = |lines: &[String]| -> BTreeSet<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("get "))
            .filter(|n| !n.ends_with("failed"))
            .map(|n| format!("faulty-{n}"))
            .collect()
    };
    assert_eq!(
        got(log),
        got(&log[..stop_at]),
        "systems handed out after stop: {log:?}"
    );
    let released: BTreeSet<String> = log
        .iter()
        .filter_map(|l| l.strip_prefix("release "))
        .map(str::to_string)
        .collect();
    let unreleased: Vec<String> = got(log).difference(&released).cloned().collect();
    assert!(
        unreleased.is_empty(),
        "never released: {unreleased:?} in {log:?}"
    );
}

/// Processes whose command line contains `tag`.
fn processes_with(tag: &str) -> Vec<String> {
    let ps = Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(tag) && !l.contains("ps -eo"))
        .map(str::to_string)
        .collect()
}

/// A number unique to this test process and call, for `ps`.
fn tag() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    format!("{}{n:03}", std::process::id())
}

/// A tmpfs mounted on a fresh directory, unmounted when dropped (also when
/// the case fails).
struct Tmpfs {
    dir: TestDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn new(options: &str) -> Tmpfs {
        let dir = TestDir::new();
        let mount = dir.path().join("mnt");
        fs::create_dir(&mount).expect("mkdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "atex-faults"])
            .arg(&mount)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs -o {options} failed (the suite needs root)"
        );
        Tmpfs { dir, mount }
    }
    fn path(&self) -> &Path {
        &self.mount
    }
    /// Remounts read-only.
    fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.mount)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount ro");
    }
    /// Fills the filesystem up to `leave` free bytes.
    fn fill(&self, leave: u64) {
        let stat = rustix_free(&self.mount);
        let size = stat.saturating_sub(leave);
        let status = Command::new("fallocate")
            .args(["-l", &size.to_string()])
            .arg(self.mount.join("filler"))
            .status()
            .expect("fallocate");
        assert!(status.success(), "fallocate");
    }
}

fn rustix_free(path: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(path)
        .output()
        .expect("stat -f");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .map(|w| w.parse::<u64>().unwrap_or(0));
    it.next().unwrap_or(0) * it.next().unwrap_or(0)
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
        let _ = &self.dir;
    }
}

// ------------------------------------------ provisioner faults (fixture)

/// `start` fails: one line naming the provisioner, exit 2, at once.
#[test]
fn fault_start_fails_exit_2_at_once() {
    let dir = tree(ABC);
    let run = run_with(&dir, "faulty:fail_start=true", &[], Duration::from_secs(20));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        run.stderr.contains("injected start failure"),
        "{}",
        run.context()
    );
    assert!(run.took < Duration::from_secs(5), "{}", run.context());
}

/// The only provisioner fails to start (the podman case of item 1 is the
/// same path): one line says so, not the same message twice.
#[test]
fn start_failure_is_said_in_one_line() {
    let dir = tree(ABC);
    let run = run_with(&dir, "faulty:fail_start=true", &[], Duration::from_secs(20));
    assert_eq!(run.code, Some(2), "{}", run.context());
    let lines = run
        .stderr
        .lines()
        .filter(|l| l.contains("injected start failure"))
        .count();
    assert_eq!(lines, 1, "{}", run.context());
    assert_no_repeated_cause(&run);
}

/// Every `get_remote` fails: the provisioner is dropped after its budget,
/// the tests are infra "not run", exit 2, and the plugin was stopped.
#[test]
fn fault_every_provision_fails_drops_the_provisioner() {
    let dir = tree(ABC);
    let log = dir.path().join("plugin.log");
    let opt = format!("faulty:fail_provision_from=1,log={}", log.display());
    let run = run_with(
        &dir,
        &opt,
        &["--failure-budget", "3"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(run.stderr.contains("dropped after 3"), "{}", run.context());
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "every test has a result: {res:?}");
    assert!(res.iter().all(|(_, s)| s == "infra"), "{res:?}");
    assert_all_released(&plugin_log(&log));
}

/// One `get_remote` fails, later ones work: the run recovers and passes.
#[test]
fn fault_one_failed_provision_is_survived() {
    let dir = tree(ABC);
    let run = run_with(
        &dir,
        "faulty:fail_provision_at=1",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(0), "{}", run.context());
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "{res:?}");
    assert!(res.iter().all(|(_, s)| s == "pass"), "{res:?}");
}

/// Issue item 1 at the driver: a provisioner whose failed `get_remote`
/// used up the request (as the podman plugin did) must not leave the run
/// waiting for a system nobody is making: the run ends, exit 2.
#[test]
fn fault_failed_provision_that_uses_its_request_does_not_hang() {
    let dir = tree(ABC);
    let run = run_with(
        &dir,
        "faulty:fail_provision_from=1,failure_uses_request=true",
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "every test has a result: {res:?}");
}

/// `connection()` returns an error: setup fails, the provisioner is dropped
/// after the budget, exit 2, every system released.
#[test]
fn fault_connection_error_drops_the_provisioner() {
    let dir = tree(ABC);
    let log = dir.path().join("plugin.log");
    let opt = format!("faulty:fail_connection_from=1,log={}", log.display());
    let run = run_with(&dir, &opt, &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        run.stderr.contains("injected connection failure"),
        "{}",
        run.context()
    );
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "{res:?}");
    assert_all_released(&plugin_log(&log));
}

/// The connection is a command that cannot run: same as above, and the
/// message names the command.
#[test]
fn fault_broken_connection_drops_the_provisioner() {
    let dir = tree(ABC);
    let log = dir.path().join("plugin.log");
    let opt = format!("faulty:broken_connection_from=2,log={}", log.display());
    // System 1 works; every later one is broken. The tests still finish on
    // system 1 and the broken ones are charged against the budget.
    let run = run_with(&dir, &opt, &[], Duration::from_secs(30));
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "{res:?}\n{}", run.context());
    assert!(res.iter().all(|(_, s)| s == "pass"), "{res:?}");
    assert!(
        run.stderr.contains("/nonexistent/atex-faulty-shell"),
        "{}",
        run.context()
    );
    assert_all_released(&plugin_log(&log));
}

/// `release` fails: every result is still on disk and the failure names
/// the system it leaves possibly allocated.
#[test]
fn fault_release_failure_is_reported_and_results_kept() {
    let dir = tree(ABC);
    let log = dir.path().join("plugin.log");
    let opt = format!("faulty:fail_release=true,log={}", log.display());
    let run = run_with(&dir, &opt, &[], Duration::from_secs(30));
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "{res:?}\n{}", run.context());
    let released: Vec<String> = plugin_log(&log)
        .iter()
        .filter_map(|l| l.strip_prefix("release ").map(str::to_string))
        .collect();
    assert!(!released.is_empty());
    for name in &released {
        assert!(
            run.stderr.contains(&format!("release failure of {name}")),
            "the failed release of {name} is not reported\n{}",
            run.context()
        );
    }
}

/// A plugin stuck in `get_remote` (ignoring cancel) cannot keep atex
/// alive past a second Ctrl-C, which exits at once (as documented) with 130.
#[test]
fn fault_second_sigint_exits_while_the_plugin_hangs_in_get_remote() {
    let dir = tree(ABC);
    let plugins = plugins();
    let child = spawn_run(
        dir.path(),
        plugins.path(),
        Some("faulty:hang_in=get_remote,hang_ms=120000"),
    );
    let pid = child.id() as i32;
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(1500));
        // SAFETY: kill(2) on the child spawned above (still unreaped: the
        // run cannot end before its plugin call returns or it is forced).
        unsafe { kill(pid, 2) };
        thread::sleep(Duration::from_millis(1500));
        // SAFETY: as above.
        unsafe { kill(pid, 2) };
    });
    let run = finish_within(child, Duration::from_secs(30));
    assert_eq!(run.code, Some(130), "{}", run.context());
    assert!(run.took < Duration::from_secs(10), "{}", run.context());
}

// ------------------------------------------------------ podman (item 1)

/// Builds `localhost/atex-faults-empty:1`, an image with no files, once:
/// enough for podman to create containers from, without mmdebstrap.
fn empty_image() -> &'static str {
    const IMAGE: &str = "localhost/atex-faults-empty:1";
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let exists = Command::new("podman")
            .args(["image", "exists", IMAGE])
            .env("CONTAINERS_CONF", containers_conf())
            .status()
            .expect("podman");
        if !exists.success() {
            let status = Command::new("sh")
                .args([
                    "-c",
                    &format!("tar cf - --files-from /dev/null | podman import -q - {IMAGE}"),
                ])
                .env("CONTAINERS_CONF", containers_conf())
                .status()
                .expect("podman import");
            assert!(status.success(), "podman import of an empty image");
        }
    });
    IMAGE
}

fn podman_leftovers(run_label_part: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--format",
            "{{.ID}} {{.Labels}}",
            "--filter",
            "label=atex.run",
        ])
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("podman ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(run_label_part))
        .map(str::to_string)
        .collect()
}

/// Issue item 1: `-p podman:image=<missing>` used to print a warning and
/// wait forever. Now: exit 2 within seconds, the image named.
#[test]
fn podman_missing_image_ends_the_run_naming_it() {
    let dir = tree(ABC);
    let label = format!("faults-noimage-{}", std::process::id());
    let opt = format!("podman:image=localhost/atex-no-such-image:x,label={label}");
    let run = run_with(&dir, &opt, &[], Duration::from_secs(60));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        run.stderr.contains("localhost/atex-no-such-image:x"),
        "{}",
        run.context()
    );
    assert!(run.took < Duration::from_secs(20), "{}", run.context());
    assert!(podman_leftovers(&label).is_empty());
}

/// Issue item 1: `run_options=--bogus-flag` used to hang the same way.
/// Now: exit 2 within seconds, the option named, no container left.
#[test]
fn podman_refused_run_option_ends_the_run_naming_it() {
    let image = empty_image();
    let dir = tree(ABC);
    let label = format!("faults-badopt-{}", std::process::id());
    let opt = format!("podman:image={image},run_options=--bogus-flag,label={label}");
    let run = run_with(&dir, &opt, &[], Duration::from_secs(60));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(run.stderr.contains("--bogus-flag"), "{}", run.context());
    assert!(run.took < Duration::from_secs(20), "{}", run.context());
    assert!(podman_leftovers(&label).is_empty());
}

/// A container whose command does not exist passes `start` but every
/// `podman run` fails: each failure counts, the provisioner is dropped
/// after the budget, exit 2, no container left.
#[test]
fn podman_failing_starts_end_after_the_budget() {
    let image = empty_image();
    let dir = tree(ABC);
    let label = format!("faults-badcmd-{}", std::process::id());
    let opt = format!("podman:image={image},command=/no/such/command,label={label}");
    let run = run_with(
        &dir,
        &opt,
        &["--failure-budget", "3"],
        Duration::from_secs(90),
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(run.stderr.contains("dropped after 3"), "{}", run.context());
    let res = results(&dir.path().join("out"));
    assert_eq!(res.len(), 3, "{res:?}");
    assert!(res.iter().all(|(_, s)| s == "infra"), "{res:?}");
    assert!(podman_leftovers(&label).is_empty());
}

/// The test image of `tests/images/build.sh base`, built only when it is
/// missing (the script waits for a lock while another build runs).
fn test_image() -> &'static str {
    const IMAGE: &str = "localhost/atex-test:bookworm";
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let exists = Command::new("podman")
            .args(["image", "exists", IMAGE])
            .env("CONTAINERS_CONF", containers_conf())
            .status()
            .expect("podman");
        if exists.success() {
            return;
        }
        let status =
            Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("images/build.sh"))
                .arg("base")
                .env("CONTAINERS_CONF", containers_conf())
                .status()
                .expect("tests/images/build.sh");
        assert!(status.success(), "tests/images/build.sh base");
    });
    IMAGE
}

/// SIGKILL of the system mid-test (the container is killed from outside):
/// the test is infra, the other tests still run, the run ends, and no
/// container of the run is left.
#[test]
fn podman_container_killed_mid_test() {
    let image = test_image();
    let dir = TestDir::new();
    let flag = dir.path().join("started");
    dir.create(".fmf/version", "1\n");
    dir.create(
        "main.fmf",
        "/victim:\n    duration: 5m\n    test: echo started; sleep 300\n/after:\n    test: echo after\n",
    );
    let label = format!("faults-kill-{}", std::process::id());
    let plugins = plugins();
    let opt = format!("podman:image={image},max=1,label={label}");
    let child = spawn_run(dir.path(), plugins.path(), Some(&opt));
    let killer_label = label.clone();
    thread::spawn(move || {
        // Wait for /victim to run, then kill its container.
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            let ps = Command::new("podman")
                .args([
                    "ps",
                    "-q",
                    "--filter",
                    &format!("label=atex.run={killer_label}"),
                ])
                .env("CONTAINERS_CONF", containers_conf())
                .output();
            let ids = ps
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let top = Command::new("podman")
                .args(["top", ids.lines().next().unwrap_or("none"), "args"])
                .env("CONTAINERS_CONF", containers_conf())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if top.contains("sleep 300") {
                let _ = fs::write(&flag, "");
                let _ = Command::new("podman")
                    .args(["kill", "--signal", "KILL"])
                    .arg(ids.lines().next().unwrap_or("none"))
                    .env("CONTAINERS_CONF", containers_conf())
                    .status();
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let run = finish_within(child, Duration::from_secs(120));
    assert!(dir.path().join("started").exists(), "the victim never ran");
    let res = results(&dir.path().join("out"));
    assert!(
        res.contains(&("/victim".into(), "infra".into())),
        "{res:?}\n{}",
        run.context()
    );
    assert!(
        res.contains(&("/after".into(), "pass".into())),
        "{res:?}\n{}",
        run.context()
    );
    assert_ne!(run.code, Some(0), "{}", run.context());
    assert!(
        podman_leftovers(&label).is_empty(),
        "containers left: {:?}",
        podman_leftovers(&label)
    );
}

/// SIGKILL of atex itself: the containers it leaves carry the run id, the
/// run printed that id (also with `--results`), and removing the leftovers
/// by it leaves nothing.
#[test]
fn podman_sigkill_of_atex_then_leftover_cleanup_by_printed_run_id() {
    let image = test_image();
    let dir = tree(&[("/long", "sleep 300")]);
    let plugins = plugins();
    let opt = format!("podman:image={image},max=1");
    let mut child = spawn_run(dir.path(), plugins.path(), Some(&opt));
    let pid = child.id();
    // The run's containers: those whose atex.run label ends in "-<pid>".
    let suffix = format!("-{pid}");
    let t0 = Instant::now();
    let mut run_id = None;
    while t0.elapsed() < Duration::from_secs(60) && run_id.is_none() {
        let out = Command::new("podman")
            .args(["ps", "--format", "{{index .Labels \"atex.run\"}}"])
            .env("CONTAINERS_CONF", containers_conf())
            .output()
            .expect("podman ps");
        run_id = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.ends_with(&suffix))
            .map(str::to_string);
        thread::sleep(Duration::from_millis(300));
    }
    thread::sleep(Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let Some(run_id) = run_id else {
        panic!("no container of the run appeared\n{stderr}");
    };
    let left = podman_leftovers(&format!("atex.run:{run_id}"));
    // Clean up before asserting, so a failing case leaves nothing either.
    atex_podman::remove_leftovers(Some(&run_id)).expect("remove leftovers");
    assert!(!left.is_empty(), "SIGKILL left no container to clean up");
    assert!(
        podman_leftovers(&format!("atex.run:{run_id}")).is_empty(),
        "remove_leftovers left containers"
    );
    assert!(
        stderr.contains(&run_id),
        "the run id {run_id} needed for the cleanup was not printed\n{stderr}"
    );
}

// --------------------------------------------- full results disk (item 2)

/// Issue item 2: results on a 3 MB tmpfs, /b printing 5 MB. Every test not
/// in results.jsonl is named on stderr, the exit code is 2, and no empty
/// temporary file is left beside the results.
#[test]
fn enospc_large_output_is_an_error_naming_what_was_lost() {
    let fs3 = Tmpfs::new("size=3m");
    let dir = tree(&[
        ("/a", "echo first"),
        ("/b", "head -c 5000000 /dev/zero | tr '\\0' x"),
        ("/c", "echo hi"),
    ]);
    let out = fs3.path().join("out");
    let plugins = plugins();
    let run = atex_within(
        dir.path(),
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "-p",
            "local:max=1",
            "--results",
            out.to_str().expect("utf8"),
            "--plain",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        run.code,
        Some(2),
        "a full disk is an error\n{}",
        run.context()
    );
    assert_lost_results_named(&out, &["/a", "/b", "/c"], &run);
    assert_no_empty_temp_files(fs3.path());
}

/// Every test missing from `results.jsonl` is named on stderr, on a line
/// that is not its progress line.
fn assert_lost_results_named(out: &Path, tests: &[&str], run: &Run) {
    let stored: BTreeSet<String> = results(out).into_iter().map(|(t, _)| t).collect();
    for t in tests {
        if stored.contains(*t) {
            continue;
        }
        let named = run.stderr.lines().any(|l| {
            // Progress lines start with a word in capitals (START, FAIL).
            let first = l.split_whitespace().next().unwrap_or("");
            !(first.len() > 1 && first.chars().all(|c| c.is_ascii_uppercase()))
                && l.split(|c: char| c.is_whitespace() || ",;:()'\"`".contains(c))
                    .any(|word| word == *t)
        });
        assert!(
            named,
            "{t} is not in results.jsonl and the run does not say so\n{}",
            run.context()
        );
    }
}

/// No zero-byte file (an interrupted atomic write) anywhere under `root`.
fn assert_no_empty_temp_files(root: &Path) {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, found);
            } else if e.metadata().is_ok_and(|m| m.len() == 0)
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("tmp"))
            {
                found.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(root, &mut found);
    assert!(found.is_empty(), "empty temporary files left: {found:?}");
}

/// The disk fills up during the run (the first test fills it): every
/// later write of results fails. Exit 2 and the lost tests named, never
/// "3 pass" and exit 0.
#[test]
fn enospc_disk_filled_by_a_test_is_an_error() {
    let fs2 = Tmpfs::new("size=2m");
    let out = fs2.path().join("out");
    let filler = fs2.path().join("filler");
    let fill = format!(
        "fallocate -l $(( $(stat -f -c '%a*%S' {mnt}) )) {filler} || true\necho filled",
        mnt = fs2.path().display(),
        filler = filler.display()
    );
    let dir = tree(&[("/a", &fill), ("/b", "echo b"), ("/c", "echo c")]);
    let run = run_to(&dir, "local:max=1", &out, &[], Duration::from_secs(60));
    assert!(
        filler.exists(),
        "the disk was not filled\n{}",
        run.context()
    );
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert_lost_results_named(&out, &["/a", "/b", "/c"], &run);
    assert_no_empty_temp_files(fs2.path());
}

/// The JUnit report cannot be written (full disk at the end): exit 2 and
/// the report's path named; results.jsonl (elsewhere) is complete.
#[test]
fn enospc_in_a_reporter_is_an_error_naming_the_report() {
    let fs1 = Tmpfs::new("size=1m");
    let report = fs1.path().join("junit.xml");
    let dir = tree(&[("/a", "head -c 2000000 /dev/zero | tr '\\0' x")]);
    // The disk fills while the run goes on.
    fs1.fill(4096);
    let junit = format!("junit:output={}", report.display());
    let run = run_with(&dir, "local", &["-r", &junit], Duration::from_secs(60));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        run.stderr.contains(&report.display().to_string()),
        "{}",
        run.context()
    );
    assert_eq!(results(&dir.path().join("out")).len(), 1);
}

// --------------------------------------- odd protocol inputs (item 3)

/// Issue item 3: a result named `/setup` with a file `/log.txt` is valid
/// upstream (names are normalised); it must be stored, not made infra.
#[test]
fn upstream_result_named_with_a_leading_slash_is_accepted() {
    let script = r#"j='{"name":"/setup","status":"pass","files":[{"name":"/log.txt","length":3}]}'
printf 'result %s\n%sok\n' ${#j} "$j" >&$ATEX_TEST_CONTROL"#;
    let dir = tree(&[("/odd", script)]);
    let run = run_with(&dir, "local", &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{}", run.context());
    let out = dir.path().join("out");
    let lines = jsonl(&out.join("results.jsonl"));
    let sub = lines
        .iter()
        .find(|l| {
            l[2] == "/odd"
                && l[3]
                    .as_str()
                    .is_some_and(|s| s.trim_start_matches('/') == "setup")
        })
        .unwrap_or_else(|| panic!("no /setup result: {lines:?}"));
    assert_eq!(sub[1], "pass");
    let stored = fs::read_to_string(out.join("files/local/odd/setup/log.txt"))
        .expect("log.txt stored under the normalised name");
    assert_eq!(stored, "ok\n");
}

// ------------------------------------- daemons and fd tricks (item 4)

/// Issue item 4: a daemon started by the test that keeps the control
/// descriptor must not stall the test until its duration: the test passes
/// in seconds, and after atex exits neither the daemon nor the test's work
/// directory is left on the local host.
#[test]
fn daemon_keeping_the_control_fd_does_not_stall_the_test() {
    let tag = tag();
    let dir = TestDir::new();
    let record = dir.path().join("tree-path");
    let script = format!(
        "echo \"$TMT_TREE\" > {}\nsetsid sleep 1001.{tag} >/dev/null 2>&1 </dev/null &",
        record.display()
    );
    dir.create(".fmf/version", "1\n");
    dir.create(
        "main.fmf",
        &format!(
            "/d:\n    duration: 15s\n    test: |\n        {}\n",
            script.replace('\n', "\n        ")
        ),
    );
    let run = run_with(&dir, "local", &[], Duration::from_secs(90));
    let left = processes_with(&format!("sleep 1001.{tag}"));
    for line in &left {
        if let Some(pid) = line.split_whitespace().next().and_then(|p| p.parse().ok()) {
            // SAFETY: kill(2) on a process this case started.
            unsafe { kill(pid, 9) };
        }
    }
    // The test's work directory: the `atex-…` directory holding TMT_TREE.
    let tree_path = fs::read_to_string(&record).expect("the test recorded TMT_TREE");
    let tree_path = PathBuf::from(tree_path.trim());
    let work = tree_path
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("atex-"))
        })
        .unwrap_or(&tree_path)
        .to_path_buf();
    let work_left = work.exists();
    if work_left && work != tree_path {
        // Clean up before asserting, so a failing case leaves nothing.
        let _ = fs::remove_dir_all(&work);
    }
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert_eq!(
        results(&dir.path().join("out")),
        [("/d".to_string(), "pass".to_string())]
    );
    assert!(run.took < Duration::from_secs(15), "{}", run.context());
    assert!(left.is_empty(), "the daemon outlived atex: {left:?}");
    assert!(!work_left, "{} is left on the host", work.display());
}

/// A background process that keeps the test's stdout open: the test ends
/// when its script ends, with its output, and the process is gone after.
#[test]
fn background_process_keeping_stdout_does_not_stall_the_test() {
    let tag = tag();
    let dir = tree(&[("/bg", &format!("sleep 1002.{tag} &\necho visible"))]);
    let run = run_with(&dir, "local", &[], Duration::from_secs(90));
    let left = processes_with(&format!("sleep 1002.{tag}"));
    for line in &left {
        if let Some(pid) = line.split_whitespace().next().and_then(|p| p.parse().ok()) {
            // SAFETY: kill(2) on a process this case started.
            unsafe { kill(pid, 9) };
        }
    }
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(run.took < Duration::from_secs(15), "{}", run.context());
    let output =
        fs::read_to_string(dir.path().join("out/files/local/bg/output.txt")).expect("output.txt");
    assert!(output.contains("visible"), "{output:?}");
    assert!(left.is_empty(), "the process outlived atex: {left:?}");
}

/// A test that closes stdout, stderr and the control descriptor: it still
/// gets its result from the exit code.
#[test]
fn test_closing_its_descriptors_still_gets_a_result() {
    let dir = tree(&[
        (
            "/closed-ok",
            "echo before\nexec >&- 2>&-\neval \"exec $ATEX_TEST_CONTROL>&-\"\ntrue",
        ),
        (
            "/closed-fail",
            "exec >&- 2>&-\neval \"exec $ATEX_TEST_CONTROL>&-\"\nexit 3",
        ),
    ]);
    let run = run_with(&dir, "local", &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(1), "{}", run.context());
    let mut res = results(&dir.path().join("out"));
    res.sort();
    assert_eq!(
        res,
        [
            ("/closed-fail".to_string(), "fail".to_string()),
            ("/closed-ok".to_string(), "pass".to_string())
        ]
    );
}

// ------------------------------------------- non-UTF-8 names (item 5)

/// Issue item 5: a test directory whose name is not UTF-8 is refused at
/// discovery with the path named (it used to run and fail as infra).
#[test]
fn non_utf8_directory_is_refused_at_discovery_naming_it() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tree(&[("/ok", "true")]);
    let bad = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::create_dir(&bad).expect("mkdir");
    fs::write(bad.join("main.fmf"), "test: echo hi\n").expect("write");
    let run = run_with(&dir, "local", &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(run.stderr.contains("caf"), "{}", run.context());
    assert!(run.stderr.contains("UTF-8"), "{}", run.context());
    assert!(!dir.path().join("out/results.jsonl").exists());
}

// ------------------------------------------- large metadata (item 6)

/// Issue item 6: a 5 MB key in the root main.fmf (inherited by every test)
/// made each test start take seconds. Four tests of `true` now run in
/// well under a second each.
#[test]
fn large_metadata_does_not_slow_every_test() {
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    let mut main = format!("big: {}\n", "x".repeat(5_000_000));
    for t in ["/t1", "/t2", "/t3", "/t4"] {
        main.push_str(&format!("{t}:\n    test: \"true\"\n"));
    }
    dir.create("main.fmf", &main);
    let run = run_with(&dir, "local:max=2", &[], Duration::from_secs(120));
    assert_eq!(run.code, Some(0), "{}", run.context());
    let attempts = jsonl(&dir.path().join("out/attempts.jsonl"));
    assert_eq!(attempts.len(), 4);
    for a in &attempts {
        let ms = a["duration_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(ms < 1500, "{} took {ms} ms\n{}", a["test"], run.context());
    }
}

// ------------------------------------------------ smaller ones (item 7)

/// An interrupted test's output is kept and it is recorded as infra
/// "cancel requested", as upstream does, not listed as not run.
#[test]
fn interrupted_test_keeps_its_output_as_infra() {
    let dir = tree(&[("/slow", "echo started-output\nsleep 60")]);
    let plugins = plugins();
    let child = spawn_run(dir.path(), plugins.path(), None);
    let pid = child.id() as i32;
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(2));
        // SAFETY: kill(2) on the child spawned above.
        unsafe { kill(pid, 2) };
    });
    let run = finish_within(child, Duration::from_secs(30));
    assert_eq!(run.code, Some(130), "{}", run.context());
    let lines = jsonl(&dir.path().join("out/results.jsonl"));
    let slow = lines
        .iter()
        .find(|l| l[2] == "/slow" && l[3].is_null())
        .unwrap_or_else(|| panic!("/slow has no result\n{}", run.context()));
    assert_eq!(slow[1], "infra");
    assert!(
        slow[5].as_str().is_some_and(|n| n.contains("cancel")),
        "{slow}"
    );
    let output = fs::read_to_string(dir.path().join("out/files/local/slow/output.txt"))
        .expect("the interrupted test's output is kept");
    assert!(output.contains("started-output"), "{output:?}");
}

/// A configuration error (an unknown provisioner) leaves no results
/// directory behind.
#[test]
fn configuration_error_leaves_no_results_directory() {
    let dir = tree(ABC);
    let run = run_with(&dir, "nosuch", &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        !dir.path().join("out").exists(),
        "an empty results directory was left\n{}",
        run.context()
    );
}

/// `--workers 0` is a usage error.
#[test]
fn zero_workers_is_refused() {
    let dir = tree(ABC);
    let run = run_with(&dir, "local", &["--workers", "0"], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(run.stderr.contains("workers"), "{}", run.context());
}

/// No error line says the same thing twice (`Read-only file system (os
/// error 30): Read-only file system (os error 30)`).
fn assert_no_repeated_cause(run: &Run) {
    for line in run.stderr.lines() {
        let parts: Vec<&str> = line.split(": ").collect();
        for w in parts.windows(2) {
            assert!(
                w[0] != w[1] || !w[0].contains("os error"),
                "repeated cause in {line:?}"
            );
        }
    }
}

/// Results directory on a read-only filesystem: exit 2, one line naming
/// the directory, the cause said once.
#[test]
fn read_only_results_directory_error_is_said_once() {
    let ro = Tmpfs::new("size=1m");
    fs::create_dir(ro.path().join("out")).expect("mkdir");
    ro.read_only();
    let dir = tree(ABC);
    let out = ro.path().join("out");
    let run = run_to(&dir, "local", &out, &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        run.stderr.contains(&out.display().to_string()),
        "{}",
        run.context()
    );
    assert_no_repeated_cause(&run);
}

/// A reporter output that cannot be written is refused naming the path
/// given, never an internal probe file.
#[test]
fn refused_report_path_names_no_internal_file() {
    let ro = Tmpfs::new("size=1m");
    ro.read_only();
    let report = ro.path().join("junit.xml");
    let dir = tree(ABC);
    let junit = format!("junit:output={}", report.display());
    let run = run_with(&dir, "local", &["-r", &junit], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(
        run.stderr.contains(&report.display().to_string()),
        "{}",
        run.context()
    );
    assert!(
        !run.stderr.contains(".atex-write-check"),
        "{}",
        run.context()
    );
    assert_no_repeated_cause(&run);
}

/// The timing history cannot be saved: the error names the history file.
#[test]
fn history_save_error_names_the_file() {
    let ro = Tmpfs::new("size=1m");
    ro.read_only();
    let history = ro.path().join("history.json");
    let dir = tree(ABC);
    dir.create("atex.yaml", &format!("history: {}\n", history.display()));
    let run = run_with(
        &dir,
        "local",
        &["--config", "atex.yaml"],
        Duration::from_secs(30),
    );
    assert!(
        run.stderr.contains(&history.display().to_string()),
        "the history error does not name {}\n{}",
        history.display(),
        run.context()
    );
    assert_eq!(results(&dir.path().join("out")).len(), 3);
}

/// An invalid adjust rule names the file it is in, not only the node.
#[test]
fn adjust_error_names_the_file() {
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    dir.create(
        "sub/x.fmf",
        "test: \"true\"\nadjust:\n  - when: distro ==\n    enabled: false\n",
    );
    let run = run_with(&dir, "local", &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{}", run.context());
    assert!(run.stderr.contains("sub/x.fmf"), "{}", run.context());
    assert!(run.stderr.contains("/sub/x"), "{}", run.context());
}

/// A test or a prepare step killed by SIGKILL (or exiting 137): notes and
/// errors speak of the signal or the code, never of a Rust `Some(137)` or
/// `None`.
#[test]
fn killed_test_and_prepare_step_notes_are_plain_text() {
    let dir = tree(&[("/killed", "echo bye\nkill -9 $$")]);
    let run = run_with(&dir, "local", &[], Duration::from_secs(30));
    assert_eq!(run.code, Some(1), "{}", run.context());
    let lines = jsonl(&dir.path().join("out/results.jsonl"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0][1] == "fail" || lines[0][1] == "error", "{lines:?}");
    let everything = format!("{lines:?}\n{}", run.stderr);
    assert!(!everything.contains("Some("), "{everything}");
    assert!(!everything.contains("None"), "{everything}");

    for script in ["kill -9 $$", "exit 137"] {
        let dir = tree(&[("/t", "true")]);
        dir.create(
            "plans/main.fmf",
            &format!("discover:\n    how: fmf\nprepare:\n    how: shell\n    script: {script}\n"),
        );
        let run = run_with(
            &dir,
            "local",
            &["--plan", "/plans", "--failure-budget", "1"],
            Duration::from_secs(30),
        );
        assert_eq!(run.code, Some(2), "{}", run.context());
        assert!(run.stderr.contains("prepare"), "{}", run.context());
        let lines = jsonl(&dir.path().join("out/results.jsonl"));
        let everything = format!("{lines:?}\n{}", run.stderr);
        assert!(!everything.contains("Some("), "{script}: {everything}");
        assert!(!everything.contains("None"), "{script}: {everything}");
    }
}
