//! The toolbox from the outside: a third-party plugin built from the
//! template, and plugins built against an incompatible interface.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use atex_integration_tests::{atex, fixture_target, plugin_lib, profile_dir, stderr, stdout};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn cargo_build(manifest: &Path) -> PathBuf {
    atex_integration_tests::cargo_build_fixture(manifest)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Builds tests/fixtures/other-api against a copy of plugin-api with
/// `version` and, when `extra_field`, one more field in `TestResult`.
/// Returns the directory holding only the built library.
fn build_other_api(variant: &str, version: &str, extra_field: bool) -> tempfile::TempDir {
    let work = fixture_target().join("src").join(variant);
    let _ = std::fs::remove_dir_all(&work);
    let api = work.join("api");
    copy_dir(&repo().join("plugin-api/src"), &api.join("src"));
    if extra_field {
        let types = api.join("src/types.rs");
        let text = std::fs::read_to_string(&types).expect("types.rs");
        let marker = "    pub extra_json: RString,\n}\n\n/// How many results had one status.";
        assert!(
            text.contains(marker),
            "plugin-api changed: update this fixture"
        );
        let changed = text.replacen(marker, "    pub extra_json: RString,\n    pub added_later: u64,\n}\n\n/// How many results had one status.", 1);
        std::fs::write(&types, changed).expect("write");
    }
    std::fs::write(
        api.join("Cargo.toml"),
        format!(
            r#"[package]
name = "atex-plugin-api"
version = "{version}"
edition = "2024"

[dependencies]
abi_stable = {{ version = "0.11.3", default-features = false }}
serde = {{ version = "1", features = ["derive"] }}
serde_yaml = "0.9"
tracing = "0.1"
tracing-subscriber = {{ version = "0.3", features = ["registry"] }}
"#
        ),
    )
    .expect("api manifest");
    let plugin = work.join("plugin");
    copy_dir(
        &repo().join("tests/fixtures/other-api/src"),
        &plugin.join("src"),
    );
    std::fs::write(
        plugin.join("Cargo.toml"),
        format!(
            r#"[package]
name = "atex-other-api-{variant}"
version = "0.0.1"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
atex-plugin-api = {{ path = "../api" }}

[workspace]
"#
        ),
    )
    .expect("plugin manifest");
    let out_dir = cargo_build(&plugin.join("Cargo.toml"));
    let name = format!("libatex_other_api_{}.so", variant.replace('-', "_"));
    let dir = tempfile::Builder::new()
        .prefix("atex-other-api-")
        .tempdir()
        .expect("tempdir");
    std::fs::copy(out_dir.join(&name), dir.path().join(&name)).expect("copy the built plugin");
    std::os::unix::fs::symlink(
        plugin_lib("atex_local"),
        dir.path().join("libatex_local.so"),
    )
    .expect("symlink");
    dir
}

fn plugins_in(dir: &Path) -> (String, serde_json::Value) {
    let path = dir.to_str().expect("utf-8");
    let text = atex(&["plugins", "--plugin-dir", path]);
    assert!(text.status.success(), "{}", stderr(&text));
    let json = atex(&["plugins", "--json", "--plugin-dir", path]);
    (
        stdout(&text),
        serde_json::from_slice(&json.stdout).expect("json"),
    )
}

fn refused_line<'a>(text: &'a str, file: &str) -> &'a str {
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(file)).collect();
    assert_eq!(lines.len(), 1, "exactly one line about {file}:\n{text}");
    assert!(lines[0].starts_with("refused: "), "{text}");
    lines[0]
}

#[test]
fn a_plugin_built_against_another_api_version_is_refused_in_one_line() {
    let dir = build_other_api("minor", "0.2.0", false);
    let (text, json) = plugins_in(dir.path());
    let line = refused_line(&text, "libatex_other_api_minor.so");
    assert!(
        line.contains("atex-plugin-api 0.2.0") && line.contains(atex_plugin_api::API_VERSION),
        "{line}"
    );
    // The host keeps working with the others.
    assert!(text.lines().any(|l| l.starts_with("local ")), "{text}");
    let names: Vec<&str> = json["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        names.contains(&"local") && !names.contains(&"other-api"),
        "{json}"
    );
}

