//! Tests written for upstream atex run unchanged (issue #23).
//!
//! Each case is an upstream-style test: a `test:` script that speaks the
//! test-control protocol exactly as upstream documents it (`result` with
//! files, `partial` and `testout`, `exitcode`, `duration` with `+`, `-`,
//! `save` and `restore`, `disconnect`, `noop`), with the results upstream
//! writes for it. The reboot patterns run on a systemd container, where a
//! reboot restarts the container; the rest runs on the local host and on a
//! plain container.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use atex::{
    backend::{Connection, Provisioner, Remote},
    executor::{CancelToken, PlanSpec, System, SystemOptions, TestOutcome, TestSpec},
};
use atex_integration_tests::TestDir;
use serde_json::{Value, json};

fn spec(name: &str, script: &str) -> TestSpec {
    TestSpec {
        name: name.into(),
        rel_dir: "t".into(),
        script: script.into(),
        duration: Duration::from_secs(60),
        environment: Vec::new(),
        require: Vec::new(),
        recommend: Vec::new(),
        tty: false,
        metadata: json!({"test": script}),
    }
}

struct Fixture {
    _tree: TestDir,
    system: System,
}

fn open(conn: Connection) -> Fixture {
    let tree = TestDir::new();
    tree.create("t/file_in_fmfdir", "123\n");
    let mut system = System::open("compat", conn, &SystemOptions::default()).expect("open");
    system
        .setup(tree.path(), &PlanSpec::default(), &CancelToken::new())
        .expect("setup");
    Fixture {
        _tree: tree,
        system,
    }
}

fn run(f: &mut Fixture, test: &TestSpec) -> (tempfile::TempDir, TestOutcome) {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let outcome = f
        .system
        .run_test(test, artifacts.path(), &[], &CancelToken::new())
        .expect("run_test");
    eprintln!(
        "{}: {:?} {:?} reboots {} in {:?}",
        test.name,
        outcome.status,
        outcome.note,
        outcome.reboots,
        started.elapsed()
    );
    (artifacts, outcome)
}

fn results(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("results"))
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn output(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("files/output.txt")).unwrap_or_default()
}

/// A podman provisioner from the real plugin (see `executor.rs`).
fn podman(config: &str) -> atex::plugins::ForeignProvisioner {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("containers.conf");
    // SAFETY: every test sets the same value before starting podman.
    unsafe { std::env::set_var("CONTAINERS_CONF", conf) };
    let plugin = atex::plugins::load_plugin(&atex_integration_tests::plugin_lib("atex_podman"))
        .expect("podman plugin");
    let host = atex::plugins::PluginHost::new("atex-tests-compat", std::env::temp_dir());
    let prov = plugin
        .new_provisioner(&host, config)
        .expect("podman provisioner");
    prov.start().expect("start");
    prov
}

fn podman_remote(prov: &atex::plugins::ForeignProvisioner) -> Box<dyn Remote> {
    prov.provision(1);
    prov.get_remote(Duration::from_secs(180))
        .expect("get_remote")
        .expect("a container (build the images with tests/images/build.sh)")
}

// ------------------------------------------------------------ reboots

/// Upstream's documented reboot pattern, word for word: `disconnect`, then
/// `noop` until the write fails, then `sync; reboot; sleep inf`. No
/// `trap` of its own: a failed write after `disconnect` must not kill it.
const REBOOT_LOOP: &str = r#"
if [ "$TMT_REBOOT_COUNT" -eq 0 ]; then
  echo disconnecting
  echo disconnect >&$ATEX_TEST_CONTROL
  while true; do
    echo noop >&$ATEX_TEST_CONTROL || break
    sleep 0.1
  done
  sync
  reboot
  sleep inf
fi
echo rebooted
"#;

/// `disconnect` and `reboot` with nothing in between.
const REBOOT_PLAIN: &str = r#"
echo "boot $TMT_REBOOT_COUNT $TMT_TEST_RESTART_COUNT"
if [ "$TMT_REBOOT_COUNT" -eq 0 ]; then
  echo disconnect >&$ATEX_TEST_CONTROL
  reboot
  sleep inf
fi
"#;

