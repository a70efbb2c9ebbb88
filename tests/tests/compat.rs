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
    // Only the test's own failed write may complain, not the wrapper.
    assert!(
        out.lines()
            .filter(|l| l.contains("Broken pipe"))
            .all(|l| l.contains("test.sh")),
        "{out}"
    );
    eprintln!("{out}");

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

// ------------------------------------------- control words and results

/// What upstream's tests put before their control writes.
const REPORT: &str = r#"report() { printf 'result %s\n%s' "${#1}" "$1" >&$ATEX_TEST_CONTROL; }
"#;

/// One upstream-style test: its script, time limit, the `results` lines
/// upstream writes for it, and files expected in the artifacts.
struct Case {
    name: &'static str,
    script: &'static str,
    duration: u64,
    results: Value,
    files: &'static [(&'static str, &'static [u8])],
    note: Option<&'static str>,
}

fn case(name: &'static str, script: &'static str, results: Value) -> Case {
    Case {
        name,
        script,
        duration: 60,
        results,
        files: &[],
        note: None,
    }
}

/// Upstream's results cases (its `tests/executor/fmf/test_results.py`
/// and friends), the control words, and the patterns its docs give.
fn cases() -> Vec<Case> {
    vec![
        // No result reported: the fallback from the exit code.
        Case {
            files: &[("output.txt", b"hello\n")],
            ..case(
                "/noresult_pass",
                "echo hello",
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            files: &[("output.txt", b"to stderr\n")],
            ..case(
                "/noresult_fail",
                "echo to stderr >&2; exit 1",
                json!([{"status": "fail", "files": ["output.txt"]}]),
            )
        },
        Case {
            duration: 2,
            note: Some("test duration timeout reached"),
            ..case(
                "/noresult_abort",
                "sleep 30",
                json!([{"status": "infra", "note": "test duration timeout reached", "files": ["output.txt"]}]),
            )
        },
        // Trivial results.
        case(
            "/trivial",
            r#"report '{"status":"pass"}'"#,
            json!([{"status": "pass"}]),
        ),
        case(
            "/trivial_multiline",
            "report '{\n\"status\":\n\"pass\"\n}'",
            json!([{"status": "pass"}]),
        ),
        case(
            "/trivial_repeated",
            r#"report '{"status":"pass"}'; report '{"status":"fail"}'"#,
            json!([{"status": "pass"}, {"status": "fail"}]),
        ),
        case(
            "/trivial_exit_mismatch",
            r#"report '{"status":"pass"}'; exit 1"#,
            json!([{"status": "pass"}]),
        ),
        Case {
            duration: 2,
            ..case(
                "/trivial_abort",
                r#"report '{"status":"pass"}'; sleep 30"#,
                json!([{"status": "pass"}]),
            )
        },
        // Subtests.
        case(
            "/subtest",
            r#"report '{"status":"fail","name":"subtest"}'; report '{"status":"pass"}'"#,
            json!([{"status": "fail", "name": "subtest"}, {"status": "pass"}]),
        ),
        case(
            "/subtest_nested",
            r#"report '{"status":"pass","name":"sub/res/ult"}'; report '{"status":"pass"}'"#,
            json!([{"status": "pass", "name": "sub/res/ult"}, {"status": "pass"}]),
        ),
        case(
            "/subtest_no_status",
            r#"report '{"name":"subtest"}'"#,
            json!([{"name": "subtest"}, {"status": "pass", "files": ["output.txt"]}]),
        ),
        Case {
            files: &[("subtest/out.txt", b"printed\n")],
            ..case(
                "/subtest_testout",
                r#"echo printed; report '{"status":"fail","name":"subtest","testout":"out.txt"}'; report '{"status":"pass"}'"#,
                json!([{"status": "fail", "name": "subtest", "files": ["out.txt"]}, {"status": "pass"}]),
            )
        },
        // Files.
        Case {
            files: &[("some_file", b"hello")],
            ..case(
                "/files",
                r#"j='{"status":"pass","files":[{"name":"some_file","length":5}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf hello; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "files": ["some_file"]}]),
            )
        },
        Case {
            files: &[("some/file", b"hello")],
            ..case(
                "/files_subpath",
                r#"j='{"status":"pass","files":[{"name":"some/file","length":5}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf hello; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "files": ["some/file"]}]),
            )
        },
        Case {
            files: &[("a", b"he"), ("b", b"llo")],
            ..case(
                "/files_multiple",
                r#"j='{"status":"pass","files":[{"name":"a","length":2},{"name":"b","length":3}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf hello; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "files": ["a", "b"]}]),
            )
        },
        Case {
            files: &[("f", b"hello")],
            ..case(
                "/files_append",
                r#"j='{"status":"pass","files":[{"name":"f","length":2},{"name":"f","length":3}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf hello; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "files": ["f"]}]),
            )
        },
        Case {
            files: &[("sub/res/ult/some_file", b"hello")],
            ..case(
                "/files_subtest",
                r#"j='{"status":"pass","name":"sub/res/ult","files":[{"name":"some_file","length":5}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf hello; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "name": "sub/res/ult", "files": ["some_file"]}, {"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            files: &[("B", b"b"), ("C", b"c"), ("A", b"a")],
            ..case(
                "/files_sorted",
                r#"j='{"status":"pass","files":[{"name":"B","length":1},{"name":"C","length":1},{"name":"A","length":1}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf bca; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "files": ["A", "B", "C"]}]),
            )
        },
        // Names upstream normalises (#14, item 3).
        Case {
            files: &[("setup/log.txt", b"log")],
            ..case(
                "/names_absolute",
                r#"j='{"status":"pass","name":"/setup","files":[{"name":"/log.txt","length":3}]}'; { printf 'result %s\n%s' ${#j} "$j"; printf log; } >&$ATEX_TEST_CONTROL"#,
                json!([{"status": "pass", "name": "/setup", "files": ["/log.txt"]}, {"status": "pass", "files": ["output.txt"]}]),
            )
        },
        // Custom keys are kept.
        case(
            "/custom_keys",
            r#"report '{"status":"pass","string":"foo","number":123,"list":[1,"a"],"object":{"k":"v"}}'"#,
            json!([{"status": "pass", "string": "foo", "number": 123, "list": [1, "a"], "object": {"k": "v"}}]),
        ),
        // Partial results.
        case(
            "/partial",
            r#"report '{"status":"fail","partial":true}'; report '{"status":"pass"}'"#,
            json!([{"status": "pass"}]),
        ),
        case(
            "/partial_false",
            r#"report '{"status":"fail","partial":true}'; report '{"status":"pass","partial":false}'"#,
            json!([{"status": "pass"}]),
        ),
        case(
            "/partial_abrupt",
            r#"report '{"status":"fail","partial":true}'"#,
            json!([{"status": "fail", "files": ["output.txt"]}]),
        ),
        case(
            "/partial_abrupt_nostatus",
            r#"report '{"attr":"x","partial":true}'; exit 1"#,
            json!([{"attr": "x", "status": "fail", "files": ["output.txt"]}]),
        ),
        case(
            "/partial_merging",
            r#"report '{"attr1":"a","status":"fail","partial":true}'; report '{"attr2":"b","status":"error","partial":true}'; report '{"status":"pass"}'"#,
            json!([{"attr1": "a", "attr2": "b", "status": "pass"}]),
        ),
        case(
            "/partial_deleting",
            r#"report '{"attr1":"a","partial":true}'; report '{"attr1":null,"status":"pass"}'"#,
            json!([{"status": "pass"}]),
        ),
        case(
            "/partial_overwriting",
            r#"report '{"s":"a","n":1,"l":[1],"d":{"x":1},"partial":true}'; report '{"s":"b","n":2,"l":[2],"d":{"y":2},"status":"pass"}'"#,
            json!([{"s": "b", "n": 2, "l": [1, 2], "d": {"x": 1, "y": 2}, "status": "pass"}]),
        ),
        case(
            "/partial_subtests",
            r#"report '{"name":"sub1","status":"pass"}'; report '{"name":"sub2","status":"error","partial":true}'; report '{"status":"pass"}'"#,
            json!([{"name": "sub1", "status": "pass"}, {"status": "pass"}, {"name": "sub2", "status": "error"}]),
        ),
        // testout.
        Case {
            files: &[("here.txt", b"before\nafter\n")],
            ..case(
                "/testout",
                r#"echo before; report '{"status":"pass","testout":"here.txt"}'; echo after"#,
                json!([{"status": "pass", "files": ["here.txt"]}]),
            )
        },
        case(
            "/testout_fallback_partial",
            r#"report '{"status":"fail","testout":"here.txt","partial":true}'"#,
            json!([{"status": "fail", "files": ["here.txt"]}]),
        ),
        // Malformed or odd input.
        case("/empty_json", "report '{}'", json!([{}])),
        case(
            "/no_status",
            r#"report '{"attr1":"value1"}'"#,
            json!([{"attr1": "value1"}]),
        ),
        case(
            "/empty_files",
            r#"report '{"status":"pass","files":[]}'"#,
            json!([{"status": "pass", "files": []}]),
        ),
        Case {
            note: Some("bad result JSON"),
            ..case("/bad_json", "report '{nope'", json!(null))
        },
        Case {
            note: Some("'testout' specified, but empty"),
            ..case("/empty_testout", r#"report '{"testout":""}'"#, json!(null))
        },
        // The other control words.
        case(
            "/noop",
            "echo noop >&$ATEX_TEST_CONTROL; echo noop >&$ATEX_TEST_CONTROL",
            json!([{"status": "pass", "files": ["output.txt"]}]),
        ),
        Case {
            duration: 1,
            ..case(
                "/duration_set",
                "echo 'duration 10' >&$ATEX_TEST_CONTROL; sleep 2",
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            duration: 1,
            ..case(
                "/duration_plus",
                "echo 'duration +5' >&$ATEX_TEST_CONTROL; sleep 2",
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            duration: 60,
            note: Some("test duration timeout reached"),
            ..case(
                "/duration_minus",
                "echo 'duration -58' >&$ATEX_TEST_CONTROL; sleep 30",
                json!([{"status": "infra", "note": "test duration timeout reached", "files": ["output.txt"]}]),
            )
        },
        Case {
            duration: 3,
            ..case(
                "/duration_save_restore",
                // Nested: only the outermost restore counts, and the time
                // between save and restore is not spent.
                "for w in save save; do echo \"duration $w\" >&$ATEX_TEST_CONTROL; done; echo 'duration 60' >&$ATEX_TEST_CONTROL; sleep 4; for w in restore restore; do echo \"duration $w\" >&$ATEX_TEST_CONTROL; done; sleep 1",
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        case(
            "/exitcode_from_the_wrapper",
            "exit 7",
            json!([{"status": "fail", "files": ["output.txt"]}]),
        ),
        case(
            "/disconnect_without_reboot",
            "echo disconnect >&$ATEX_TEST_CONTROL; sleep 1",
            json!([{"status": "pass", "files": ["output.txt"]}]),
        ),
        Case {
            files: &[("output.txt", b"123\n")],
            ..case(
                "/cwd",
                "cat file_in_fmfdir",
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            files: &[("output.txt", b"/env 0 0\n")],
            ..case(
                "/env",
                r#"echo "$TMT_TEST_NAME $TMT_REBOOT_COUNT $TMT_TEST_RESTART_COUNT"; test -d "$TMT_TREE"; grep -q '"test"' "$TMT_TEST_METADATA"; test -f "$TMT_PLAN_ENVIRONMENT_FILE"; echo "FROM_ENVFILE=shared" >> "$TMT_PLAN_ENVIRONMENT_FILE""#,
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            files: &[("output.txt", b"shared\n")],
            ..case(
                "/envfile",
                r#"echo "$FROM_ENVFILE""#,
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        Case {
            files: &[("output.txt", b"\x00\x01\xfe\xff")],
            ..case(
                "/binary_output",
                r"printf '\000\001\376\377'",
                json!([{"status": "pass", "files": ["output.txt"]}]),
            )
        },
        // The wrapper dying is named with its signal (#14, item 7).
        Case {
            note: Some(
                "the test's wrapper on the system ended with exit status 137 (killed by SIGKILL)",
            ),
            ..case("/wrapper_killed", "kill -KILL $PPID", json!(null))
        },
    ]
}

fn check_cases(mut f: Fixture) {
    let mut failures = Vec::new();
    for c in cases() {
        let mut t = spec(c.name, &format!("{REPORT}{}", c.script));
        t.duration = Duration::from_secs(c.duration);
        let (a, o) = run(&mut f, &t);
        let got = json!(results(a.path()));
        if !c.results.is_null() && got != c.results {
            failures.push(format!("{}: results {got} want {}", c.name, c.results));
        }
        if let Some(note) = c.note {
            if !o.note.as_deref().unwrap_or("").contains(note) {
                failures.push(format!("{}: note {:?} want {note:?}", c.name, o.note));
            }
        } else if o.status == "infra" {
            failures.push(format!("{}: unexpected infra {:?}", c.name, o.note));
        }
        for (path, want) in c.files {
            let data = std::fs::read(a.path().join("files").join(path)).unwrap_or_default();
            if data != *want {
                failures.push(format!(
                    "{}: file {path} has {:?} want {:?}",
                    c.name,
                    String::from_utf8_lossy(&data),
                    String::from_utf8_lossy(want)
                ));
            }
        }
        if c.name == "/subtest_testout" && a.path().join("files/output.txt").exists() {
            failures.push(format!("{}: output.txt must not exist", c.name));
        }
    }
    f.system.close();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn upstream_results_and_control_words_on_the_local_host() {
    check_cases(open(Connection::Local));
}

#[test]
fn upstream_results_and_control_words_on_a_podman_container() {
    let prov = podman("image: localhost/atex-test:bookworm\n");
    let remote = podman_remote(&prov);
    check_cases(open(remote.connection().expect("connection")));
    remote.release().expect("release");
    prov.stop().expect("stop");
}

// ------------------------------------------------ what a test leaves

/// Pids of the processes (zombies excepted) whose environment holds
/// `ATEX_TEST_MARK=<mark>`, on this host.
fn marked_processes(mark: &str) -> Vec<u32> {
    let want = format!("ATEX_TEST_MARK={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat.rsplit(") ").next().is_some_and(|s| s.starts_with('Z')) {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|&b| b == 0).any(|v| v == want.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// A daemon that left the test's session and keeps the control descriptor
/// (#14, item 4): the test must end at once, not at its duration + 15 s,
/// and the daemon must go with it.
const DAEMON: &str = r#"
setsid sleep 1001 >/dev/null 2>&1 </dev/null &
echo $! > "$TMT_TREE/daemon.pid"
echo "$ATEX_TEST_MARK"
"#;

/// Passes when the process in `$TMT_TREE/daemon.pid` is gone (or a
/// zombie).
const DAEMON_GONE: &str = r#"pid=$(cat "$TMT_TREE/daemon.pid")
s=$(cat /proc/$pid/stat 2>/dev/null) || exit 0
s=${s##*) }
[ "${s%% *}" = Z ]"#;

fn daemon_ends_with_its_test(f: &mut Fixture, local: bool) {
    let mut t = spec("/daemon", DAEMON);
    t.duration = Duration::from_secs(60);
    let (a, o) = run(f, &t);
    assert_eq!(o.status, "pass", "{:?}", o.note);
    assert!(!o.system_lost);
    assert!(
        o.duration < Duration::from_secs(10),
        "the daemon kept the test going for {:?}",
        o.duration
    );
    let (b, o) = run(f, &spec("/daemon-gone", DAEMON_GONE));
    assert_eq!(
        o.status,
        "pass",
        "the daemon survived its test: {}",
        output(b.path())
    );
    if local {
        let mark = output(a.path()).trim().to_string();
        assert!(!mark.is_empty());
        assert_eq!(marked_processes(&mark), Vec::<u32>::new());
    }
}

#[test]
fn a_daemon_ends_with_its_test_on_the_local_host() {
    let mut f = open(Connection::Local);
    daemon_ends_with_its_test(&mut f, true);
    f.system.close();
}

#[test]
fn a_daemon_ends_with_its_test_on_a_podman_container() {
    let prov = podman("image: localhost/atex-test:bookworm\n");
    let remote = podman_remote(&prov);
    let mut f = open(remote.connection().expect("connection"));
    daemon_ends_with_its_test(&mut f, false);
    f.system.close();
    remote.release().expect("release");
    prov.stop().expect("stop");
}

/// `atex run` on the local provisioner: after the run, no process of the
/// test (by its marker) and no work directory of the run remain.
#[test]
fn nothing_of_a_run_remains_on_the_local_host() {
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    dir.create(
        "daemon.fmf",
        "test: |\n  setsid sleep 1002 >/dev/null 2>&1 </dev/null &\n  echo \"$ATEX_TEST_MARK\"\n  echo \"$TMT_TREE\"\nduration: 1m\n",
    );
    let results = dir.path().join("results");
    let plugins = atex_integration_tests::plugin_dir_with(&["atex_local"]);
    let started = Instant::now();
    let out = atex_integration_tests::atex_in(
        Some(dir.path()),
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "-p",
            "local",
            "--results",
            results.to_str().expect("utf-8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        atex_integration_tests::stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let files = results.join("files");
    let output = walk_find(&files, "output.txt").expect("output.txt");
    let text = std::fs::read_to_string(output).expect("read output");
    let mut lines = text.lines();
    let mark = lines.next().expect("mark");
    let tree = lines.next().expect("tree");
    let workdir = Path::new(tree).parent().expect("workdir");
    assert!(
        workdir.starts_with("/var") || workdir.starts_with("/tmp"),
        "{workdir:?}"
    );
    assert!(!workdir.exists(), "{workdir:?} stayed after the run");
    assert_eq!(marked_processes(mark), Vec::<u32>::new());
}

fn walk_find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = walk_find(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

// ------------------------------------------------------------ metadata

/// A 20 MB key inherited by every test (#14, item 6): each test start
/// stays quick, and `TMT_TEST_METADATA` holds the whole metadata.
#[test]
fn large_metadata_does_not_slow_test_starts() {
    let mut f = open(Connection::Local);
    let big = "x".repeat(20 * 1024 * 1024);
    for i in 0..3 {
        let script = "wc -c < \"$TMT_TEST_METADATA\"";
        let mut t = spec(&format!("/big-{i}"), script);
        t.metadata = json!({"test": script, "index": i, "big": big});
        let (a, o) = run(&mut f, &t);
        assert_eq!(o.status, "pass", "{:?} {}", o.note, output(a.path()));
        assert!(
            o.duration < Duration::from_secs(4),
            "test {i} took {:?} to run",
            o.duration
        );
        let size: usize = output(a.path()).trim().parse().expect("size");
        let expected = serde_json::to_vec_pretty(&t.metadata).expect("json").len();
        assert_eq!(size, expected);
    }
    f.system.close();
}

// ------------------------------------------------------ debug switches

/// Upstream's `ATEX_DEBUG_*` switches, read from atex's environment.
#[test]
fn upstream_debug_switches() {
    let mut f = open(Connection::Local);
    // SAFETY: this test runs in its own process (nextest); nothing else
    // reads the environment meanwhile.
    let set = |k: &str, v: Option<&str>| unsafe {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    };

    // No exitcode from the wrapper: a file without its data is an EOF
    // error, as in upstream's no_file_data case.
    set("ATEX_DEBUG_NO_EXITCODE", Some("1"));
    let script = r#"j='{"files":[{"name":"f","length":10}]}'; printf 'result %s\n%s' ${#j} "$j" >&$ATEX_TEST_CONTROL"#;
    let (_, o) = run(&mut f, &spec("/no_file_data", script));
    assert!(
        o.note
            .as_deref()
            .unwrap_or("")
            .contains("EOF when reading data"),
        "{:?}",
        o.note
    );
    let (_, o) = run(&mut f, &spec("/no-exitcode", "true"));
    assert_eq!(o.status, "infra");
    assert!(
        o.note
            .as_deref()
            .unwrap_or("")
            .contains("exitcode not reported"),
        "{:?}",
        o.note
    );
    set("ATEX_DEBUG_NO_EXITCODE", None);

    // Background processes stay.
    set("ATEX_DEBUG_NO_BG_KILL", Some("1"));
    let (a, o) = run(
        &mut f,
        &spec("/bg", "sleep 300 >/dev/null 2>&1 3>&- & echo $!"),
    );
    set("ATEX_DEBUG_NO_BG_KILL", None);
    assert_eq!(o.status, "pass");
    let pid: i32 = output(a.path()).trim().parse().expect("pid");
    let alive = Path::new(&format!("/proc/{pid}")).exists();
    // SAFETY: plain kill(2) of the process the test left.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(alive, "the background process was killed");

    // Test output to one of atex's descriptors; output.txt stays empty.
    let sink = tempfile::NamedTempFile::new().expect("tempfile");
    let fd = std::os::fd::AsRawFd::as_raw_fd(sink.as_file());
    set("ATEX_DEBUG_TEST_OUTPUT_FD", Some(&fd.to_string()));
    let (a, o) = run(&mut f, &spec("/to-fd", "echo to the descriptor"));
    set("ATEX_DEBUG_TEST_OUTPUT_FD", None);
    assert_eq!(o.status, "pass");
    assert_eq!(output(a.path()), "");
    assert!(a.path().join("files/output.txt").exists());
    assert_eq!(
        std::fs::read_to_string(sink.path()).expect("sink"),
        "to the descriptor\n"
    );
    f.system.close();
}

// ----------------------------------------------------------- libraries

/// An in-tree library (`require: [{nick, name}]` with no `url`), as
/// upstream's `test_local_library_symlink` uses it (#23, item 3): its own
/// `require` is installed, its `recommend` is best effort, and it is
/// importable from `libs/<nick>/<name>` in the tree, where BeakerLib's
/// `BEAKERLIB_LIBRARY_PATH` points.
#[test]
fn an_in_tree_library_is_installed_and_importable() {
    let dir = TestDir::new();
    dir.create(".fmf/version", "1\n");
    dir.create(
        "mylib/main.fmf",
        "summary: a library\nrequire: [less]\nrecommend: [atex-no-such-package]\n",
    );
    dir.create(
        "mylib/lib.sh",
        "mylib_hello() { echo \"hello from mylib\"; }\n",
    );
    dir.create(
        "tests/uses-lib.fmf",
        r#"test: |
  . "$TMT_TREE/libs/mylib/mylib/lib.sh"
  mylib_hello
  test -f "$BEAKERLIB_LIBRARY_PATH/libs/mylib/mylib/lib.sh"
  command -v less
require:
  - nick: mylib
    name: /mylib
duration: 5m
"#,
    );
    let results = dir.path().join("results");
    let plugins = atex_integration_tests::plugin_dir_with(&["atex_podman"]);
    let out = std::process::Command::new(atex_integration_tests::atex_bin())
        .current_dir(dir.path())
        .args([
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "-p",
            "podman:image=localhost/atex-test:bookworm",
            "--results",
            results.to_str().expect("utf-8"),
        ])
        .env(
            "CONTAINERS_CONF",
            concat!(env!("CARGO_MANIFEST_DIR"), "/containers.conf"),
        )
        .env_remove("ATEX_PLUGIN_PATH")
        .output()
        .expect("atex run");
    let jsonl = std::fs::read_to_string(results.join("results.jsonl")).unwrap_or_default();
    let output = walk_find(&results.join("files"), "output.txt")
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "{jsonl}\n{output}\n{}",
        atex_integration_tests::stderr(&out)
    );
    assert!(output.contains("hello from mylib\n"), "{output}");
    assert!(output.contains("/less\n"), "{output}");
}

/// The connection breaks while the system stays up (here: the test kills
/// the agent that runs it): the note says so in words, and the test, left
/// without anyone reading its control channel, is ended (#23, item 2).
#[test]
fn a_broken_connection_is_named_and_its_test_ended() {
    let mut f = open(Connection::Local);
    let script = r#"echo "$ATEX_TEST_MARK" > "$TMT_TREE/mark"
read -r st < /proc/$PPID/stat; st=${st##*) }; set -- $st
kill -KILL "$2"
sleep 300
"#;
    let (_, o) = run(&mut f, &spec("/kills-its-agent", script));
    let note = o.note.clone().unwrap_or_default();
    assert_eq!(o.status, "infra", "{note}");
    assert!(
        note.starts_with("the connection to the system broke while the test was running; the system did not reboot"),
        "{note}"
    );
    assert!(o.duration < Duration::from_secs(30), "{:?}", o.duration);
    let mark = std::fs::read_to_string(format!("{}/tests/mark", f.system.workdir()))
        .expect("mark")
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marked_processes(&mark).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(marked_processes(&mark), Vec::<u32>::new());
    f.system.close();
}

/// The system goes away for good while a test runs (its container is
/// killed): the note says the system went away, not "Terminated" or a
/// podman error, and the system is lost (#23, item 2).
#[test]
fn a_system_that_goes_away_is_named() {
    let prov = podman("image: localhost/atex-test:bookworm\n");
    let remote = podman_remote(&prov);
    let conn = remote.connection().expect("connection");
    let Connection::Command(prefix) = &conn else {
        panic!("podman gives a command prefix, got {conn}");
    };
    let container = prefix.last().expect("container id").clone();
    let mut f = open(conn.clone());
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        std::process::Command::new("podman")
            .args(["kill", &container])
            .output()
            .expect("podman kill")
    });
    let mut t = spec("/system-goes-away", "sleep 300");
    t.duration = Duration::from_secs(20);
    let (_, o) = run(&mut f, &t);
    let killed = killer.join().expect("killer");
    assert!(killed.status.success(), "{killed:?}");
    let note = o.note.clone().unwrap_or_default();
    assert_eq!(o.status, "infra", "{note}");
    assert!(o.system_lost);
    assert!(
        note.starts_with("the system went away while the test was running")
            && note.contains("disconnect was not sent via test control"),
        "{note}"
    );
    assert!(
        !note.contains("Terminated") && !note.contains("Error"),
        "{note}"
    );
    drop(f);
    let _ = remote.release();
    prov.stop().expect("stop");
}