#[test]
fn a_plugin_whose_types_differ_is_refused_in_one_line() {
    // Same version number, one more field: only abi_stable's layout check
    // can tell, and its multi-page report must come out as one line.
    let dir = build_other_api("layout", atex_plugin_api::API_VERSION, true);
    let (text, _) = plugins_in(dir.path());
    let line = refused_line(&text, "libatex_other_api_layout.so");
    assert!(line.contains("refused by the ABI check"), "{line}");
    assert!(line.len() < 600, "{line}");
    assert!(text.lines().any(|l| l.starts_with("local ")), "{text}");
}

#[test]
fn the_third_party_template_builds_and_passes_the_conformance_suite() {
    let out_dir = cargo_build(&repo().join("plugin-api/template/Cargo.toml"));
    let lib = out_dir.join("libatex_plugin_template.so");
    let out = atex(&["plugin", "check", lib.to_str().expect("utf-8")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.ends_with(" passed, 0 failed")),
        "{text}"
    );

    // Its options and its command, through the plugin's own entry points.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(&lib, dir.path().join("libatex_plugin_template.so")).expect("copy");
    let dir_arg = dir.path().to_str().expect("utf-8");
    let out = atex(&["plugin", "info", "template", "--plugin-dir", dir_arg]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("\n  output  path, default <results dir>/results.txt\n"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("  count ")), "{text}");
    let results = dir.path().join("results.txt");
    std::fs::write(
        &results,
        "p pass /a (attempt 1)\np fail /b (attempt 1)\np pass /c (attempt 1)\ntotal: 2 pass, 1 fail\n",
    )
    .expect("write");
    let out = Command::new(atex_integration_tests::atex_bin())
        .args(["template", "count"])
        .arg(&results)
        .env("ATEX_PLUGIN_PATH", dir.path())
        .output()
        .expect("run atex template count");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "pass 2\nfail 1\n");
}

