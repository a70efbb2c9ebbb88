//! The live display of `atex run` on the local host: redrawn running tests
//! and colours on a terminal (a pseudo-terminal made by `script`), plain
//! lines without escape sequences elsewhere, `-q`, `--max-fail`, the ETA.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

use atex_integration_tests::{TestDir, atex_bin, plugin_dir_with, stderr};

/// An fmf tree with `tests` (name, extra metadata lines, script).
fn tree(dir: &TestDir, tests: &[(&str, &str, &str)]) {
    dir.create(".fmf/version", "1\n");
    let mut main = String::new();
    for (name, extra, script) in tests {
        main.push_str(&format!("{name}:\n    test: {script}\n"));
        for line in extra.lines() {
            main.push_str(&format!("    {line}\n"));
        }
    }
    dir.create("main.fmf", &main);
}

/// `atex run` in `dir` with the local plugin (at most `max` systems) and
/// `args`, stdout and stderr piped (no terminal), `env` set.
fn run_piped(dir: &TestDir, max: u32, args: &[&str], env: &[(&str, &str)]) -> Output {
    let plugins = plugin_dir_with(&["atex_local", "atex_junit"]);
    let mut cmd = Command::new(atex_bin());
    cmd.current_dir(dir.path())
        .args(["run", "--plugin-dir"])
        .arg(plugins.path())
        .args(["-p", &format!("local:max={max}")])
        .args(args)
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run atex")
}

/// `atex run` in `dir` on a pseudo-terminal (`script`), as above; returns
/// the exit code and every byte written to the terminal.
fn run_on_pty(dir: &TestDir, max: u32, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let plugins = plugin_dir_with(&["atex_local"]);
    let mut argv = vec![
        atex_bin().display().to_string(),
        "run".into(),
        "--plugin-dir".into(),
        plugins.path().display().to_string(),
        "-p".into(),
        format!("local:max={max}"),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let line = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let log = dir.path().join("pty.log");
    let mut cmd = Command::new("script");
    cmd.current_dir(dir.path())
        .args(["-q", "-e", "-c", &line])
        .arg(&log)
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run script (util-linux)");
    let text = fs::read(&log).expect("script log");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

/// Whether `text` holds an SGR (colour) escape sequence.
fn has_colour(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len()).any(|i| {
        if b[i] != 0x1b || b.get(i + 1) != Some(&b'[') {
            return false;
        }
        let rest = &b[i + 2..];
        let n = rest
            .iter()
            .take_while(|c| c.is_ascii_digit() || **c == b';')
            .count();
        rest.get(n) == Some(&b'm')
    })
}

/// The seconds of every `ETA ...` the display wrote.
fn etas(text: &str) -> Vec<u64> {
    text.match_indices("ETA ")
        .filter_map(|(i, _)| {
            let rest = &text[i + 4..];
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            parse_short(&word)
        })
        .collect()
}

/// `12s`, `3m05s`, `1h02m` as seconds.
fn parse_short(word: &str) -> Option<u64> {
    let mut total = 0;
    let mut num = String::new();
    for c in word.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
    }
    num.is_empty().then_some(total)
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

#[test]
fn terminal_shows_running_tests_with_elapsed_time_and_colours() {
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/slow", "extra-priority: 1", "sleep 3"),
            ("/bad", "", "sleep 1; exit 3"),
            ("/good", "", "/bin/true"),
        ],
    );
    let (code, out) = run_on_pty(&dir, 2, &["--results", "out"], &[]);
    assert_eq!(code, 1, "{out}");
    // The block at the bottom: the header, then each running test with
    // its elapsed time and system, redrawn in place (cursor up, erase).
    assert!(out.contains("RUNNING"), "{out}");
    assert!(
        ["1s", "2s"].iter().any(|t| {
            out.contains(&format!("{t} \x1b[0m/slow\x1b[2m on local-"))
                || out.contains(&format!("{t} /slow on local-"))
        }),
        "no running line for /slow with its elapsed time:\n{out}"
    );
    assert!(out.contains("\x1b[J"), "nothing redrawn:\n{out}");
    // Finished tests scroll by with coloured statuses.
    assert!(out.contains("\x1b[1;31m  FAIL\x1b[0m"), "{out}");
    assert!(out.contains("\x1b[32m  PASS\x1b[0m"), "{out}");
    // The block is gone before the summary.
    let summary_at = out.find("3 tests in").expect("summary");
    assert!(!out[summary_at..].contains("RUNNING"), "{out}");
}

