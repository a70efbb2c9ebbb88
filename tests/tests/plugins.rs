//! Loading plugins for real: the workspace's own plugins pass the
//! conformance suite, and bad files are refused with one line.

use std::time::Duration;

use atex::{
    backend::{Provisioner, Reporter},
    plugins::{PluginHost, PluginRegistry, conformance, load_plugin},
};
use atex_integration_tests::{atex, plugin_dir_with, plugin_lib, stderr, stdout};

/// Every plugin crate of the workspace, by library name.
const WORKSPACE_PLUGINS: &[&str] = &["atex_local", "atex_junit", "atex_html", "atex_podman"];

#[test]
fn atex_plugins_lists_local() {
    let dir = plugin_dir_with(WORKSPACE_PLUGINS);
    let out = atex(&[
        "plugins",
        "--plugin-dir",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("local "))
        .unwrap_or_else(|| panic!("no `local` in:\n{text}"));
    assert!(
        line.contains("provisioner") && line.contains("api 0.1."),
        "{line}"
    );
}

#[test]
fn atex_plugins_json_lists_kinds_and_refusals() {
    let dir = plugin_dir_with(&["atex_local"]);
    std::fs::write(dir.path().join("libbroken.so"), "not an ELF file").expect("write");
    let out = atex(&[
        "plugins",
        "--json",
        "--plugin-dir",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let local = doc["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "local")
        .expect("local");
    assert_eq!(local["kinds"], serde_json::json!(["provisioner"]));
    assert_eq!(local["api_version"], atex_plugin_api::API_VERSION);
    // The executable's own directory is searched too; keep to ours.
    let refused: Vec<_> = doc["refused"]
        .as_array()
        .expect("refused")
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.starts_with(dir.path().to_str().expect("utf-8")))
        })
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let reason = refused[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("libbroken.so") && !reason.contains('\n'),
        "{reason}"
    );
}

#[test]
fn every_workspace_plugin_passes_the_conformance_suite() {
    for name in WORKSPACE_PLUGINS {
        let lib = plugin_lib(name);
        let out = atex(&[
            "plugin",
            "check",
            lib.to_str().expect("utf-8"),
            "--timeout",
            "60",
        ]);
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{name} failed the conformance suite:\n{text}\n{}",
            stderr(&out)
        );
        let last = text.lines().last().unwrap_or_default();
        assert!(last.ends_with(" passed, 0 failed"), "{last}");
        assert!(!text.contains("FAIL"), "{text}");
    }
}

#[test]
fn a_system_library_is_refused_with_one_line() {
    let libz = [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("a system shared library");
    let out = atex(&["plugin", "check", libz]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected:\n{err}"
    );
    assert!(
        err.contains(libz) && err.contains("not an atex plugin"),
        "{err}"
    );
    assert!(!err.to_lowercase().contains("abi_stable"), "{err}");
}

#[test]
fn a_panicking_plugin_becomes_an_error_not_a_crash() {
    let plugin = load_plugin(&plugin_lib("atex_fixture_panicky")).expect("loads");
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("test", tmp.path());

    let prov = plugin.new_provisioner(&host, "").expect("constructs");
    prov.start().expect("starts");
    // provision() cannot return an error: the panic is logged and swallowed.
    prov.provision(1);
    let err = prov
        .get_remote(Duration::from_millis(10))
        .err()
        .expect("get_remote must fail");
    assert!(err.panicked, "{err}");
    assert_eq!(err.kind, Some(atex::backend::ErrorKind::PANIC));
    assert!(
        err.to_string().contains("fixture panic in get_remote"),
        "{err}"
    );
    assert_eq!(err.to_string().lines().count(), 1);
    prov.stop().expect("stops");

    let err = plugin
        .new_reporter(&host, "")
        .err()
        .expect("constructor must fail");
    assert!(
        err.panicked
            && err
                .to_string()
                .contains("fixture panic in the reporter constructor"),
        "{err}"
    );
}

#[test]
fn plugin_check_reports_a_panicking_plugin_and_exits_1() {
    let lib = plugin_lib("atex_fixture_panicky");
    let out = atex(&[
        "plugin",
        "check",
        lib.to_str().expect("utf-8"),
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("FAIL") && text.contains("plugin panicked"),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap_or_default().contains(" failed"),
        "{text}"
    );
}

#[test]
fn the_conformance_suite_catches_a_provisioner_that_accepts_bad_config() {
    // The panicky fixture ignores its configuration, so the bad-config
    // checks must fail for it: the suite is not a rubber stamp.
    let mut lines = Vec::new();
    let outcomes = conformance::check_library(
        &plugin_lib("atex_fixture_panicky"),
        &conformance::CheckOptions {
            remote_timeout: Duration::from_millis(10),
            ..Default::default()
        },
        &mut |o| lines.push(o.name.clone()),
    )
    .expect("loads");
    let bad_config: Vec<_> = outcomes
        .iter()
        .filter(|o| o.name.starts_with("bad configuration"))
        .collect();
    assert!(!bad_config.is_empty());
    assert!(bad_config.iter().any(|o| !o.passed), "{bad_config:?}");
    assert_eq!(lines.len(), outcomes.len());
}

#[test]
fn registry_prefers_the_first_directory() {
    let first = plugin_dir_with(&["atex_local"]);
    let second = plugin_dir_with(&["atex_local"]);
    let registry =
        PluginRegistry::discover(&[first.path().to_path_buf(), second.path().to_path_buf()]);
    let local = registry.get("local").expect("local");
    assert!(local.description().path.starts_with(first.path()));
    assert_eq!(registry.refused().len(), 1);
    assert!(registry.refused()[0].to_string().contains("shadowed"));
    // The reporter side of the adapters is exercised by the reporter plugins.
    let _: Option<&dyn Reporter> = None;
}

#[test]
fn a_plugin_error_keeps_its_kind() {
    let plugin = load_plugin(&plugin_lib("atex_local")).expect("loads");
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new("test", tmp.path());
    let err = plugin
        .new_provisioner(&host, "max: not-a-number\n")
        .err()
        .expect("bad configuration must fail");
    assert_eq!(err.kind, Some(atex::backend::ErrorKind::CONFIG), "{err}");
    assert!(!err.panicked);
}