fn example(name: &str) -> PathBuf {
    let bin = profile_dir().join("examples").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --examples` first",
        bin.display()
    );
    bin
}

/// Runs example `name` on `tree` with results in `dir`, the plugins of
/// this build and the podman test settings; the suites the tests give
/// fail on purpose, so it must exit 1.
fn run_failing_example(name: &str, tree: &Path, dir: &Path) -> std::process::Output {
    let out = Command::new(example(name))
        .arg(tree)
        .arg(dir)
        .env("ATEX_PLUGIN_PATH", profile_dir())
        .env("CONTAINERS_CONF", repo().join("tests/containers.conf"))
        .output()
        .expect("run the example");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Final results by test name from a results.jsonl.
fn final_statuses(results: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(results.join("results.jsonl"))
        .expect("results.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|v| v[3].is_null())
        .map(|v| {
            (
                v[2].as_str().unwrap_or_default().to_string(),
                v[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn the_in_process_provisioner_example_runs_the_demo_suite() {
    let results = tempfile::tempdir().expect("tempdir");
    let dir = results.path().join("r");
    // The demo suite fails on purpose.
    run_failing_example(
        "in-process-provisioner",
        &repo().join("examples/demo"),
        &dir,
    );
    let statuses = final_statuses(&dir);
    assert_eq!(statuses.len(), 13, "{statuses:?}");
    assert_eq!(statuses["/tests/basics/pass"], "pass");
    assert_eq!(statuses["/tests/basics/fails"], "fail");
    assert_eq!(statuses["/tests/basics/skipped"], "skip");
    assert_eq!(statuses["/tests/basics/times-out"], "infra");
    assert_eq!(statuses["/tests/files"], "pass");
}

#[test]
fn the_custom_runner_example_doubles_durations_on_podman_with_junit() {
    let results = tempfile::tempdir().expect("tempdir");
    let dir = results.path().join("r");
    run_failing_example("custom-runner", &repo().join("examples/demo"), &dir);
    assert!(dir.join("junit.xml").exists());
    // times-out has a 3 s duration, doubled to 6 s before it is stopped.
    let attempts = std::fs::read_to_string(dir.join("attempts.jsonl")).expect("attempts.jsonl");
    let timed_out: serde_json::Value = attempts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|v| v["test"] == "/tests/basics/times-out")
        .expect("an attempt of times-out");
    let ms = timed_out["duration_ms"].as_u64().expect("duration_ms");
    assert!(ms >= 5_500, "{timed_out}");
    // Failures were rerun: more attempts than tests.
    assert!(attempts.lines().count() > 12, "{attempts}");
}

#[test]
fn the_event_sink_example_prints_one_json_line_per_event_matching_the_results() {
    let results = tempfile::tempdir().expect("tempdir");
    let dir = results.path().join("r");
    let out = run_failing_example("event-sink", &repo().join("examples/demo"), &dir);
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("an event name"))
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"run_finished"), "{kinds:?}");
    assert_eq!(events[0]["tests"], 13);
    // Every test started at least once and finished exactly once, with the
    // status results.jsonl has for it.
    let statuses = final_statuses(&dir);
    let finished: std::collections::BTreeMap<String, String> = events
        .iter()
        .filter(|e| e["event"] == "test_finished")
        .map(|e| {
            (
                e["test"].as_str().unwrap_or_default().to_string(),
                e["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(finished, statuses);
    for test in statuses.keys() {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "test_started" && e["test"] == test.as_str()),
            "{test} has no test_started"
        );
    }
    // Each stored result came through the sink too, and the systems that
    // ran tests were announced.
    let stored: usize = events
        .iter()
        .filter(|e| e["event"] == "results_stored")
        .map(|e| e["results"].as_array().map_or(0, Vec::len))
        .sum();
    let lines = std::fs::read_to_string(dir.join("results.jsonl")).expect("results.jsonl");
    assert_eq!(stored, lines.lines().count());
    assert!(kinds.contains(&"system_ready"), "{kinds:?}");
    assert!(
        stderr(&out).contains("13 tests finished"),
        "the closure sink counted: {}",
        stderr(&out)
    );
}

#[test]
fn the_custom_policy_example_sets_up_each_system_and_replaces_it_after_a_failure() {
    let tree = atex_integration_tests::TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "main.fmf",
        "/a:\n    test: cat \"$BUILD_FILE\"; exit 1\n\
         /b:\n    test: grep -q build-42 \"$BUILD_FILE\"\n\
         /c:\n    test: grep -q build-42 \"$BUILD_FILE\"\n",
    );
    let results = tempfile::tempdir().expect("tempdir");
    let dir = results.path().join("r");
    let out = run_failing_example("custom-policy", tree.path(), &dir);
    let statuses = final_statuses(&dir);
    assert_eq!(statuses["/a"], "fail");
    assert_eq!(statuses["/b"], "pass", "the build was there");
    assert_eq!(statuses["/c"], "pass");
    // /a failed on the first system; the policy replaced it, and the new
    // one was set up too before /b and /c ran on it.
    let attempts = std::fs::read_to_string(dir.join("attempts.jsonl")).expect("attempts.jsonl");
    let remote = |test: &str| -> String {
        attempts
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .find(|v| v["test"] == test)
            .and_then(|v| v["remote"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert_ne!(remote("/a"), remote("/b"), "{attempts}");
    assert_eq!(remote("/b"), remote("/c"), "{attempts}");
    let text = stdout(&out);
    let set_up: Vec<&str> = text.lines().filter(|l| l.starts_with("set up ")).collect();
    assert_eq!(set_up.len(), 2, "{text}");
    assert!(set_up.iter().any(|l| l.contains(&remote("/a"))), "{text}");
    assert!(set_up.iter().any(|l| l.contains(&remote("/b"))), "{text}");
}
