//! The executor on real systems: the local host, and a podman container
//! when the test image is available.

use std::{path::Path, time::Duration};

use atex::{
    backend::Connection,
    executor::{CancelToken, PlanSpec, PrepareStep, System, SystemOptions, TestSpec},
};
use atex_integration_tests::TestDir;
use serde_json::Value;

fn spec(name: &str, script: &str) -> TestSpec {
    TestSpec {
        name: name.into(),
        rel_dir: "t".into(),
        script: script.into(),
        duration: Duration::from_secs(60),
        environment: vec![("MY_VAR".into(), "my value".into())],
        require: Vec::new(),
        recommend: Vec::new(),
        tty: false,
        metadata: serde_json::json!({"test": script}),
    }
}

struct Fixture {
    tree: TestDir,
    system: System,
}

fn open(conn: Connection) -> Fixture {
    let tree = TestDir::new();
    tree.create("t/helper.txt", "from the tree\n");
    tree.create("t/sub/file", "x");
    let mut system = System::open("test-system", conn, &SystemOptions::default()).expect("open");
    let plan = PlanSpec {
        environment: vec![("PLAN_VAR".into(), "plan".into())],
        prepare: vec![PrepareStep::Shell("echo prepared > prepared.txt".into())],
        finish: Vec::new(),
    };
    system
        .setup(tree.path(), &plan, &CancelToken::new())
        .expect("setup");
    Fixture { tree, system }
}

fn results(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("results"))
        .expect("results")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn run(f: &mut Fixture, test: &TestSpec) -> (tempfile::TempDir, atex::executor::TestOutcome) {
    let artifacts = tempfile::tempdir().expect("tempdir");
    let started = std::time::Instant::now();
    let outcome = f
        .system
        .run_test(test, artifacts.path(), &[], &CancelToken::new())
        .expect("run_test");
    eprintln!(
        "{}: {:?} {:?} in {:?}",
        test.name,
        outcome.status,
        outcome.note,
        started.elapsed()
    );
    (artifacts, outcome)
}

fn output(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("files/output.txt")).unwrap_or_default()
}

