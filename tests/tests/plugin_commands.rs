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
    atex_bin, containers_conf, ensure_image, plugin_dir_with, stderr, stdout,
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

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("run podman")
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
