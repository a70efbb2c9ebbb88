//! Helpers shared by the workspace integration tests: where the built
//! `atex` binary and plugin libraries are, and a temporary directory with
//! files in it.
//!
//! The test command builds the workspace (`cargo build --workspace`) before
//! running tests, so the binary and every plugin's `.so` are next to each
//! other in `target/<profile>/`. Plugins are also dev-dependencies of this
//! crate, so `target/<profile>/deps/` has them even after a bare
//! `cargo test`.

pub mod reserve;
pub mod ssh_hosts;
pub mod testing_farm_fake;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// `target/<profile>`, found from the running test executable
/// (`target/<profile>/deps/integration-…`), so `CARGO_TARGET_DIR` works.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a parent directory");
    deps.parent()
        .expect("deps has a parent directory")
        .to_path_buf()
}

/// The `atex` binary of this build.
pub fn atex_bin() -> PathBuf {
    let bin = profile_dir().join("atex");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace` before the tests",
        bin.display()
    );
    bin
}

/// The shared library of the plugin crate `crate_name` (e.g. `atex_local`).
///
/// Test fixtures (`atex_fixture_NAME`, from `tests/fixtures/NAME`) are not
/// part of the workspace, so that no build puts them beside the real
/// plugins; they are built here on first use, into [`fixture_target`].
pub fn plugin_lib(crate_name: &str) -> PathBuf {
    let file = format!(
        "{}{crate_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    if let Some(fixture) = crate_name.strip_prefix("atex_fixture_") {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(fixture.replace('_', "-"))
            .join("Cargo.toml");
        return cargo_build_fixture(&manifest).join(file);
    }
    for dir in [profile_dir(), profile_dir().join("deps")] {
        let path = dir.join(&file);
        if path.exists() {
            return path;
        }
    }
    panic!("{file} is missing: run `cargo build --workspace` before the tests");
}

/// One target directory for every build outside the workspace (fixtures,
/// the plugin template), so abi_stable and friends are compiled once.
pub fn fixture_target() -> PathBuf {
    profile_dir().join("atex-fixtures")
}

/// Builds the cargo project of `manifest` (debug) into [`fixture_target`]
/// and returns the directory holding its outputs. Each manifest is built
/// once per test process; cargo's lock orders builds of several processes.
pub fn cargo_build_fixture(manifest: &Path) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let out_dir = fixture_target().join("debug");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.iter().any(|m| m == manifest) {
        return out_dir;
    }
    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(fixture_target())
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    built.push(manifest.to_path_buf());
    out_dir
}

/// A directory holding exactly the given plugin libraries (as symlinks), to
/// use as `--plugin-dir` without picking up anything else.
pub fn plugin_dir_with(crate_names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("atex-plugins-")
        .tempdir()
        .expect("tempdir");
    for name in crate_names {
        let lib = plugin_lib(name);
        let link = dir.path().join(lib.file_name().expect("file name"));
        std::os::unix::fs::symlink(&lib, link).expect("symlink");
    }
    dir
}

/// Runs the `atex` binary with `args`, with no plugin search path from the
/// environment.
pub fn atex(args: &[&str]) -> Output {
    atex_in(None, args)
}

/// Runs the `atex` binary in `cwd`.
pub fn atex_in(cwd: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(atex_bin());
    cmd.args(args)
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG");
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    cmd.output().expect("run atex")
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary directory to put test files in.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDir {
    /// A fresh, empty directory.
    pub fn new() -> Self {
        TestDir {
            dir: tempfile::Builder::new()
                .prefix("atex-test-")
                .tempdir()
                .expect("tempdir"),
        }
    }
    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Writes `contents` to `rel`, creating parent directories.
    pub fn create(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create_dir_all");
        }
        std::fs::write(&path, contents).expect("write");
        path
    }
}

/// `tests/containers.conf` (runc, lowered ulimits), for podman in tests.
pub fn containers_conf() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/containers.conf").to_string()
}

/// `podman` with [`containers_conf`] in its environment.
pub fn podman() -> Command {
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", containers_conf());
    c
}

/// `podman ARGS`, run to its end.
pub fn podman_output(args: &[&str]) -> Output {
    podman().args(args).output().expect("run podman")
}

/// The JSON values of a JSON-lines file, one per line (panics naming the
/// file when it cannot be read).
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Builds a test image of `tests/images/build.sh` (`base`, `ssh`,
/// `systemd`, `beakerlib`) when it is missing; cached and idempotent.
pub fn ensure_image(kind: &str) {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/images/build.sh"))
        .arg(kind)
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("run tests/images/build.sh");
    assert!(
        out.status.success(),
        "build.sh {kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