/// Passes when the process in `$TMT_TREE/bg.pid` is gone (a zombie
/// waiting for init to reap it counts as gone).
const GONE_OR_ZOMBIE: &str = r#"pid=$(cat "$TMT_TREE/bg.pid")
s=$(cat /proc/$pid/stat 2>/dev/null) || exit 0
s=${s##*) }
[ "${s%% *}" = Z ]"#;

/// Every behaviour, on one system.
fn exercise(mut f: Fixture) {
    // Fallback results from the exit code, with the output.
    let (a, o) = run(&mut f, &spec("/pass", "echo hello; echo err >&2"));
    assert_eq!(o.status, "pass");
    assert_eq!(
        results(a.path()),
        vec![serde_json::json!({"status": "pass", "files": ["output.txt"]})]
    );
    assert_eq!(output(a.path()), "hello\nerr\n");
    let (a, o) = run(&mut f, &spec("/fail", "exit 3"));
    assert_eq!((o.status.as_str(), o.exit_code), ("fail", Some(3)));
    assert_eq!(results(a.path())[0]["status"], "fail");

    // Environment and working directory.
    let (a, o) = run(
        &mut f,
        &spec(
            "/env",
            "pwd; cat helper.txt; echo \"$MY_VAR|$PLAN_VAR|$TMT_TEST_NAME|$TMT_REBOOT_COUNT\"; test -f \"$TMT_TEST_METADATA\"; cat \"$TMT_TREE/prepared.txt\"",
        ),
    );
    let out = output(a.path());
    assert_eq!(o.status, "pass", "{out}");
    assert!(out.contains("/tests/t\n"), "{out}");
    assert!(
        out.contains("from the tree\nmy value|plan|/env|0\nprepared\n"),
        "{out}"
    );

    // Results with files (names with /), partial merging and testout.
    let script = r#"
report() { printf 'result %s\n%s' "${#1}" "$1" >&$ATEX_TEST_CONTROL; }
report '{"status":"fail","partial":true,"note":"first"}'
json='{"name":"sub/one","status":"pass","files":[{"name":"logs/a.txt","length":6}]}'
{ printf 'result %s\n%s' "${#json}" "$json"; printf 'hello\n'; } >&$ATEX_TEST_CONTROL
report '{"partial":true,"note":"merged"}'
report '{"name":"named","status":"info","testout":"out.log"}'
echo output line
"#;
    let (a, o) = run(&mut f, &spec("/results", script));
    let r = results(a.path());
    assert_eq!(o.status, "fail", "{r:?}");
    assert!(
        r.contains(
            &serde_json::json!({"name": "sub/one", "status": "pass", "files": ["logs/a.txt"]})
        ),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(a.path().join("files/sub/one/logs/a.txt")).expect("file"),
        "hello\n"
    );
    assert!(
        r.contains(&serde_json::json!({"name": "named", "status": "info", "files": ["out.log"]})),
        "{r:?}"
    );
    let own = r
        .iter()
        .find(|x| x.get("name").is_none())
        .expect("own result");
    assert_eq!(own["note"], "merged");
    assert_eq!(own["files"], serde_json::json!(["output.txt"]));
    assert!(output(a.path()).contains("output line"));

    // exitcode from the test overrides nothing but is recorded; duration
    // changes at run time extend the limit.
    let mut t = spec(
        "/duration-extend",
        "echo 'duration +3' >&$ATEX_TEST_CONTROL; sleep 2; echo done",
    );
    t.duration = Duration::from_secs(1);
    let (a, o) = run(&mut f, &t);
    assert_eq!(o.status, "pass", "{:?}", results(a.path()));

    // A timeout kills the test and everything it started.
    let mut t = spec(
        "/timeout",
        "sleep 300 & echo $! > \"$TMT_TREE/bg.pid\"; sleep 300",
    );
    t.duration = Duration::from_secs(2);
    let (a, o) = run(&mut f, &t);
    assert_eq!(o.status, "infra");
    assert_eq!(o.note.as_deref(), Some("test duration timeout reached"));
    assert!(o.duration < Duration::from_secs(20), "{:?}", o.duration);
    assert_eq!(
        results(a.path())[0]["files"],
        serde_json::json!(["output.txt"])
    );
    let (a, _) = run(&mut f, &spec("/check-bg", GONE_OR_ZOMBIE));
    assert_eq!(
        results(a.path())[0]["status"],
        "pass",
        "the background process survived the timeout"
    );

    // Cancel from another thread does the same.
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        trigger.cancel();
    });
    let artifacts = tempfile::tempdir().expect("tempdir");
    let t = spec(
        "/cancelled",
        "sleep 300 & echo $! > \"$TMT_TREE/bg.pid\"; sleep 300",
    );
    let o = f
        .system
        .run_test(&t, artifacts.path(), &[], &cancel)
        .expect("run_test");
    canceller.join().expect("canceller");
    assert_eq!(
        (o.status.as_str(), o.note.as_deref()),
        ("infra", Some("cancel requested"))
    );
    assert!(o.duration < Duration::from_secs(20), "{:?}", o.duration);
    let (a, _) = run(&mut f, &spec("/check-bg-after-cancel", GONE_OR_ZOMBIE));
    assert_eq!(
        results(a.path())[0]["status"],
        "pass",
        "a process survived the cancel"
    );

    // tty: true gives a terminal; without it there is none.
    let mut t = spec("/tty", "test -t 1 && echo has-tty");
    t.tty = true;
    let (a, o) = run(&mut f, &t);
    assert_eq!(o.status, "pass", "{}", output(a.path()));
    assert!(output(a.path()).contains("has-tty"));
    let (_, o) = run(&mut f, &spec("/no-tty", "test -t 1"));
    assert_eq!(o.status, "fail");

    // Bad input from the test becomes a result with a note, nothing else.
    for (name, script, note) in [
        (
            "/bad-word",
            "echo frobnicate >&$ATEX_TEST_CONTROL",
            "unknown control word",
        ),
        (
            "/bad-json",
            "printf 'result 3\\n{x}' >&$ATEX_TEST_CONTROL",
            "bad result JSON",
        ),
        (
            "/bad-path",
            r#"j='{"files":[{"name":"/..","length":1}]}'; printf 'result %s\n%sx' ${#j} "$j" >&$ATEX_TEST_CONTROL"#,
            "names no path",
        ),
        (
            "/bad-long",
            "head -c 5000 /dev/zero | tr '\\0' x >&$ATEX_TEST_CONTROL",
            "longer than 4096",
        ),
        (
            "/bad-eof",
            r#"j='{"files":[{"name":"f","length":100}]}'; printf 'result %s\n%sabc' ${#j} "$j" >&$ATEX_TEST_CONTROL"#,
            "EOF",
        ),
        (
            "/bad-empty",
            "echo >&$ATEX_TEST_CONTROL",
            "empty control line",
        ),
    ] {
        let (a, o) = run(&mut f, &spec(name, script));
        assert_eq!(o.status, "infra", "{name}: {:?}", results(a.path()));
        assert!(
            o.note.as_deref().unwrap_or("").contains(note),
            "{name}: {:?}",
            o.note
        );
        assert!(!a.path().parent().expect("parent").join("escape").exists());
    }

    // disconnect without a reboot: the test simply ends.
    let (_, o) = run(
        &mut f,
        &spec(
            "/disconnect-no-reboot",
            "echo disconnect >&$ATEX_TEST_CONTROL; sleep 1; exit 0",
        ),
    );
    assert_eq!(o.status, "pass", "{:?}", o.note);
    assert_eq!(o.reboots, 0);

    // The system is still usable after all of that.
    let (_, o) = run(&mut f, &spec("/after", "true"));
    assert_eq!(o.status, "pass");
    let workdir = f.system.workdir().to_string();
    drop(f.tree);
    f.system.close();
    let _ = workdir;
}