#[test]
fn no_color_keeps_the_live_display_without_colours() {
    let dir = TestDir::new();
    tree(&dir, &[("/slow", "", "sleep 2"), ("/bad", "", "exit 3")]);
    for (args, env) in [
        (vec!["--results", "out1"], vec![("NO_COLOR", "1")]),
        (vec!["--results", "out2", "--color", "never", "-v"], vec![]),
    ] {
        let (code, out) = run_on_pty(&dir, 2, &args, &env);
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("RUNNING") && out.contains(" /slow on local-"),
            "{out}"
        );
        assert!(out.contains("  FAIL [") && out.contains("/bad"), "{out}");
        assert!(!has_colour(&out), "colours with {args:?} {env:?}:\n{out:?}");
    }
    // `--color always` wins over NO_COLOR.
    let (_, out) = run_on_pty(
        &dir,
        2,
        &["--results", "out3", "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    assert!(has_colour(&out), "{out:?}");
}

#[test]
fn without_a_terminal_no_escape_code_is_written() {
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/slow", "extra-priority: 1", "sleep 3"),
            ("/bad", "", "echo oops; exit 3"),
            ("/good", "", "/bin/true"),
        ],
    );
    let mut n = 0;
    for verbose in ["-v", "-vv", "--quiet"] {
        n += 1;
        let results = format!("out{n}");
        let out = run_piped(
            &dir,
            2,
            &[
                "--results",
                &results,
                "--heartbeat",
                "1s",
                "-r",
                "junit",
                verbose,
            ],
            &[],
        );
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
            "an escape code with {verbose}:\n{err:?}"
        );
        if verbose == "--quiet" {
            continue;
        }
        // -v logs are there, plain.
        assert!(err.contains(" INFO "), "{err}");
        // A start line per test, a finish line per test.
        for t in ["/slow", "/bad", "/good"] {
            assert!(
                err.lines().any(|l| l.contains("START") && l.contains(t)),
                "no start line for {t}:\n{err}"
            );
        }
        assert!(
            err.lines()
                .any(|l| l.contains("FAIL") && l.contains("/bad"))
        );
        // The heartbeat names what runs.
        assert!(
            err.lines()
                .any(|l| l.starts_with("RUNNING") && l.contains("/slow (")),
            "no heartbeat:\n{err}"
        );
    }
}

#[test]
fn quiet_shows_failures_as_they_land_and_the_summary() {
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/bad", "", "exit 3"),
            ("/good", "", "/bin/true"),
            ("/other", "", "/bin/true"),
        ],
    );
    let out = run_piped(&dir, 2, &["--results", "out", "-q"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("FAIL") && l.contains("/bad")),
        "{err}"
    );
    assert!(!err.contains("PASS"), "{err}");
    assert!(!err.contains("START"), "{err}");
    assert!(!err.contains("RUNNING"), "{err}");
    assert!(err.contains("3 tests in"), "{err}");
    assert!(err.contains("results: out"), "{err}");
    // --status-level fail does the same for the per-test lines.
    let out = run_piped(
        &dir,
        2,
        &["--results", "out2", "--status-level", "fail"],
        &[],
    );
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("FAIL") && l.contains("/bad")),
        "{err}"
    );
    assert!(!err.contains("PASS") && !err.contains("START"), "{err}");
}

#[test]
fn max_fail_stops_early_and_lists_the_tests_not_run() {
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/first-bad", "extra-priority: 9", "exit 3"),
            ("/a", "", "/bin/true"),
            ("/b", "", "/bin/true"),
            ("/c", "", "/bin/true"),
        ],
    );
    let out = run_piped(
        &dir,
        1,
        &["--results", "out", "--max-fail", "1", "-r", "junit"],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let res = dir.path().join("out");
    let s = summary(&res);
    let mut not_run: Vec<String> = s["not_run"]
        .as_array()
        .expect("not_run list")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    not_run.sort();
    assert_eq!(not_run, ["/a", "/b", "/c"], "{err}");
    assert_eq!(s["not_run_reason"], "--max-fail 1 reached");
    // Not run is not skip: only the failure is counted.
    assert_eq!(s["counts"], serde_json::json!({"fail": 1}));
    assert!(err.contains("3 not run (--max-fail 1 reached)"), "{err}");
    // Not in results.jsonl, so --resume runs them.
    let lines = fs::read_to_string(res.join("results.jsonl")).expect("results");
    assert_eq!(lines.lines().count(), 1, "{lines}");
    // The reporters got them, with the reason.
    let junit = fs::read_to_string(res.join("junit.xml")).expect("junit.xml");
    for t in ["a", "b", "c"] {
        let case = format!("<testcase name=\"{t}\" classname=\"\"");
        assert!(junit.contains(&case), "{t} missing from\n{junit}");
    }
    assert_eq!(
        junit
            .matches("<skipped type=\"skip\" message=\"not run: --max-fail 1 reached\"/>")
            .count(),
        3,
        "{junit}"
    );
    let out = run_piped(&dir, 1, &["--resume", "out"], &[]);
    let err = stderr(&out);
    let lines = fs::read_to_string(res.join("results.jsonl")).expect("results");
    assert_eq!(lines.lines().count(), 4, "{err}");
    assert_eq!(summary(&res)["not_run"], serde_json::json!([]), "{err}");
}

