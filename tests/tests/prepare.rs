//! `prepare: suite`: the host hands a provisioner the packages its tests
//! need, and podman builds them into the image once. Real podman; the
//! image build installs from the Debian mirror the test image uses.

use std::{
    fs,
    path::Path,
    process::{Command, Output},
};

use atex_integration_tests::{
    TestDir, atex_bin, containers_conf, ensure_image, plugin_dir_with, podman_output as podman,
};
use atex_plugin_api::packages::PackageSet;

const IMAGE: &str = "localhost/atex-test:bookworm";

fn podman_out(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the image prepared for the test's package set at the end, so
/// that every test run builds it (and shows the build works) once.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = podman(&["rmi", "--force", &self.0]);
    }
}

/// Four tests that require `jq`, recommend `tree` and a package that does
/// not exist, and need `file` from the plan's prepare step.
fn suite(dir: &TestDir) {
    dir.create(".fmf/version", "1\n");
    dir.create(
        "plans.fmf",
        "/ci:\n    discover:\n        how: fmf\n    prepare:\n        how: install\n        package: [file]\n    execute:\n        how: tmt\n",
    );
    dir.create(
        "tests/main.fmf",
        "require: [jq]\nrecommend: [tree, atex-no-such-package]\nduration: 5m\n\
         test: jq --version && command -v tree && file --version\n\
         /a: {}\n/b: {}\n/c: {}\n/d: {}\n",
    );
}

fn run(dir: &Path, plugins: &Path, results: &str, provisioner: &str) -> Output {
    Command::new(atex_bin())
        .current_dir(dir)
        .args(["run", "--plan", "/plans/ci", "--plugin-dir"])
        .arg(plugins)
        .args([
            "-p",
            provisioner,
            "--workers",
            "2",
            "--results",
            results,
            "--plain",
        ])
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .output()
        .expect("run atex")
}

/// Status of each test's own result in a results directory.
fn statuses(results: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(results.join("results.jsonl")).unwrap_or_default();
    let mut out: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v[3].is_null())
        .map(|v| {
            (
                v[2].as_str().unwrap_or_default().to_string(),
                v[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn prepare_suite_builds_the_tests_packages_into_the_image_once() {
    ensure_image("base");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let dir = TestDir::new();
    suite(&dir);
    // The image as atex will derive it: the tests' require plus the plan's
    // install step, and their recommendations.
    let base_id = podman_out(&["image", "inspect", "--format", "{{.Id}}", IMAGE]);
    let base_id = base_id
        .strip_prefix("sha256:")
        .unwrap_or(&base_id)
        .to_string();
    let key = PackageSet::new(["jq", "file"])
        .with_recommended(["tree", "atex-no-such-package"])
        .key(&base_id);
    let tag = format!("localhost/atex-prepared:{key}");
    let _ = podman(&["rmi", "--force", &tag]);
    let _cleanup = RemoveImage(tag.clone());

    // Without network in the containers, a test can only find its
    // packages in the image: nothing is installed per test.
    let offline = format!("podman:image={IMAGE},max=2,run_options=--network=none");
    let without = run(dir.path(), plugins.path(), "without", &offline);
    let s = statuses(&dir.path().join("without"));
    assert_eq!(s.len(), 4, "{without:?}");
    assert!(
        s.iter().all(|(_, status)| status != "pass"),
        "without prepare the offline containers cannot have jq: {s:?}"
    );

    let prepared = format!("{offline},prepare=suite");
    let first = run(dir.path(), plugins.path(), "first", &prepared);
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    let s = statuses(&dir.path().join("first"));
    assert_eq!(s.len(), 4, "{s:?}");
    assert!(s.iter().all(|(_, status)| status == "pass"), "{s:?}");
    let built = podman_out(&["image", "inspect", "--format", "{{.Id}} {{.Created}}", &tag]);
    assert_eq!(
        podman_out(&[
            "image",
            "inspect",
            "--format",
            "{{index .Labels \"atex.base\"}}",
            &tag
        ]),
        IMAGE
    );

    // A second run reuses the cached image.
    let second = run(dir.path(), plugins.path(), "second", &prepared);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    assert_eq!(
        podman_out(&["image", "inspect", "--format", "{{.Id}} {{.Created}}", &tag]),
        built,
        "the second run built the image again"
    );
}