#[test]
fn executor_on_the_local_host() {
    exercise(open(Connection::Local));
}

/// A podman provisioner from the real plugin, with the test setup's
/// containers.conf (runc, lowered ulimits).
fn podman(config: &str) -> atex::plugins::ForeignProvisioner {
    use atex::backend::Provisioner;
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("containers.conf");
    // SAFETY: set before any thread of this test starts podman; every
    // test sets the same value.
    unsafe { std::env::set_var("CONTAINERS_CONF", conf) };
    let plugin = atex::plugins::load_plugin(&atex_integration_tests::plugin_lib("atex_podman"))
        .expect("podman plugin");
    let tmp = std::env::temp_dir();
    let host = atex::plugins::PluginHost::new("atex-tests-executor", tmp);
    let prov = plugin
        .new_provisioner(&host, config)
        .expect("podman provisioner");
    prov.start().expect("start");
    prov
}

fn podman_remote(prov: &atex::plugins::ForeignProvisioner) -> Box<dyn atex::backend::Remote> {
    use atex::backend::Provisioner;
    prov.provision(1);
    prov.get_remote(Duration::from_secs(180))
        .expect("get_remote")
        .expect("a container (build the images with tests/images/build.sh)")
}

#[test]
fn executor_on_a_podman_container() {
    use atex::backend::Provisioner;
    let prov = podman("image: localhost/atex-test:bookworm\n");
    let remote = podman_remote(&prov);
    exercise(open(remote.connection().expect("connection")));
    remote.release().expect("release");
    prov.stop().expect("stop");
}

