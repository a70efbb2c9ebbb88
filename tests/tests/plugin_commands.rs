//! What plugins say about themselves and the commands they offer:
//! `atex plugin info`, `atex PLUGIN COMMAND` (here `atex podman
//! leftovers`, with real containers), plugins built against the previous
//! interface, and where test fixtures are built.

use std::{
    path::Path,
    process::{Command, Output},
    time::{SystemTime, UNIX_EPOCH},
};

use atex_integration_tests::{
    atex_bin, containers_conf, ensure_image, plugin_dir_with, podman_output as podman, stderr,
    stdout,
};

/// Runs `atex ARGS` finding only the plugins in `plugins`.
fn atex_with(plugins: &Path, args: &[&str]) -> Output {
    Command::new(atex_bin())
        .args(args)
        .env("ATEX_PLUGIN_PATH", plugins)
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("RUST_LOG")
        .output()
        .expect("run atex")
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// Creates a container labelled `atex.run=run` (created, not started).
fn labelled_container(run: &str) -> String {
    let out = podman(&[
        "create",
        "--label",
        &format!("atex.run={run}"),
        "localhost/atex-test:bookworm",
        "sleep",
        "infinity",
    ]);
    assert!(out.status.success(), "podman create: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

fn containers_of(run: &str) -> Vec<String> {
    let out = podman(&[
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=atex.run={run}"),
    ]);
    assert!(out.status.success(), "podman ps: {}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn podman_leftovers_lists_and_removes_labelled_containers() {
    ensure_image("base");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let (run, other) = (unique("leftovers"), unique("leftovers-other"));
    let mine = [labelled_container(&run), labelled_container(&run)];
    let theirs = labelled_container(&other);

    let out = atex_with(plugins.path(), &["podman", "leftovers", "--run", &run]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert_eq!(text.lines().count(), 2, "{text}");
    for id in &mine {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&id[..12]) && l.ends_with(&format!("atex.run={run}"))),
            "{id}:\n{text}"
        );
    }
    assert!(!text.contains(&theirs[..12]), "{text}");

    // Without --run: every run's (others' runs may have some too).
    let out = atex_with(plugins.path(), &["podman", "leftovers"]);
    let text = stdout(&out);
    for id in mine.iter().chain([&theirs]) {
        assert!(text.contains(&id[..12]), "{id}:\n{text}");
    }

    let out = atex_with(
        plugins.path(),
        &["podman", "leftovers", "--run", &run, "--remove"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with("removed 2 container(s)\n"),
        "{}",
        stdout(&out)
    );
    assert!(containers_of(&run).is_empty());
    assert_eq!(containers_of(&other), vec![theirs.clone()]);
    let out = atex_with(plugins.path(), &["podman", "leftovers", "--run", &run]);
    assert_eq!(stdout(&out), "no leftover containers\n");

    let out = atex_with(
        plugins.path(),
        &["podman", "leftovers", &format!("--run={other}"), "--remove"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(containers_of(&other).is_empty());

    // Bad arguments: one line naming them.
    let out = atex_with(plugins.path(), &["podman", "leftovers", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unexpected argument `--bogus`"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

// ------------------------------------------- a plugin built against 0.1.0

/// Builds tests/fixtures/old-api (a provisioner built against the vendored
/// atex-plugin-api 0.1.0) and returns a directory holding only it.
fn old_api_plugin() -> tempfile::TempDir {
    let manifest = crate::toolbox::repo().join("tests/fixtures/old-api/plugin/Cargo.toml");
    let out_dir = atex_integration_tests::cargo_build_fixture(&manifest);
    let name = "libatex_old_api_local.so";
    let dir = tempfile::Builder::new()
        .prefix("atex-old-api-")
        .tempdir()
        .expect("tempdir");
    std::fs::copy(out_dir.join(name), dir.path().join(name)).expect("copy the built plugin");
    dir
}

#[test]
fn a_plugin_built_against_api_0_1_0_loads_and_runs_a_test() {
    let plugins = old_api_plugin();
    let lib = plugins.path().join("libatex_old_api_local.so");

    // abi_stable alone refuses it: the current root module has fields it
    // lacks. That is why the host checks it against the 0.1.0 layout.
    let plain = atex_plugin_api::abi_stable::library::lib_header_from_path(&lib)
        .and_then(|h| h.init_root_module::<atex_plugin_api::PluginMod_Ref>());
    let err = plain.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("too many fields"),
        "{}",
        &err[..err.len().min(400)]
    );

    let plugin = atex::plugins::load_plugin(&lib).expect("atex loads the 0.1.0 plugin");
    assert_eq!(plugin.description().api_version, "0.1.0");
    assert!(plugin.is_provisioner());
    assert_eq!(plugin.details(), None);
    assert!(plugin.description().commands.is_empty());

    let out = atex_with(plugins.path(), &["plugins"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("old-api-local ") && l.contains("api 0.1.0")),
        "{text}"
    );
    assert!(!text.contains("refused"), "{text}");

    let out = atex_with(plugins.path(), &["plugin", "info", "old-api-local"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "does not describe its options or commands: it was built against atex-plugin-api 0.1.0"
        ),
        "{}",
        stdout(&out)
    );
    let out = atex_with(plugins.path(), &["old-api-local", "whoami"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("has no commands (built against atex-plugin-api 0.1.0"),
        "{}",
        stderr(&out)
    );

    // It passes the conformance suite as it did then.
    let out = atex_with(
        plugins.path(),
        &[
            "plugin",
            "check",
            lib.to_str().expect("utf-8"),
            "--timeout",
            "60",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.ends_with(" passed, 0 failed")),
        "{text}"
    );

    // And it works: a test runs on the system it hands out.
    let tree = atex_integration_tests::TestDir::new();
    tree.create(".fmf/version", "1\n");
    tree.create(
        "main.fmf",
        "/hello:\n    test: echo hello from an old plugin\n",
    );
    let results = tree.path().join("results");
    let out = atex_with(
        plugins.path(),
        &[
            "run",
            tree.path().to_str().expect("utf-8"),
            "-p",
            "old-api-local",
            "--results",
            results.to_str().expect("utf-8"),
            "--plain",
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let lines = std::fs::read_to_string(results.join("results.jsonl")).expect("results.jsonl");
    assert!(
        lines
            .lines()
            .any(|l| l.contains("\"pass\"") && l.contains("\"/hello\"")),
        "{lines}"
    );
    // The plugin's default platform is `local`, as it was then.
    let output =
        std::fs::read_to_string(results.join("files/local/hello/output.txt")).expect("output.txt");
    assert!(output.contains("hello from an old plugin"), "{output}");
}

// ------------------------------------------------------ atex plugin info

/// (plugin name, crate) of every first-party plugin.
const FIRST_PARTY: &[(&str, &str)] = &[
    ("local", "atex_local"),
    ("podman", "atex_podman"),
    ("testing-farm", "atex_testing_farm"),
    ("ssh", "atex_ssh"),
    ("qemu", "atex_qemu"),
    ("junit", "atex_junit"),
    ("html", "atex_html"),
];

/// Option names of the table in a plugin's crate documentation (`//! |
/// `name` | default | meaning |`; `a`, `b` rows name two options).
fn documented_options(plugin: &str) -> Vec<String> {
    let src = std::fs::read_to_string(
        crate::toolbox::repo().join(format!("plugins/{plugin}/src/lib.rs")),
    )
    .expect("lib.rs");
    let mut names = Vec::new();
    for line in src.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let first = row.split('|').next().unwrap_or_default().trim();
        if !first.starts_with('`') {
            continue;
        }
        let first = first.split(" (").next().unwrap_or_default();
        for name in first.split(", ") {
            names.push(name.trim().trim_matches('`').to_string());
        }
    }
    names
}

#[test]
fn plugin_info_shows_what_each_first_party_plugin_describes() {
    let crates: Vec<&str> = FIRST_PARTY.iter().map(|(_, c)| *c).collect();
    let plugins = plugin_dir_with(&crates);
    for (name, _) in FIRST_PARTY {
        let out = atex_with(plugins.path(), &["plugin", "info", name, "--json"]);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let options = doc["options"].as_array().expect("options described");
        let names: Vec<String> = options
            .iter()
            .map(|o| o["name"].as_str().expect("name").to_string())
            .collect();
        // The same options as the documented table, in its order.
        assert_eq!(names, documented_options(name), "{name}");
        for o in options {
            for key in ["value_type", "description"] {
                assert!(
                    o[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{name}: {o}"
                );
            }
        }
    }

    // Text: type, default and description of each option, and the commands.
    let out = atex_with(plugins.path(), &["plugin", "info", "testing-farm"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("options (-p testing-farm:KEY=VALUE,...):"),
        "{text}"
    );
    assert!(
        text.contains("\n  arch  string, default x86_64\n      Architecture.\n"),
        "{text}"
    );
    assert!(
        text.contains("\n  compose  string\n      Required."),
        "{text}"
    );
    for c in ["whoami", "composes", "requests", "cancel"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("  {c} "))),
            "{c}:\n{text}"
        );
    }
    let out = atex_with(plugins.path(), &["plugin", "info", "junit"]);
    let text = stdout(&out);
    assert!(text.contains("options (-r junit:KEY=VALUE,...):"), "{text}");
    assert!(text.contains("\ncommands: none\n"), "{text}");

    // `atex plugins` says which plugins have commands.
    let out = atex_with(plugins.path(), &["plugins"]);
    let text = stdout(&out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}:\n{text}"))
            .to_string()
    };
    assert!(
        line("testing-farm").ends_with("commands: whoami, composes, requests, cancel"),
        "{text}"
    );
    assert!(line("podman").ends_with("commands: leftovers"), "{text}");
    assert!(!line("local").contains("commands:"), "{text}");
    let out = atex_with(plugins.path(), &["plugins", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let podman = doc["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "podman")
        .expect("podman");
    assert_eq!(podman["commands"], serde_json::json!(["leftovers"]));

    // An unknown plugin: one line naming it.
    let out = atex_with(plugins.path(), &["plugin", "info", "no-such-plugin"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("atex: no plugin `no-such-plugin` found"),
        "{}",
        stderr(&out)
    );

    // `atex run --help` points to it.
    let out = atex_with(plugins.path(), &["run", "--help"]);
    assert!(
        stdout(&out).contains("atex plugin info NAME"),
        "{}",
        stdout(&out)
    );
}

// ------------------------------------------ fixtures never beside plugins

/// `cargo build [--release] --workspace` builds the lib targets of the
/// workspace members into target/<profile>/, where `atex plugins` looks:
/// the only shared libraries among them must be the real plugins, and no
/// member may depend on a fixture (cargo makes path dependencies inside
/// the workspace members).
#[test]
fn test_fixtures_are_not_built_with_the_workspace() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(crate::toolbox::repo().join("Cargo.toml"))
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let members: Vec<&str> = doc["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    let packages = doc["packages"].as_array().expect("packages");
    let mut cdylibs: Vec<String> = packages
        .iter()
        .filter(|p| members.contains(&p["id"].as_str().unwrap_or_default()))
        .filter(|p| {
            p["targets"].as_array().is_some_and(|ts| {
                ts.iter().any(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
                })
            })
        })
        .map(|p| p["name"].as_str().unwrap_or_default().replace('-', "_"))
        .collect();
    cdylibs.sort();
    let mut expected: Vec<String> = FIRST_PARTY.iter().map(|(_, c)| c.to_string()).collect();
    expected.sort();
    assert_eq!(cdylibs, expected);
    // No fixture in the resolved graph of the workspace at all.
    for p in packages {
        let manifest = p["manifest_path"].as_str().unwrap_or_default();
        assert!(
            !manifest.contains("/tests/fixtures/"),
            "{manifest} is in the workspace graph"
        );
    }
    // And the fixtures the tests use are built elsewhere.
    let panicky = atex_integration_tests::plugin_lib("atex_fixture_panicky");
    assert!(
        panicky.starts_with(atex_integration_tests::fixture_target()),
        "{}",
        panicky.display()
    );
}
