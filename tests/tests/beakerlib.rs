//! `framework: beakerlib` with real BeakerLib, and tmt's helpers
//! (`tmt-report-result`, `tmt-file-submit`, `tmt-reboot`, `tmt-abort` and
//! their rhts/rstrnt names) and restart keys, on podman containers
//! (issue #17). BeakerLib comes from `localhost/atex-test-beakerlib:bookworm`
//! (`tests/images/build.sh beakerlib`); the helpers are also run on the
//! minimal `localhost/atex-test:bookworm` (bash, coreutils, tar only).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use atex::{
    backend::{Provisioner, Remote},
    executor::{CancelToken, PlanSpec, System, SystemOptions, TestOutcome, TestSpec},
};
use atex_integration_tests::{TestDir, atex_bin, containers_conf, ensure_image, plugin_dir_with};
use serde_json::{Value, json};

const BL_IMAGE: &str = "localhost/atex-test-beakerlib:bookworm";
const BASE_IMAGE: &str = "localhost/atex-test:bookworm";

fn spec(name: &str, metadata: Value, script: &str) -> TestSpec {
    let mut metadata = metadata;
    metadata["test"] = script.into();
    TestSpec {
        name: name.into(),
        rel_dir: "t".into(),
        script: script.into(),
        duration: Duration::from_secs(120),
        environment: Vec::new(),
        require: Vec::new(),
        recommend: Vec::new(),
        tty: false,
        metadata,
    }
}

fn bl(name: &str, script: &str) -> TestSpec {
    spec(name, json!({"framework": "beakerlib"}), script)
}

struct Fixture {
    _tree: TestDir,
    system: System,
}