#[test]
fn required_packages_are_installed_with_the_system_package_manager() {
    use atex::backend::Provisioner;
    let prov = podman("image: localhost/atex-test:bookworm\n");
    let remote = podman_remote(&prov);
    let mut f = open(remote.connection().expect("connection"));
    let (_, o) = run(&mut f, &spec("/no-less-yet", "! command -v less"));
    assert_eq!(
        o.status, "pass",
        "the image must not have `less` for this test"
    );
    let mut t = spec("/needs-less", "command -v less");
    t.require = vec!["less".into()];
    // Recommended packages are best effort: a missing one is no failure.
    t.recommend = vec!["atex-no-such-package".into()];
    t.duration = Duration::from_secs(300);
    let (a, o) = run(&mut f, &t);
    assert_eq!(o.status, "pass", "{:?} {}", o.note, output(a.path()));
    // A required package that does not exist is a setup error.
    let mut t = spec("/needs-nothing-real", "true");
    t.require = vec!["atex-no-such-package".into()];
    t.duration = Duration::from_secs(300);
    let (_, o) = run(&mut f, &t);
    assert_eq!(o.status, "infra");
    assert!(
        o.note
            .as_deref()
            .unwrap_or("")
            .starts_with("TestSetupError("),
        "{:?}",
        o.note
    );
    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

/// A test's packages are checked once per system while its package
/// database is unchanged: a `dpkg-query` in front of the real one logs
/// every package the run scripts ask about, and each test prints and
/// empties that log.
#[test]
fn packages_known_present_are_not_checked_again_until_the_database_changes() {
    use atex::backend::Provisioner;
    let prov = podman("image: localhost/atex-test:bookworm\n");
    let remote = podman_remote(&prov);
    let mut f = open(remote.connection().expect("connection"));
    let log = "/tmp/dpkg-query.log";
    let shim = format!(
        "printf '%s\\n' '#!/bin/sh' 'for a; do :; done; echo \"$a\" >> {log}' 'exec /usr/bin/dpkg-query \"$@\"' > /usr/local/sbin/dpkg-query\nchmod 755 /usr/local/sbin/dpkg-query"
    );
    let (a, o) = run(&mut f, &spec("/shim", &shim));
    assert_eq!(o.status, "pass", "{}", output(a.path()));
    let show = format!("cat {log} 2>/dev/null || true; : > {log}\n");
    let mut case = |name: &str, require: &[&str], recommend: &[&str], body: &str| {
        let mut t = spec(name, &format!("{show}{body}"));
        t.require = require.iter().map(|p| p.to_string()).collect();
        t.recommend = recommend.iter().map(|p| p.to_string()).collect();
        t.duration = Duration::from_secs(300);
        let (a, o) = run(&mut f, &t);
        let checked: Vec<String> = output(a.path()).lines().map(str::to_string).collect();
        (o, checked)
    };
    // The first check: everything.
    let leaf = "libfile-find-rule-perl";
    let (o, checked) = case("/first", &["bash", leaf], &["tar"], "true");
    assert_eq!(o.status, "pass", "{o:?}");
    assert_eq!(checked, ["bash", leaf, "tar"]);
    // Known ones are not checked again, recommended ones included.
    let (o, checked) = case("/known", &["bash"], &["tar"], "true");
    assert_eq!(o.status, "pass", "{o:?}");
    assert_eq!(checked, Vec::<String>::new());
    // Only the new one is.
    let (o, checked) = case("/one-new", &["bash", "sed"], &[], "true");
    assert_eq!(o.status, "pass", "{o:?}");
    assert_eq!(checked, ["sed"]);
    // A test removes a package that was found present...
    let (o, checked) = case(
        "/removes",
        &["bash"],
        &[],
        &format!("dpkg -r --force-depends {leaf} >/dev/null 2>&1"),
    );
    assert_eq!(o.status, "pass", "{o:?}");
    assert_eq!(checked, Vec::<String>::new());
    // ...so the next test that needs it has it checked (and installed
    // when the image's package sources are reachable, else a setup error).
    // The log is printed by the test when its setup passed, else by the
    // next one.
    let (o, mut checked) = case("/needs-removed", &[leaf], &[], "true");
    if o.status != "pass" {
        assert!(
            o.note
                .as_deref()
                .is_some_and(|n| n.starts_with("TestSetupError(")),
            "{o:?}"
        );
        let (o, after) = case("/after", &[], &[], "true");
        assert_eq!(o.status, "pass", "{o:?}");
        checked = after;
    }
    assert_eq!(
        checked.first().map(String::as_str),
        Some(leaf),
        "{checked:?}"
    );
    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

#[test]
fn a_test_reboots_a_systemd_container_and_continues() {
    use atex::backend::Provisioner;
    let prov = podman("image: localhost/atex-test-systemd:bookworm\nsystemd: true\n");
    let remote = podman_remote(&prov);
    let mut f = open(remote.connection().expect("connection"));
    let script = r#"
echo "boot $TMT_REBOOT_COUNT"
if [ "$TMT_REBOOT_COUNT" = 0 ]; then
  echo before > "$TMT_TREE/state"
  # As upstream's atex-reboot: survive the broken control pipe.
  trap '' PIPE
  echo disconnect >&$ATEX_TEST_CONTROL
  while echo noop >&$ATEX_TEST_CONTROL 2>/dev/null; do sleep 0.1; done
  sync
  # systemd may still be busy right after boot: try again for a while.
  for i in $(seq 60); do systemctl reboot && break; sleep 1; done
  sleep infinity
fi
test "$(cat "$TMT_TREE/state")" = before
echo "after reboot $TMT_REBOOT_COUNT"
"#;
    let mut t = spec("/reboot", script);
    t.duration = Duration::from_secs(240);
    let (a, o) = run(&mut f, &t);
    let out = output(a.path());
    assert_eq!(o.status, "pass", "{:?} {out}", o.note);
    assert_eq!(o.reboots, 1);
    assert!(
        out.contains("boot 0") && out.contains("after reboot 1"),
        "{out}"
    );
    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

#[test]
fn setup_has_its_own_time_limit_and_can_be_cancelled() {
    use atex::executor::ExecError;
    let tree = TestDir::new();
    tree.create("t/x", "x");
    let plan = PlanSpec {
        prepare: vec![PrepareStep::Shell("sleep 120".into())],
        ..PlanSpec::default()
    };
    let options = SystemOptions {
        setup_timeout: Some(Duration::from_secs(2)),
        ..SystemOptions::default()
    };
    let mut system = System::open("setup-limit", Connection::Local, &options).expect("open");
    let started = std::time::Instant::now();
    let err = system
        .setup(tree.path(), &plan, &CancelToken::new())
        .expect_err("must time out");
    assert!(matches!(err, ExecError::Setup { .. }), "{err}");
    assert!(err.to_string().contains("did not finish within"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        trigger.cancel();
    });
    let mut system =
        System::open("setup-cancel", Connection::Local, &SystemOptions::default()).expect("open");
    let started = std::time::Instant::now();
    let err = system
        .setup(tree.path(), &plan, &cancel)
        .expect_err("must be cancelled");
    canceller.join().expect("canceller");
    assert!(matches!(err, ExecError::Cancelled { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    system.close();
}