/// Three boots, counted with `TMT_REBOOT_COUNT` (upstream's
/// `test_reboot_count`), leaving the reboot time out of the budget with
/// `duration save`/`restore`.
const REBOOT_COUNT: &str = r#"
echo "boot $TMT_REBOOT_COUNT" >> "$TMT_TREE/boots"
if [ "$TMT_REBOOT_COUNT" -lt 2 ]; then
  echo "duration save" >&$ATEX_TEST_CONTROL
  echo disconnect >&$ATEX_TEST_CONTROL
  while echo noop >&$ATEX_TEST_CONTROL; do sleep 0.1; done
  sync; reboot; sleep inf
fi
echo "duration restore" >&$ATEX_TEST_CONTROL
cat "$TMT_TREE/boots"
"#;

/// `reboot` without `disconnect` (upstream's `test_reboot_unexpected`).
const REBOOT_UNEXPECTED: &str = r#"
if [ "$TMT_REBOOT_COUNT" -eq 0 ]; then
  sync; reboot; sleep inf
fi
echo "restarted after an unannounced reboot"
"#;

/// systemd inside a fresh container may still be starting: `reboot` is
/// refused until it is up, so the tests wait for it first (a real machine
/// reached over ssh is booted by then).
fn wait_for_systemd(f: &mut Fixture) {
    let t = spec(
        "/wait-for-systemd",
        "for i in $(seq 120); do s=$(systemctl is-system-running 2>/dev/null || true); case $s in running|degraded) exit 0;; esac; sleep 0.5; done; exit 1",
    );
    let (a, o) = run(f, &t);
    assert_eq!(
        o.status,
        "pass",
        "systemd did not start: {}",
        output(a.path())
    );
}

#[test]
fn upstream_reboot_patterns_on_a_systemd_container() {
    let prov = podman("image: localhost/atex-test-systemd:bookworm\nsystemd: true\n");
    let remote = podman_remote(&prov);
    let mut f = open(remote.connection().expect("connection"));

    wait_for_systemd(&mut f);
    let mut t = spec("/reboot", REBOOT_LOOP);
    t.duration = Duration::from_secs(240);
    let (a, o) = run(&mut f, &t);
    let out = output(a.path());
    assert_eq!(
        (o.status.as_str(), o.reboots, o.note.as_deref()),
        ("pass", 1, None),
        "{out}"
    );
    assert_eq!(
        results(a.path()),
        vec![json!({"status": "pass", "files": ["output.txt"]})]
    );
    assert!(out.starts_with("disconnecting\n"), "{out}");
    assert!(out.ends_with("rebooted\n"), "{out}");

    wait_for_systemd(&mut f);
    let mut t = spec("/reboot-plain", REBOOT_PLAIN);
    t.duration = Duration::from_secs(240);
    let (a, o) = run(&mut f, &t);
    let out = output(a.path());
    assert_eq!((o.status.as_str(), o.reboots), ("pass", 1), "{out}");
    assert!(
        out.contains("boot 0 0\n") && out.contains("boot 1 1\n"),
        "{out}"
    );

    wait_for_systemd(&mut f);
    let mut t = spec("/reboot-count", REBOOT_COUNT);
    t.duration = Duration::from_secs(400);
    let (a, o) = run(&mut f, &t);
    let out = output(a.path());
    assert_eq!((o.status.as_str(), o.reboots), ("pass", 2), "{out}");
    assert!(out.ends_with("boot 0\nboot 1\nboot 2\n"), "{out}");

    wait_for_systemd(&mut f);
    let mut t = spec("/reboot-unexpected", REBOOT_UNEXPECTED);
    t.duration = Duration::from_secs(240);
    let (a, o) = run(&mut f, &t);
    let note = o.note.clone().unwrap_or_default();
    assert_eq!(o.status, "infra", "{:?}", results(a.path()));
    assert_eq!(o.reboots, 0);
    assert!(
        note.starts_with("the system rebooted while the test was running")
            && note.contains("disconnect was not sent via test control"),
        "{note}"
    );
    assert!(!note.contains("Terminated"), "{note}");
    assert!(
        !output(a.path()).contains("restarted after an unannounced reboot"),
        "an unannounced reboot must not restart the test"
    );

    // The system came back and is usable for the next test.
    let (_, o) = run(&mut f, &spec("/after-reboots", "cat file_in_fmfdir"));
    assert_eq!(o.status, "pass");
    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}
