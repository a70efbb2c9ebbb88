//! Why a test ended, said everywhere (terminal summary, `summary.json`,
//! `attempts.jsonl`, what reporters get); output visible while a test
//! runs; nothing of a run that was refused; terminal text a test cannot
//! drive. All on the `local` provisioner with the real binary.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use atex_integration_tests::{TestDir, atex_bin, atex_in, jsonl, plugin_dir_with, stderr};
use serde_json::Value;

/// An FMF tree of `(name, extra keys, script)`.
fn tree(dir: &TestDir, tests: &[(&str, &str, &str)]) {
    dir.create(".fmf/version", "1\n");
    let mut main = String::new();
    for (name, keys, script) in tests {
        main.push_str(&format!(
            "{name}:\n{keys}    test: |\n        {}\n",
            script.replace('\n', "\n        ")
        ));
    }
    dir.create("main.fmf", &main);
}

fn json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("JSON")
}

/// A test that reports its own result with `note` through test control.
fn report_script(note_json: &str) -> String {
    format!(
        "printf '%s' '{{\"status\": \"fail\", \"note\": {note_json}}}' > r.json\n\
         printf 'result %s\\n' \"$(wc -c < r.json)\" >&3\n\
         cat r.json >&3"
    )
}

/// The terminal summary says why each test failed, with the tail of its
/// output; `summary.json` and `attempts.jsonl` carry the same reasons.
/// Escape sequences a test prints or reports never reach the terminal,
/// and a multi-line note is one line there.
#[test]
fn failures_say_why_everywhere_and_cannot_drive_the_terminal() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    let note = r#""bad \u001b[2J\u001b]0;pwned\u0007note\nsecond line""#;
    tree(
        &dir,
        &[
            ("/exit3", "", "exit 3"),
            ("/slow", "    duration: 2s\n", "echo started; sleep 60"),
            (
                "/esc",
                "",
                "printf 'out \\033[31mred\\033[0m \\033]0;title\\007 \\033[2J end\\n'\nexit 1",
            ),
            ("/noted", "", &report_script(note)),
            ("/ok", "", "echo fine"),
        ],
    );
    let out = atex_in(
        Some(dir.path()),
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "--results",
            "out",
            "--plain",
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "an escape sequence reached the terminal:\n{err:?}"
    );
    assert!(
        !err.contains('\u{7}'),
        "a BEL reached the terminal:\n{err:?}"
    );
    let summary = &err[err.find("\nfailed:\n").expect("a failed: section")..];
    // pytest's order: the counts, then one compact line per failure.
    assert!(err.find("5 tests in").expect("counts") < err.find("\nfailed:\n").expect("failed"));
    assert!(
        summary.contains("  fail   /exit3  exit code 3\n"),
        "{summary}"
    );
    assert!(summary.contains("/slow  timed out after 2s\n"), "{summary}");
    assert!(
        summary.contains("| started"),
        "output tail of /slow:\n{summary}"
    );
    assert!(summary.contains("/esc  exit code 1\n"), "{summary}");
    assert!(
        summary.contains("| out red   end\n"),
        "output tail of /esc:\n{summary}"
    );
    assert!(
        summary.contains("/noted  reported fail by the test: bad note …\n"),
        "{summary}"
    );
    assert!(!err.contains("second line"), "{err}");
    assert!(!summary.contains("/ok"), "{summary}");
    // The progress line of the multi-line note: its first line and `…`.
    let progress = err
        .lines()
        .find(|l| l.contains(" /noted on ") && !l.contains("START"))
        .expect("progress line of /noted");
    assert!(
        progress.ends_with("(reported fail by the test: bad note …)"),
        "{progress}"
    );
    let progress = err
        .lines()
        .find(|l| l.contains(" /slow on ") && !l.contains("START"))
        .expect("progress line of /slow");
    assert!(progress.ends_with("(timed out after 2s)"), "{progress}");

    let s = json(&dir.path().join("out/summary.json"));
    let reason = |test: &str| {
        s["tests"]
            .as_array()
            .expect("tests")
            .iter()
            .find(|t| t["test"] == test)
            .map(|t| t["reason"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(reason("/exit3"), "exit code 3");
    assert_eq!(reason("/slow"), "timed out after 2s");
    assert_eq!(reason("/noted"), "reported fail by the test");
    assert_eq!(reason("/ok"), "exit code 0");
    let failures = s["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(
        failures
            .iter()
            .any(|f| f["test"] == "/exit3" && f["reason"] == "exit code 3")
    );
    let attempts = jsonl(&dir.path().join("out/attempts.jsonl"));
    let exit3 = attempts
        .iter()
        .find(|a| a["test"] == "/exit3")
        .expect("attempt");
    assert_eq!(exit3["reason"], "exit code 3");
    assert_eq!(exit3["exit_code"], 3);
    // results.jsonl stays upstream's six fields.
    for line in jsonl(&dir.path().join("out/results.jsonl")) {
        assert_eq!(line.as_array().map(Vec::len), Some(6), "{line}");
    }
}

/// `summary.json` holds what the README says: run id, counts, the slowest
/// tests, the exit code, the platforms, atex's version, the start time.
#[test]
fn summary_json_holds_what_the_readme_says() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(&dir, &[("/a", "", "sleep 0.3"), ("/b", "", "exit 3")]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let out = atex_in(
        Some(dir.path()),
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "--results",
            "out",
            "--failure-output-lines",
            "0",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = json(&dir.path().join("out/summary.json"));
    for key in [
        "run_id",
        "counts",
        "tests",
        "failures",
        "slowest",
        "exit_code",
        "platforms",
        "atex_version",
        "started",
        "started_unix_ms",
        "wall_seconds",
        "interrupted",
        "not_run",
        "errors",
        "history",
    ] {
        assert!(s.get(key).is_some(), "summary.json has no {key}: {s}");
    }
    assert_eq!(s["exit_code"], 1);
    assert_eq!(s["platforms"], serde_json::json!(["local"]));
    assert_eq!(s["atex_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["slowest"][0]["test"], "/a", "{s}");
    let started = s["started_unix_ms"].as_u64().expect("ms");
    assert!(
        started >= before && started < before + 60_000,
        "{started} {before}"
    );
    let iso = s["started"].as_str().expect("started");
    assert!(
        iso.len() == 20 && iso.ends_with('Z') && iso.as_bytes()[10] == b'T',
        "{iso}"
    );
    let history = s["history"].as_str().expect("history");
    assert!(
        Path::new(history).exists(),
        "history {history} does not exist"
    );
    // The README names every key of the file.
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = &readme[readme
        .find("DIR/summary.json")
        .expect("summary.json in README")..];
    let section = &section[..section.find("```").expect("end of block")];
    for word in [
        "slowest",
        "exit code",
        "platforms",
        "version",
        "start time",
        "reason",
    ] {
        assert!(
            section.contains(word),
            "README's summary.json line lacks {word}"
        );
    }
    // --failure-output-lines 0: no output lines in the summary.
    assert!(!stderr(&out).contains("         | "), "{}", stderr(&out));
}

/// A running test's output is in `files/<platform>/<test>/output.txt`
/// while it runs, and grows there; at the end it holds everything once.
#[test]
fn output_grows_in_the_results_directory_while_the_test_runs() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(
        &dir,
        &[(
            "/slow",
            "",
            "echo first-line\nsleep 3\necho second-line\nsleep 3\necho third-line",
        )],
    );
    let mut child = Command::new(atex_bin())
        .current_dir(dir.path())
        .args([
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "--results",
            "out",
            "--plain",
        ])
        .env_remove("ATEX_PLUGIN_PATH")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let output = dir.path().join("out/files/local/slow/output.txt");
    let wait_for = |text: &str| {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if fs::read_to_string(&output).is_ok_and(|o| o.contains(text)) {
                return true;
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    };
    assert!(wait_for("first-line"), "no first line while the test runs");
    let seen = fs::read_to_string(&output).expect("output.txt");
    assert!(!seen.contains("second-line"), "{seen}");
    assert!(wait_for("second-line"), "output did not grow");
    assert_eq!(
        child.try_wait().expect("try_wait"),
        None,
        "the run ended before the test did"
    );
    assert!(
        !dir.path()
            .join("out/results.jsonl")
            .metadata()
            .is_ok_and(|m| m.len() > 0)
    );
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let done = fs::read_to_string(&output).expect("output.txt");
    assert_eq!(done, "first-line\nsecond-line\nthird-line\n");
}

/// A run refused for its configuration leaves nothing behind: no results
/// directory, no history, and one line saying what is wrong.
#[test]
fn a_refused_run_creates_no_results_directory() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(&dir, &[("/a", "", "true")]);
    let pd = plugins.path().to_str().expect("utf8");
    let cases: &[(&[&str], &str)] = &[
        (&["--workers", "0"], "--workers"),
        (&["--workers", "-1"], "--workers"),
        (&["--reruns", "1000"], "--reruns"),
        (&["--reruns", "-1"], "--reruns"),
        (&["--failure-budget", "0"], "--failure-budget"),
        (&["--deadline", "0"], "--deadline"),
        (&["--platform", ""], "--platform"),
        (&["-p", ""], "plugin"),
        (&["-p", "nosuch"], "nosuch"),
        (&["-p", "local:bogus=1"], "bogus"),
        (&["-r", "nosuch"], "nosuch"),
        (&["--test", "nomatch"], "no tests"),
        (&["-c", "nokey"], "context"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, names) in cases {
        for results in [None, Some("res/deeper/run")] {
            let mut argv = vec!["run", "--plugin-dir", pd, "--plain"];
            if let Some(r) = results {
                argv.extend(["--results", r]);
            }
            argv.extend(args.iter());
            let out = atex_in(Some(dir.path()), &argv);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{args:?}: not one line:\n{err}"
            );
            assert!(
                err.contains(names),
                "{args:?}: does not name {names}: {err}"
            );
            for left in ["atex-results", "res", ".atex-history.json"] {
                assert!(
                    !dir.path().join(left).exists(),
                    "{args:?} left {left} behind: {err}"
                );
            }
        }
    }
}

/// atex killed with SIGKILL in the middle of a test leaves that test's
/// output so far in the results directory; `--resume` then runs the test
/// again and stores its full output there.
#[test]
fn a_run_killed_mid_test_leaves_the_output_and_resume_replaces_it() {
    let plugins = plugin_dir_with(&["atex_local"]);
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/quick", "", "echo quick"),
            (
                "/slow",
                "",
                "echo \"attempt $ATEX_TEST_ATTEMPT started\"\nsleep 4\necho finished",
            ),
        ],
    );
    let pd = plugins.path().to_str().expect("utf8");
    let mut child = Command::new(atex_bin())
        .current_dir(dir.path())
        .args(["run", "--plugin-dir", pd, "--results", "out", "--plain"])
        .env_remove("ATEX_PLUGIN_PATH")
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let output = dir.path().join("out/files/local/slow/output.txt");
    let t0 = Instant::now();
    while !fs::read_to_string(&output).is_ok_and(|o| o.contains("started")) {
        assert!(t0.elapsed() < Duration::from_secs(30), "no live output");
        thread::sleep(Duration::from_millis(100));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The agent goes with atex; the test itself ends on its own.
    thread::sleep(Duration::from_secs(5));
    let left = fs::read_to_string(&output).expect("output left behind");
    assert!(left.starts_with("attempt 1 started\n"), "{left:?}");
    let results = fs::read_to_string(dir.path().join("out/results.jsonl")).unwrap_or_default();
    assert!(!results.contains("/slow"), "{results}");

    let out = atex_in(
        Some(dir.path()),
        &["run", "--plugin-dir", pd, "--resume", "out", "--plain"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(&output).expect("output.txt"),
        "attempt 1 started\nfinished\n"
    );
    let results = jsonl(&dir.path().join("out/results.jsonl"));
    assert_eq!(results.iter().filter(|l| l[2] == "/slow").count(), 1);
}

/// End to end through the reporter plugins: the JUnit failure of a test
/// that exits 3 without output says `exit code 3`, and the HTML report
/// carries the same reason.
#[test]
fn reporters_say_exit_code_3_for_a_silent_exit_3() {
    let plugins = plugin_dir_with(&["atex_local", "atex_junit", "atex_html"]);
    let dir = TestDir::new();
    tree(&dir, &[("/exit3", "", "exit 3"), ("/ok", "", "true")]);
    let out = atex_in(
        Some(dir.path()),
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf8"),
            "-r",
            "junit",
            "-r",
            "html",
            "--results",
            "out",
            "--plain",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let junit = fs::read_to_string(dir.path().join("out/junit.xml")).expect("junit.xml");
    let case = &junit[junit
        .find("<testcase name=\"exit3\"")
        .expect("exit3's testcase")..];
    let case = &case[..case.find("</testcase>").expect("closed")];
    assert!(
        case.contains("<failure type=\"fail\" message=\"exit code 3\">"),
        "{case}"
    );
    let html = fs::read_to_string(dir.path().join("out/report.html")).expect("report.html");
    assert!(
        html.contains("exit code 3"),
        "the HTML report has no reason"
    );
}
