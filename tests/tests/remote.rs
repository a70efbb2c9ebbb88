//! Tests and libraries from other git repositories, with real git: local
//! repositories reached through `file://` URLs and through `git daemon`
//! listening on 127.0.0.1 (a free port), and a private `XDG_CACHE_HOME`
//! per test.
//!
//! - a plan with two remote sections (a tag ref with a `path` inside the
//!   repository over the git protocol, a commit ref over `file://`) and
//!   one local section: the names `atex discover` lists, and an `atex
//!   run` on the local host where each test reads files by relative paths
//!   of its own repository and `$TMT_TREE` is the plan's tree;
//! - `summary.json` records the commit each section resolved to;
//! - a second run with the git daemon stopped works from the cache, and
//!   says nothing about an unreachable repository (it did not ask);
//! - an unknown ref and an unreachable URL are one line naming the plan
//!   and section, and leave no partial clone in the cache;
//! - `--url/--ref/--path` instead of a local root;
//! - a BeakerLib library with its own library dependency, through
//!   `library(repo/lib)` with `--library-url` and a `url` entry: laid out
//!   where `rlImport` finds it (checked with the local host), and
//!   `rlImport` itself on podman with the BeakerLib test image;
//! - the same names as `tmt run discover` (tmt from `TMT`, which
//!   `tests/run-all.sh` sets).

use std::{
    fs,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use atex_integration_tests::{
    TestDir, atex_bin, containers_conf, ensure_image, plugin_dir_with, stderr, stdout,
};

/// Runs git in `dir`, panicking with its stderr on failure; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=atex tests",
            "-c",
            "user.email=tests@atex.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git repository in `dir` with `files`, committed; returns the commit.
fn repo_with(dir: &Path, files: &[(&str, &str)]) -> String {
    fs::create_dir_all(dir).expect("mkdir");
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q"]);
    }
    commit(dir, files)
}

/// Adds `files` to the repository in `dir` and commits them.
fn commit(dir: &Path, files: &[(&str, &str)]) -> String {
    for (rel, text) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        if rel.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "change"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// `git daemon` serving every repository under `base` on 127.0.0.1.
struct GitDaemon {
    child: Option<Child>,
    port: u16,
}

impl GitDaemon {
    fn start(base: &Path) -> GitDaemon {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // `git daemon` would run `git-daemon` as a child of its own: run
        // that directly, so that killing it stops the server.
        let exec_path = git(Path::new("."), &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git daemon");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            thread::sleep(Duration::from_millis(50));
        }
        GitDaemon {
            child: Some(child),
            port,
        }
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }

    /// Stops the daemon; afterwards nothing listens on its port.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "git daemon still listens");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs atex with a private cache.
fn atex_cached(cache: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(atex_bin())
        .args(args)
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("ATEX_PLUGIN_PATH")
        .env_remove("RUST_LOG")
        .output()
        .expect("run atex")
}

/// Paths under `dir` whose name starts with `.tmp-`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with(".tmp-") {
            found.push(path.clone());
        }
        if path.is_dir() && !path.join(".git").exists() {
            found.extend(temporaries(&path));
        }
    }
    found
}

/// The repositories and the plan tree of the three-section plan.
struct Fixture {
    work: TestDir,
    daemon: GitDaemon,
    /// The commit of repository `b` its section names.
    b_commit: String,
    /// The commit tag `v1` of repository `a` points to.
    a_v1: String,
}