#[test]
fn eta_comes_from_history_or_measured_tests_never_from_durations() {
    let dir = TestDir::new();
    tree(
        &dir,
        &[
            ("/t1", "duration: 5h", "sleep 1"),
            ("/t2", "duration: 5h", "sleep 1"),
            ("/t3", "duration: 5h", "sleep 1"),
        ],
    );
    // No history: no ETA until a test ended, then seconds, not hours.
    let (code, out) = run_on_pty(&dir, 1, &["--results", "runs/one"], &[]);
    assert_eq!(code, 0, "{out}");
    let first_pass = out.find("PASS").expect("a test passed");
    assert!(out[..first_pass].contains("RUNNING"), "{out}");
    assert!(
        etas(&out[..first_pass]).is_empty(),
        "an ETA with no basis:\n{out}"
    );
    let seen = etas(&out);
    assert!(!seen.is_empty(), "no ETA after a test ended:\n{out}");
    assert!(seen.iter().all(|s| *s < 60), "ETAs {seen:?}:\n{out}");
    // The first run left a history beside its results: the next run has
    // an ETA from its start, of about 3 s.
    let history = dir.path().join("runs/.atex-history.json");
    assert!(history.exists());
    let (code, out) = run_on_pty(&dir, 1, &["--results", "runs/two"], &[]);
    assert_eq!(code, 0, "{out}");
    let first_pass = out.find("PASS").expect("a test passed");
    let early = etas(&out[..first_pass]);
    assert!(!early.is_empty(), "no ETA from history:\n{out}");
    assert!(early.iter().all(|s| *s <= 5), "ETAs {early:?}:\n{out}");
}

#[test]
fn counters_agree_with_the_summary() {
    use std::sync::{Arc, Mutex};

    use atex::{
        plugins::{PluginHost, PluginRegistry},
        scheduler::{Counts, Execution, ProgressMode, RunEvent, execute},
    };

    let dir = TestDir::new();
    let marker = dir.path().join("flaky-ran-once");
    let skip = r#"j='{"status":"skip"}'; printf 'result %d\n%s' ${#j} "$j" >&$ATEX_TEST_CONTROL"#;
    let flaky = format!(
        "if [ -e {0} ]; then exit 0; fi; touch {0}; exit 1",
        marker.display()
    );
    dir.create(".fmf/version", "1\n");
    dir.create(
        "main.fmf",
        &format!(
            "/a-pass:\n    test: /bin/true\n    extra-priority: 6\n\
             /b-skip:\n    test: |\n        {skip}\n    extra-priority: 5\n\
             /c-flaky:\n    test: {flaky}\n    extra-priority: 4\n\
             /d-fail:\n    test: exit 1\n    extra-priority: 3\n\
             /e-cancelled:\n    test: sleep 30\n    extra-priority: 2\n\
             /f-not-run:\n    test: /bin/true\n"
        ),
    );
    let found = atex::fmf::discover(dir.path(), &atex::fmf::Selection::default()).expect("tree");
    let plugins = plugin_dir_with(&["atex_local"]);
    let registry = PluginRegistry::discover(&[plugins.path().to_path_buf()]);
    let results = dir.path().join("out");
    let host = PluginHost::new("counters", results.clone());
    let local = registry
        .get("local")
        .expect("local plugin")
        .new_provisioner(&host, "max: 1")
        .expect("provisioner");
    let mut run = Execution::new(&found, vec![Arc::new(local)], &results);
    run.progress = ProgressMode::Quiet;
    run.signals = false;
    run.policy.reruns = 1;
    let (itx, irx) = crossbeam_channel::unbounded();
    run.interrupts = Some(irx);
    let last = Arc::new(Mutex::new(Counts::default()));
    let seen = Arc::clone(&last);
    run.sinks.push(Box::new(move |e: &RunEvent| match e {
        RunEvent::Progress { counts } => *seen.lock().expect("lock") = *counts,
        // Interrupt once the long test runs: it is cancelled (infra) and
        // the last one is not run.
        RunEvent::TestStarted { test, .. } if test == "/e-cancelled" => {
            let itx = itx.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let _ = itx.send(2);
            });
        }
        _ => {}
    }));
    let report = execute(run).expect("run");
    let c = *last.lock().expect("lock");
    let by_status: std::collections::BTreeMap<String, u64> = report
        .stats
        .counts()
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect();
    let expected: std::collections::BTreeMap<String, u64> =
        [("pass", 2), ("skip", 1), ("fail", 1), ("infra", 1)]
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect();
    assert_eq!(by_status, expected, "{:?}", report.stats);
    assert_eq!(report.stats.not_run, ["/f-not-run"]);
    // The live counters say the same: skip is not pass, infra is not
    // fail, the flaky test's two attempts count once, not run apart.
    assert_eq!(
        (c.done, c.passed, c.skipped, c.failed, c.infra, c.not_run),
        (5, 2, 1, 1, 1, 1),
        "{c:?}"
    );
    assert_eq!((c.running, c.queued), (0, 0), "{c:?}");
}