fn open(remote: &dyn Remote) -> Fixture {
    let tree = TestDir::new();
    tree.create("t/data.txt", "from the tree\n");
    let conn = remote.connection().expect("connection");
    let mut system = System::open("bl", conn, &SystemOptions::default()).expect("open");
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

/// The results as (name or "", status) pairs, in order.
fn statuses(dir: &Path) -> Vec<(String, String)> {
    results(dir)
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The test's own result.
fn own(dir: &Path) -> Value {
    results(dir)
        .into_iter()
        .rfind(|r| r.get("name").is_none())
        .expect("the test's own result")
}

fn file(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join("files").join(rel)).unwrap_or_default()
}

fn podman(image: &str, systemd: bool) -> atex::plugins::ForeignProvisioner {
    ensure_image(if image == BL_IMAGE {
        "beakerlib"
    } else {
        "base"
    });
    // SAFETY: every test sets the same value before starting podman.
    unsafe { std::env::set_var("CONTAINERS_CONF", containers_conf()) };
    let plugin = atex::plugins::load_plugin(&atex_integration_tests::plugin_lib("atex_podman"))
        .expect("podman plugin");
    let host = atex::plugins::PluginHost::new("atex-tests-beakerlib", std::env::temp_dir());
    let config = format!("image: {image}\nsystemd: {systemd}\n");
    let prov = plugin
        .new_provisioner(&host, &config)
        .expect("podman provisioner");
    prov.start().expect("start");
    prov
}

fn podman_remote(prov: &atex::plugins::ForeignProvisioner) -> Box<dyn Remote> {
    prov.provision(1);
    prov.get_remote(Duration::from_secs(180))
        .expect("get_remote")
        .expect("a container")
}

// ------------------------------------------------------------ BeakerLib

/// Phases that pass, fail (a failing `rlRun`) and warn, a file given to
/// `rlFileSubmit`, and a variable check.
const PHASES: &str = r#"
. /usr/share/beakerlib/beakerlib.sh || exit 1
rlJournalStart
  rlPhaseStartSetup
    rlRun "echo submitted > /tmp/report.log"
    rlFileSubmit /tmp/report.log
    rlRun "echo named > /tmp/other.log"
    rlFileSubmit /tmp/other.log renamed.log
    rlAssertEquals "TESTID is the serial number" "$TESTID" "$TMT_TEST_SERIAL_NUMBER"
    rlAssertEquals "BEAKERLIB_DIR is the invocation" "$BEAKERLIB_DIR" "$TMT_TEST_INVOCATION_PATH"
    rlAssertExists "$BEAKERLIB_DIR/metadata.yaml"
  rlPhaseEnd
  rlPhaseStartTest "all good"
    rlRun "true"
  rlPhaseEnd
  rlPhaseStartTest "broken rlRun"
    rlRun "false" 0 "a command that fails"
    rlRun "true" 0 "later asserts still run"
  rlPhaseEnd
  rlPhaseStart WARN "just a warning"
    rlAssertEquals "differ" 1 2
  rlPhaseEnd
rlJournalEnd
echo after the journal
"#;

/// Dies in the middle of its journal (as a killed test does).
const KILLED: &str = r#"
. /usr/share/beakerlib/beakerlib.sh || exit 1
rlJournalStart
  rlPhaseStartTest "before the end"
    rlRun "true"
  rlPhaseEnd
  kill -KILL $$
rlJournalEnd
"#;

#[test]
fn beakerlib_phases_files_and_verdicts() {
    let prov = podman(BL_IMAGE, false);
    let remote = podman_remote(&prov);
    let mut f = open(remote.as_ref());

    let (a, o) = run(&mut f, &bl("/phases", PHASES));
    let d = a.path();
    assert_eq!(
        statuses(d),
        vec![
            ("/Setup".to_string(), "pass".to_string()),
            ("/all-good".into(), "pass".into()),
            ("/broken-rlRun".into(), "fail".into()),
            ("/just-a-warning".into(), "warn".into()),
            ("".into(), "fail".into()),
        ],
        "{}",
        file(d, "output.txt")
    );
    // The exit code does not decide: TestResults does.
    assert_eq!((o.status.as_str(), o.note.as_deref()), ("fail", None));
    let own_result = own(d);
    let files: Vec<&str> = own_result["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        files,
        vec![
            "output.txt",
            "journal.txt",
            "journal.xml",
            "renamed.log",
            "tmp-report.log"
        ]
    );
    assert_eq!(file(d, "tmp-report.log"), "submitted\n");
    assert_eq!(file(d, "renamed.log"), "named\n");
    let journal = file(d, "journal.txt");
    assert!(journal.contains("a command that fails"), "{journal}");
    assert!(journal.contains("OVERALL RESULT: FAIL"), "{journal}");
    // BeakerLib read metadata.yaml (the test's name is in its header).
    assert!(journal.contains("Test name     : /phases"), "{journal}");
    assert!(!journal.contains("could not parse"), "{journal}");
    assert!(file(d, "journal.xml").contains("<BEAKER_TEST"));
    // Each phase keeps its own log, as tmt's data/<phase>/output.txt.
    let phase_log = file(d, "broken-rlRun/output.txt");
    assert!(phase_log.contains("a command that fails"), "{phase_log}");
    assert!(!phase_log.contains("differ"), "{phase_log}");
    assert!(file(d, "output.txt").contains("after the journal"));

    // A journal that never ends is an error saying so, with what it has.
    let (a, o) = run(&mut f, &bl("/killed", KILLED));
    let d = a.path();
    assert_eq!(o.status, "error");
    let note = o.note.clone().unwrap_or_default();
    assert!(
        note.contains("State 'incomplete'") && note.contains("rlJournalEnd was not reached"),
        "{note}"
    );
    assert_eq!(
        statuses(d),
        vec![
            ("/before-the-end".to_string(), "pass".to_string()),
            ("".into(), "error".into())
        ]
    );
    assert!(file(d, "journal.txt").contains("before the end"));

    // Phases that all pass; then one that only warns.
    let (_, o) = run(
        &mut f,
        &bl(
            "/pass",
            ". /usr/share/beakerlib/beakerlib.sh\nrlJournalStart\nrlPhaseStartTest\nrlRun true\nrlPhaseEnd\nrlJournalEnd\nexit 7\n",
        ),
    );
    assert_eq!((o.status.as_str(), o.exit_code), ("pass", Some(7)));
    let (_, o) = run(
        &mut f,
        &bl(
            "/warn",
            ". /usr/share/beakerlib/beakerlib.sh\nrlJournalStart\nrlPhaseStartSetup\nrlRun false\nrlPhaseEnd\nrlJournalEnd\n",
        ),
    );
    assert_eq!(o.status, "warn");

    // No journal at all: tmt's "TestResults FileError".
    let (_, o) = run(&mut f, &bl("/no-journal", "echo not beakerlib\n"));
    assert_eq!(o.status, "error");
    assert!(
        o.note
            .as_deref()
            .unwrap_or_default()
            .contains("TestResults"),
        "{:?}",
        o.note
    );

    // A fresh BEAKERLIB_DIR per attempt: nothing of the last test is left.
    let (a, o) = run(
        &mut f,
        &bl(
            "/fresh",
            ". /usr/share/beakerlib/beakerlib.sh\nls -A \"$BEAKERLIB_DIR\" > /tmp/before\nrlJournalStart\nrlPhaseStartTest\nrlRun 'test \"$(echo $(cat /tmp/before))\" = \"data metadata.yaml\"'\nrlPhaseEnd\nrlJournalEnd\n",
        ),
    );
    assert_eq!(o.status, "pass", "{}", file(a.path(), "journal.txt"));

    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

// -------------------------------------------------------------- helpers

/// A plain shell test reporting its own results: the worst one decides,
/// the exit code does not (tmt's shell framework).
const REPORTING: &str = r#"
test "$(command -v tmt-report-result)" = "$(dirname "$TMT_TREE")/bin/tmt-report-result"
! test -e /usr/local/bin/tmt-report-result
! test -e /usr/bin/tmt-report-result
echo "a log" > log.txt
tmt-report-result /good PASS
rstrnt-report-result -o log.txt bad: FAIL 10
rhts-report-result warned WARN log.txt
tmt-report-result skipped SKIP
echo "submitted" > sub.log
tmt-file-submit -l sub.log
rhts-submit-log -l "$PWD/data.txt"
rstrnt-report-log -l sub.log
exit 0
"#;

#[test]
fn helpers_on_a_minimal_system() {
    let prov = podman(BASE_IMAGE, false);
    let remote = podman_remote(&prov);
    let mut f = open(remote.as_ref());

    let (a, o) = run(&mut f, &spec("/reporting", json!({}), REPORTING));
    let d = a.path();
    assert_eq!(
        statuses(d),
        vec![
            ("/good".to_string(), "pass".to_string()),
            ("/bad".into(), "fail".into()),
            ("/warned".into(), "warn".into()),
            ("/skipped".into(), "skip".into()),
            ("".into(), "fail".into()),
        ],
        "{}",
        file(d, "output.txt")
    );
    assert_eq!((o.exit_code, o.status.as_str()), (Some(0), "fail"));
    assert_eq!(file(d, "bad/log.txt.txt"), "a log\n");
    assert_eq!(file(d, "warned/output.txt"), "a log\n");
    // The same name twice: both contents are kept (appended).
    assert_eq!(file(d, "sub.log"), "submitted\nsubmitted\n");
    assert_eq!(file(d, "data.txt"), "from the tree\n");

    // Only passes: the test passes although it exits 1; "/" is the test.
    let (_, o) = run(
        &mut f,
        &spec(
            "/own",
            json!({}),
            "tmt-report-result / PASS\ntmt-report-result extra pass\nexit 1\n",
        ),
    );
    assert_eq!((o.status.as_str(), o.exit_code), ("pass", Some(1)));

    // Earlier tests' invocation directories are gone.
    let (a, o) = run(
        &mut f,
        &spec(
            "/one-invocation",
            json!({}),
            "ls -d \"$(dirname \"$TMT_TEST_INVOCATION_PATH\")\"/inv-*\ntest \"$(ls -d \"$(dirname \"$TMT_TEST_INVOCATION_PATH\")\"/inv-* | wc -l)\" = 1\n",
        ),
    );
    assert_eq!(o.status, "pass", "{}", file(a.path(), "output.txt"));

    // Outside a test the helpers refuse.
    let out = f
        .system
        .run_command(
            &format!("{}/bin/tmt-report-result x PASS", f.system.workdir()),
            &CancelToken::new(),
        )
        .expect("run_command");
    assert_eq!(out.exit_code, Some(1), "{}", out.output);
    assert!(
        out.output.contains("not running inside a test"),
        "{}",
        out.output
    );

    // Restart on an exit code, counted in TMT_TEST_RESTART_COUNT.
    let restart = spec(
        "/restart",
        json!({"restart-on-exit-code": [3, 4], "restart-max-count": 2}),
        "echo \"start $TMT_TEST_RESTART_COUNT\"\ntmt-report-result \"attempt-$TMT_TEST_RESTART_COUNT\" FAIL\nif [ \"$TMT_TEST_RESTART_COUNT\" -lt 2 ]; then exit 3; fi\n",
    );
    let (a, o) = run(&mut f, &restart);
    let d = a.path();
    assert_eq!((o.status.as_str(), o.exit_code), ("fail", Some(0)));
    let out = file(d, "output.txt");
    assert!(
        out.starts_with("start 0\n") && out.contains("start 1\n") && out.contains("start 2\n"),
        "{out}"
    );
    // Nothing is kept of the attempts that were restarted.
    assert_eq!(
        statuses(d),
        vec![
            ("/attempt-2".to_string(), "fail".to_string()),
            ("".into(), "fail".into())
        ]
    );
    // The default restart-max-count is 1: the second exit 3 is an error.
    let (_, o) = run(
        &mut f,
        &spec(
            "/restart-max",
            json!({"restart-on-exit-code": 3}),
            "echo \"start $TMT_TEST_RESTART_COUNT\"; exit 3\n",
        ),
    );
    assert_eq!(o.status, "error");
    assert!(
        o.note
            .as_deref()
            .unwrap_or_default()
            .contains("restart-max-count 1 is reached"),
        "{:?}",
        o.note
    );
    // An exit code not in the list ends the test as usual.
    let (_, o) = run(
        &mut f,
        &spec(
            "/no-restart",
            json!({"restart-on-exit-code": [3]}),
            "echo \"start $TMT_TEST_RESTART_COUNT\"; exit 5\n",
        ),
    );
    assert_eq!((o.status.as_str(), o.exit_code), ("fail", Some(5)));

    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

/// `tmt-abort` ends the test and the run: the tests after it do not run.
#[test]
fn tmt_abort_stops_the_run() {
    ensure_image("base");
    let tree = TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "main.fmf",
        // Longest first: the aborting test starts first on the one system.
        "/a-after:\n  test: echo after\n  duration: 1m\n/b-abort:\n  test: echo aborting; rhts-abort; echo not reached\n  duration: 10m\n/c-after:\n  test: echo after\n  duration: 1m\n/d-after:\n  test: echo after\n  duration: 1m\n",
    );
    let results = tree.path().join("results");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let out = Command::new(atex_bin())
        .current_dir(tree.path())
        .args([
            "run",
            "--plugin-dir",
            &plugins.path().display().to_string(),
            "-p",
            &format!("podman:image={BASE_IMAGE},max=1"),
            "--workers",
            "1",
            "--results",
            &results.display().to_string(),
        ])
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .output()
        .expect("atex run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let jsonl = std::fs::read_to_string(results.join("results.jsonl")).unwrap_or_default();
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let by_test = |name: &str| {
        lines
            .iter()
            .find(|l| l[2] == name && l[3].is_null())
            .cloned()
            .unwrap_or(Value::Null)
    };
    let abort = by_test("/b-abort");
    assert_eq!(abort[1], "fail", "{stderr}\n{jsonl}");
    assert!(
        abort[5].as_str().unwrap_or_default().contains("tmt-abort"),
        "{abort}"
    );
    let output =
        std::fs::read_to_string(results.join("files/atex-test-bookworm/b-abort/output.txt"))
            .unwrap_or_default();
    assert!(
        output.contains("aborting") && !output.contains("not reached"),
        "{output}"
    );
    // The tests after it never started.
    for after in ["/a-after", "/c-after", "/d-after"] {
        assert!(
            !results
                .join(format!("files/atex-test-bookworm{after}"))
                .exists(),
            "{after} ran: {stderr}\n{jsonl}"
        );
        assert!(
            !matches!(by_test(after)[1].as_str(), Some("pass")),
            "{after} passed: {stderr}\n{jsonl}"
        );
    }
    assert!(!out.status.success());
}

// -------------------------------------------------------------- reboots

/// `rhts-reboot` between two phases: the test starts again from the top
/// after the reboot, the journal goes on, the next phase runs.
const BL_REBOOT: &str = r#"
. /usr/share/beakerlib/beakerlib.sh || exit 1
rlJournalStart
if [ "$TMT_REBOOT_COUNT" -eq 0 ]; then
  rlPhaseStartSetup "before reboot"
    rlRun "echo $BEAKERLIB_DIR > /var/tmp/bl-dir"
    rlRun "touch /run/atex-before-reboot"
  rlPhaseEnd
  rhts-reboot
  rlPhaseStartTest "never"
    rlFail "went on after rhts-reboot"
  rlPhaseEnd
else
  rlPhaseStartTest "after reboot"
    rlAssertEquals "one reboot" "$TMT_REBOOT_COUNT" 1
    rlAssertEquals "the aliases agree" "$REBOOTCOUNT$RSTRNT_REBOOTCOUNT" 11
    rlAssertEquals "restarts count reboots" "$TMT_TEST_RESTART_COUNT" 1
    rlAssertEquals "same BeakerLib directory" "$(cat /var/tmp/bl-dir)" "$BEAKERLIB_DIR"
    rlAssertNotExists /run/atex-before-reboot
  rlPhaseEnd
fi
rlJournalEnd
"#;

fn wait_for_systemd(f: &mut Fixture) {
    let t = spec(
        "/wait-for-systemd",
        json!({}),
        "for i in $(seq 120); do s=$(systemctl is-system-running 2>/dev/null || true); case $s in running|degraded) exit 0;; esac; sleep 0.5; done; exit 1",
    );
    let (_, o) = run(f, &t);
    assert_eq!(o.status, "pass", "systemd did not start");
}

#[test]
fn reboots_in_a_systemd_container() {
    let prov = podman(BL_IMAGE, true);
    let remote = podman_remote(&prov);
    let mut f = open(remote.as_ref());

    wait_for_systemd(&mut f);
    let mut t = bl("/bl-reboot", BL_REBOOT);
    t.duration = Duration::from_secs(300);
    let (a, o) = run(&mut f, &t);
    let d = a.path();
    assert_eq!(
        (o.status.as_str(), o.reboots, o.note.as_deref()),
        ("pass", 1, None),
        "{}\n{}",
        file(d, "output.txt"),
        file(d, "journal.txt")
    );
    assert_eq!(
        statuses(d),
        vec![
            ("/before-reboot".to_string(), "pass".to_string()),
            ("/after-reboot".into(), "pass".into()),
            ("".into(), "pass".into())
        ]
    );
    let journal = file(d, "journal.txt");
    assert!(
        journal.contains("before reboot") && journal.contains("after reboot"),
        "{journal}"
    );
    assert!(!journal.contains("went on after"), "{journal}");

    // A custom reboot command and timeout, from a plain shell test.
    wait_for_systemd(&mut f);
    let mut t = spec(
        "/custom-reboot",
        json!({}),
        "echo \"boot $TMT_REBOOT_COUNT\"\nif [ \"$TMT_REBOOT_COUNT\" -lt 2 ]; then touch /var/tmp/custom-$TMT_REBOOT_COUNT; tmt-reboot -t 200 -c 'systemctl reboot'; fi\nls /var/tmp/custom-0 /var/tmp/custom-1\n",
    );
    t.duration = Duration::from_secs(400);
    let (a, o) = run(&mut f, &t);
    let out = file(a.path(), "output.txt");
    assert_eq!((o.status.as_str(), o.reboots), ("pass", 2), "{out}");
    assert!(
        out.contains("boot 0\n") && out.contains("boot 1\n") && out.contains("boot 2\n"),
        "{out}"
    );

    // Restart on an exit code with a reboot first: one restart, one reboot.
    wait_for_systemd(&mut f);
    let mut t = spec(
        "/restart-with-reboot",
        json!({"restart-on-exit-code": [3], "restart-with-reboot": true}),
        "echo \"counts $TMT_REBOOT_COUNT $TMT_TEST_RESTART_COUNT\"\nif [ \"$TMT_TEST_RESTART_COUNT\" -eq 0 ]; then touch /run/atex-restart-marker; exit 3; fi\n! test -e /run/atex-restart-marker\n",
    );
    t.duration = Duration::from_secs(300);
    let (a, o) = run(&mut f, &t);
    let out = file(a.path(), "output.txt");
    assert_eq!((o.status.as_str(), o.reboots), ("pass", 1), "{out}");
    assert!(
        out.starts_with("counts 0 0\n") && out.contains("counts 1 1\n"),
        "{out}"
    );

    // A reboot command that does not reboot: the timeout ends the wait.
    wait_for_systemd(&mut f);
    let started = Instant::now();
    let (_, o) = run(
        &mut f,
        &spec("/no-reboot", json!({}), "tmt-reboot -t 5 -c true\n"),
    );
    let note = o.note.clone().unwrap_or_default();
    assert!(
        note.contains("did not come back within 5 s"),
        "{:?} {note}",
        o.status
    );
    assert!(started.elapsed() < Duration::from_secs(60));

    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

/// The same BeakerLib tests with tmt itself and with atex on one podman
/// image give the same results, sub-results and file names
/// (`tests/compat/beakerlib-vs-tmt.sh`, which prints the comparison).
/// tmt comes from `TMT` (`tests/run-all.sh` installs it) or `PATH`.
#[test]
fn the_same_beakerlib_tests_report_as_with_tmt() {
    ensure_image("beakerlib");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/compat/beakerlib-vs-tmt.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("ATEX", atex_bin())
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("run beakerlib-vs-tmt.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
}