impl Fixture {
    fn new() -> Fixture {
        let work = TestDir::new();
        let served = work.path().join("served");
        // Repository a: the fmf root is `suite/`, a test reads a file
        // outside it by a relative path, tag v1 and a later commit.
        let a = served.join("a");
        repo_with(
            &a,
            &[
                ("common/data.txt", "from-common\n"),
                ("suite/.fmf/version", "1\n"),
                ("suite/smoke/main.fmf", "test: ./check.sh\n"),
                (
                    "suite/smoke/check.sh",
                    "#!/bin/bash\nset -e\ntest \"$(cat ../../common/data.txt)\" = from-common\n\
                     test \"$(cat local.txt)\" = smoke\ntest -f \"$TMT_TREE/plan-marker\"\n",
                ),
                ("suite/smoke/local.txt", "smoke\n"),
            ],
        );
        git(&a, &["tag", "-a", "v1", "-m", "v1"]);
        let a_v1 = git(&a, &["rev-parse", "v1^{commit}"]);
        commit(
            &a,
            &[(
                "suite/later/main.fmf",
                "test: echo pid1-start $(cut -d' ' -f22 /proc/1/stat)\n",
            )],
        );
        // Repository b: reached through file://, pinned to a commit.
        let b = work.path().join("b");
        let b_commit = repo_with(
            &b,
            &[
                (".fmf/version", "1\n"),
                ("one/main.fmf", "test: test \"$(cat data)\" = one-data\n"),
                ("one/data", "one-data\n"),
            ],
        );
        commit(&b, &[("two/main.fmf", "test: true\n")]);
        let daemon = GitDaemon::start(&served);
        let f = Fixture {
            work,
            daemon,
            b_commit,
            a_v1,
        };
        f.write_plan("plans/all.fmf", &f.a_url(), "v1", &f.b_commit.clone());
        f.work.create("tree/.fmf/version", "1\n");
        f.work.create("tree/plan-marker", "");
        f.work
            .create("tree/here/main.fmf", "test: test -f ../plan-marker\n");
        f
    }

    fn a_url(&self) -> String {
        self.daemon.url("a")
    }

    fn b_url(&self) -> String {
        format!("file://{}", self.work.path().join("b").display())
    }

    fn tree(&self) -> PathBuf {
        self.work.path().join("tree")
    }

    fn cache(&self) -> PathBuf {
        self.work.path().join("cache")
    }

    /// A plan with sections `a` (url_a at ref_a, path /suite), `b`
    /// (file:// at ref_b) and the local `here`.
    fn write_plan(&self, rel: &str, url_a: &str, ref_a: &str, ref_b: &str) {
        self.work.create(
            &format!("tree/{rel}"),
            &format!(
                "discover:\n  - name: a\n    how: fmf\n    url: {url_a}\n    ref: {ref_a}\n    path: /suite\n\
                 \x20 - name: b\n    how: fmf\n    url: {}\n    ref: {ref_b}\n\
                 \x20 - name: here\n    how: fmf\n    test: /here\n",
                self.b_url()
            ),
        );
    }

    fn atex(&self, args: &[&str]) -> Output {
        atex_cached(&self.cache(), &self.tree(), args)
    }
}

/// `atex run` of `/plans/all` on the local host into `results`.
fn run_all(f: &Fixture, plugin_dir: &str, results: &Path) -> Output {
    f.atex(&[
        "run",
        "--plan",
        "/plans/all",
        "--plugin-dir",
        plugin_dir,
        "--plain",
        "--results",
        results.to_str().expect("utf-8"),
    ])
}

const EXPECTED: &str = "/a/smoke\n/b/one\n/here/here\n";

#[test]
fn two_remote_sections_and_a_local_one() {
    let f = Fixture::new();
    let out = f.atex(&["discover", "--plan", "/plans/all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The tag's tree (no /a/later) and the pinned commit's (no /b/two).
    assert_eq!(stdout(&out), EXPECTED);

    let plugins = plugin_dir_with(&["atex_local"]);
    let pd = plugins.path().to_str().expect("utf-8");
    let results = f.work.path().join("results-1");
    let out = run_all(&f, pd, &results);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = fs::read_to_string(results.join("results.jsonl")).expect("results");
    for name in ["/a/smoke", "/b/one", "/here/here"] {
        assert!(
            lines.contains(&format!("\"pass\", \"{name}\"")),
            "{name} did not pass:\n{lines}"
        );
    }
    // The commit each section resolved to, for reproducing the run.
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(results.join("summary.json")).expect("summary"))
            .expect("json");
    let sources = summary["sources"].as_array().expect("sources");
    let commit_of = |name: &str| {
        sources
            .iter()
            .find(|s| s["name"] == name)
            .and_then(|s| s["commit"].as_str())
            .map(str::to_string)
    };
    assert_eq!(commit_of("a"), Some(f.a_v1.clone()), "{sources:?}");
    assert_eq!(commit_of("b"), Some(f.b_commit.clone()), "{sources:?}");
    assert!(sources.iter().all(|s| s["plan"] == "/plans/all"));

    // The server gone: the same plan runs from the cache, without asking
    // it (a tag resolved before and a commit are not looked up again).
    let mut f = f;
    f.daemon.stop();
    let out = f.atex(&["discover", "--plan", "/plans/all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), EXPECTED);
    assert!(!stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    let results = f.work.path().join("results-2");
    let out = run_all(&f, pd, &results);
    assert!(out.status.success(), "offline run: {}", stderr(&out));
    assert!(!stderr(&out).contains("cannot reach"), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(results.join("results.jsonl"))
            .expect("results")
            .matches("\"pass\"")
            .count(),
        3
    );
    assert!(temporaries(&f.cache()).is_empty());
}

#[test]
fn unknown_ref_and_unreachable_url_are_one_line() {
    let f = Fixture::new();
    f.write_plan("plans/badref.fmf", &f.a_url(), "no-such-tag", &f.b_commit);
    let out = f.atex(&["discover", "--plan", "/plans/badref"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("plan /plans/badref, discover section 'a'") && err.contains("no-such-tag"),
        "{err}"
    );
    // A port nothing listens on.
    let dead = {
        let mut d = GitDaemon::start(&f.work.path().join("served"));
        let url = d.url("a");
        d.stop();
        url
    };
    f.write_plan("plans/dead.fmf", &dead, "v1", &f.b_commit);
    let out = f.atex(&["discover", "--plan", "/plans/dead"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("plan /plans/dead, discover section 'a'") && err.contains(&dead),
        "{err}"
    );
    // A commit the repository does not have.
    f.write_plan(
        "plans/badcommit.fmf",
        &f.a_url(),
        "v1",
        "0123456789abcdef0123456789abcdef01234567",
    );
    let out = f.atex(&["discover", "--plan", "/plans/badcommit"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("discover section 'b'"), "{err}");
    assert!(temporaries(&f.cache()).is_empty(), "partial clones left");
}

#[test]
fn fmf_id_on_the_command_line() {
    let f = Fixture::new();
    let url = f.a_url();
    let out = f.atex(&["discover", "--url", &url, "--ref", "v1", "--path", "/suite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/smoke\n");
    // The default branch has the later test too.
    let out = f.atex(&["discover", "--url", &url, "--path", "suite"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/later\n/smoke\n");
    // And from a configuration file, run on the local host.
    let plugins = plugin_dir_with(&["atex_local"]);
    f.work.create(
        "tree/atex.yaml",
        &format!(
            "fmf-id: {{url: '{}', ref: '{}'}}\nresults: out\nplugin-dirs: ['{}']\n",
            f.b_url(),
            f.b_commit,
            plugins.path().display()
        ),
    );
    let out = f.atex(&["run", "--config", "atex.yaml", "--plain"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = fs::read_to_string(f.tree().join("out/results.jsonl")).expect("results");
    assert!(lines.contains("\"pass\", \"/one\""), "{lines}");
    assert!(!lines.contains("/two"), "{lines}");
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(f.tree().join("out/summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["sources"][0]["kind"], "root", "{summary}");
    assert_eq!(summary["sources"][0]["commit"], f.b_commit.as_str());
}

/// Two library repositories: `certgen` (library `/certgen`, which
/// requires `library(helpers/log)`) and `helpers` (library `/log`).
fn library_repos(dir: &Path) -> (String, String) {
    let helpers = dir.join("mirror/helpers");
    repo_with(
        &helpers,
        &[
            (".fmf/version", "1\n"),
            ("log/main.fmf", "summary: logging helper\n"),
            (
                "log/lib.sh",
                "#!/bin/bash\n# library-prefix = log\nlogLibraryLoaded() { return 0; }\nlog_hello() { echo hello-from-log; }\n",
            ),
        ],
    );
    let certgen = dir.join("certgen");
    repo_with(
        &certgen,
        &[
            (".fmf/version", "1\n"),
            (
                "certgen/main.fmf",
                "summary: certificates\nrequire:\n  - library(helpers/log)\n",
            ),
            (
                "certgen/lib.sh",
                "#!/bin/bash\n# library-prefix = certgen\ncertgenLibraryLoaded() { return 0; }\ncertgen_hello() { echo hello-from-certgen; }\n",
            ),
        ],
    );
    (
        format!("file://{}", certgen.display()),
        format!("file://{}/mirror/{{repository}}", dir.display()),
    )
}

#[test]
fn a_library_with_its_own_library_is_laid_out_for_rlimport() {
    let work = TestDir::new();
    let (certgen_url, template) = library_repos(work.path());
    work.create("tree/.fmf/version", "1\n");
    // Without BeakerLib: the libraries are where rlImport looks, under
    // $BEAKERLIB_LIBRARY_PATH, as `libs/<repo>/<name>/lib.sh`.
    work.create(
        "tree/t/main.fmf",
        &format!(
            "test: |\n  set -e\n  for root in ${{BEAKERLIB_LIBRARY_PATH//:/ }}; do\n    \
             if [ -f $root/libs/certgen/certgen/lib.sh ]; then found=$root; fi\n  done\n  \
             . $found/libs/certgen/certgen/lib.sh && certgen_hello\n  \
             . $found/libs/helpers/log/lib.sh && log_hello\n\
             require:\n  - url: {certgen_url}\n    name: /certgen\n"
        ),
    );
    let tree = work.path().join("tree");
    let cache = work.path().join("cache");
    let plugins = plugin_dir_with(&["atex_local"]);
    let out = atex_cached(
        &cache,
        &tree,
        &[
            "run",
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "--library-url",
            &template,
            "--plain",
            "--results",
            "out",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let output = fs::read_to_string(tree.join("out/files/local/t/output.txt"))
        .or_else(|_| {
            let found = walk(&tree.join("out/files"), "output.txt");
            fs::read_to_string(found.expect("output.txt"))
        })
        .expect("output");
    assert!(output.contains("hello-from-certgen"), "{output}");
    assert!(output.contains("hello-from-log"), "{output}");
    let summary = fs::read_to_string(tree.join("out/summary.json")).expect("summary");
    assert!(summary.contains("\"kind\": \"library\""), "{summary}");
    assert!(summary.contains("helpers"), "{summary}");
}

fn walk(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(found) = walk(&p, name) {
                return Some(found);
            }
        } else if e.file_name() == name {
            return Some(p);
        }
    }
    None
}

/// `rlImport` with BeakerLib on podman: a BeakerLib test of a remote
/// section imports a library (and, through `--all`, the library's own).
#[test]
fn rlimport_on_podman() {
    ensure_image("beakerlib");
    let work = TestDir::new();
    let (certgen_url, template) = library_repos(work.path());
    let suite = work.path().join("suite");
    repo_with(
        &suite,
        &[
            (".fmf/version", "1\n"),
            (
                "bl/main.fmf",
                &format!(
                    "test: ./runtest.sh\nframework: beakerlib\nrequire:\n  - url: {certgen_url}\n    name: /certgen\n"
                ),
            ),
            (
                "bl/runtest.sh",
                "#!/bin/bash\n. /usr/share/beakerlib/beakerlib.sh || exit 1\nrlJournalStart\n  rlPhaseStartSetup\n    \
                 rlRun 'rlImport --all' 0 'the libraries the metadata lists, and theirs'\n    \
                 rlRun 'rlImport certgen/certgen' 0 'import by name'\n    rlRun 'rlImport helpers/log' 0 'its dependency'\n    \
                 rlRun 'certgen_hello | grep hello-from-certgen'\n    rlRun 'log_hello | grep hello-from-log'\n  rlPhaseEnd\n\
                 rlJournalEnd\nrlGetTestState\n",
            ),
        ],
    );
    work.create("tree/.fmf/version", "1\n");
    work.create(
        "tree/plan.fmf",
        &format!(
            "discover:\n  - name: remote\n    how: fmf\n    url: file://{}\n",
            suite.display()
        ),
    );
    let tree = work.path().join("tree");
    let plugins = plugin_dir_with(&["atex_podman"]);
    let out = Command::new(atex_bin())
        .args([
            "run",
            "--plan",
            "/plan",
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "-p",
            "podman:image=localhost/atex-test-beakerlib:bookworm",
            "--library-url",
            &template,
            "--plain",
            "--results",
            "out",
        ])
        .current_dir(&tree)
        .env("XDG_CACHE_HOME", work.path().join("cache"))
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .output()
        .expect("run atex");
    let output = walk(&tree.join("out/files"), "output.txt")
        .and_then(|p| fs::read_to_string(p).ok())
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "{}\n--- output.txt ---\n{output}",
        stderr(&out)
    );
    assert!(output.contains("hello-from-certgen"), "{output}");
    assert!(output.contains("hello-from-log"), "{output}");
    for what in [
        "the libraries the metadata lists",
        "import by name",
        "its dependency",
    ] {
        assert!(
            output
                .lines()
                .any(|l| l.contains("PASS") && l.contains(what)),
            "no passing rlRun '{what}':\n{output}"
        );
    }
}

/// tmt, when installed (`$TMT`, else `tmt` on PATH; `pip install tmt`).
fn tmt_command() -> Option<PathBuf> {
    let tmt = std::env::var_os("TMT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("tmt"));
    Command::new(&tmt)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| tmt)
}

/// The test names of a `tests.yaml` tmt's discover step wrote: the
/// `name` of each top-level list item.
fn tmt_names(tests_yaml: &Path) -> String {
    let text = fs::read_to_string(tests_yaml).expect("tests.yaml");
    let mut names = String::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("- name: ")
            .or_else(|| line.strip_prefix("  name: "))
        {
            names.push_str(name.trim_matches('\''));
            names.push('\n');
        }
    }
    names
}

/// `tmt run discover` on the three-section plan lists the tests atex
/// lists, with the same names. Needs tmt: `tests/run-all.sh` installs it
/// into a virtualenv and sets `TMT`.
#[test]
fn same_names_as_tmt() {
    let tmt = tmt_command().expect("tmt is not installed (pip install tmt, or set TMT)");
    let f = Fixture::new();
    // tmt takes a node with `execute` for a plan.
    let plan = fs::read_to_string(f.tree().join("plans/all.fmf")).expect("plan");
    f.work.create(
        "tree/plans/all.fmf",
        &format!("{plan}execute:\n    how: tmt\n"),
    );
    let out = f.atex(&["discover", "--plan", "/plans/all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), EXPECTED);
    let workdir = f.work.path().join("tmt-run");
    let run = Command::new(&tmt)
        .args(["run", "--scratch", "-i"])
        .arg(&workdir)
        .args(["discover", "plan", "--name", "^/plans/all$"])
        .current_dir(f.tree())
        .env("TMT_WORKDIR_ROOT", f.work.path())
        .output()
        .expect("run tmt");
    assert!(
        run.status.success(),
        "tmt: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let names = tmt_names(&workdir.join("plans/all/discover/tests.yaml"));
    assert_eq!(names, stdout(&out), "tmt's names, then atex's");
}

/// Seconds since boot (`/proc/uptime`), the clock `/proc/<pid>/stat`
/// start times count in, inside containers too.
fn uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .expect("/proc/uptime")
}

/// A TCP proxy to `port` on 127.0.0.1 that waits `delay` before passing
/// each connection on (a slow git server); records when each connection
/// ended, in [`uptime`] seconds.
fn slow_proxy(port: u16, delay: Duration) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<f64>>>) {
    use std::io::copy;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let own = listener.local_addr().expect("addr").port();
    let ended = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&ended);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let record = std::sync::Arc::clone(&record);
            thread::spawn(move || {
                thread::sleep(delay);
                let Ok(upstream) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                let (Ok(mut a), Ok(mut b)) = (conn.try_clone(), upstream.try_clone()) else {
                    return;
                };
                let (mut conn, mut upstream) = (conn, upstream);
                let there = thread::spawn(move || {
                    let _ = copy(&mut a, &mut upstream);
                    let _ = upstream.shutdown(std::net::Shutdown::Write);
                });
                let _ = copy(&mut b, &mut conn);
                let _ = there.join();
                record.lock().expect("record").push(uptime());
            });
        }
    });
    (own, ended)
}

/// Systems start while repositories are fetched: with a git server that
/// takes 10 s to answer, the podman container running the remote
/// section's test was started before the fetch ended.
#[test]
fn systems_start_while_repositories_are_fetched() {
    ensure_image("base");
    let f = Fixture::new();
    let (port, ended) = slow_proxy(f.daemon.port, Duration::from_secs(10));
    let a = f.work.path().join("served/a");
    let head = git(&a, &["rev-parse", "HEAD"]);
    f.work.create(
        "tree/plans/slow.fmf",
        &format!(
            "discover:\n    how: fmf\n    url: git://127.0.0.1:{port}/a\n    ref: {head}\n    path: /suite\n    test: /later\n"
        ),
    );
    // The later test prints when its container's first process started.
    let plugins = plugin_dir_with(&["atex_podman"]);
    let before = uptime();
    let out = Command::new(atex_bin())
        .args([
            "run",
            "--plan",
            "/plans/slow",
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "-p",
            "podman:image=localhost/atex-test:bookworm",
            "--plain",
            "--results",
            "out",
        ])
        .current_dir(f.tree())
        .env("XDG_CACHE_HOME", f.cache())
        .env("CONTAINERS_CONF", containers_conf())
        .env_remove("ATEX_PLUGIN_PATH")
        .output()
        .expect("run atex");
    assert!(out.status.success(), "{}", stderr(&out));
    let fetched = ended
        .lock()
        .expect("ended")
        .iter()
        .copied()
        .fold(0.0, f64::max);
    assert!(fetched - before >= 10.0, "the fetch was not delayed");
    // The container's pid 1 start time, in clock ticks since boot.
    let probe = Command::new("podman")
        .args([
            "run",
            "--rm",
            "localhost/atex-test:bookworm",
            "getconf",
            "CLK_TCK",
        ])
        .env("CONTAINERS_CONF", containers_conf())
        .output()
        .expect("podman run");
    let ticks: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0);
    let output = walk(&f.tree().join("out/files"), "output.txt")
        .and_then(|p| fs::read_to_string(p).ok())
        .unwrap_or_default();
    let started: f64 = output
        .lines()
        .find_map(|l| l.strip_prefix("pid1-start "))
        .and_then(|v| v.trim().parse().ok())
        .map(|t: f64| t / ticks)
        .unwrap_or_else(|| panic!("no start time in the output:\n{output}"));
    assert!(
        started > before && started < fetched,
        "the container started {:.1} s after the run began, the fetch ended after {:.1} s",
        started - before,
        fetched - before
    );
}
