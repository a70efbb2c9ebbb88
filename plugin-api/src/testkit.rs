//! Test support for plugin authors (cargo feature `testkit`).
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! atex-plugin-api = { version = "0.1", features = ["testkit"] }
//! ```
//!
//! - [`null_context`]: a [`PluginContext`] as the host would build it, with
//!   host services that drop logs and progress and never cancel, so a test
//!   calls a plugin's constructor directly.
//! - [`SyntheticRun`]: a results directory in a temporary directory and a
//!   fixed sequence of files appearing and results landing, to
//!   [`feed`](SyntheticRun::feed) into a reporter.
//!   [`SyntheticRun::golden`] is the run atex's own golden files are made
//!   from; [`SyntheticRun::nasty`] has every status and every character a
//!   report format can choke on, in names, notes, systems and logs;
//!   [`SyntheticRun::ended`] says why tests ended (`reason`) and has tests
//!   that never ran (`not_run`).
//! - [`ReporterHarness`]: a reporter's constructor with option text, a
//!   run fed into it, and the refusal of bad options.
//! - [`check_golden`]: compares output with a golden file, or rewrites it
//!   with `ATEX_BLESS=1`.
//!
//! Everything here panics on failure, as test code does.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RStr},
};

use crate::{
    HostContext, HostServices, HostServices_TO, LogLevel, PluginError, ProgressEvent, Status,
    sdk::{PluginContext, ReporterImpl},
    view::{ResultView, SummaryView},
};

/// Host services that drop everything and never cancel.
#[derive(Clone)]
struct NullHost;

impl HostServices for NullHost {
    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}
    fn is_cancelled(&self) -> bool {
        false
    }
    fn progress(&self, _event: &ProgressEvent) {}
}

/// A plugin context as the host would build it for `plugin` with the
/// options `config` (YAML), in run `run-golden`, writing into `work_dir`.
pub fn null_context(plugin: &str, config: &str, work_dir: &Path) -> PluginContext {
    PluginContext::new(HostContext {
        services: HostServices_TO::from_ptr(RArc::new(NullHost), TD_Opaque),
        config: config.into(),
        plugin_name: plugin.into(),
        run_id: "run-golden".into(),
        work_dir: work_dir.to_string_lossy().as_ref().into(),
    })
}

/// A reporter plugin's constructor under test: builds it with
/// [`null_context`] from option text, runs it, and collects refusals.
///
/// ```ignore
/// const JUNIT: ReporterHarness<JunitReporter> = ReporterHarness::new("junit", atex_junit::new);
/// let (run, path, text) = JUNIT.render(SyntheticRun::golden(), "max_output_bytes: 2048");
/// ```
pub struct ReporterHarness<R> {
    plugin: &'static str,
    make: fn(PluginContext) -> Result<R, PluginError>,
}

impl<R: ReporterImpl> ReporterHarness<R> {
    /// The plugin called `plugin`, made by `make` (what it exports).
    pub const fn new(
        plugin: &'static str,
        make: fn(PluginContext) -> Result<R, PluginError>,
    ) -> Self {
        ReporterHarness { plugin, make }
    }

    /// Constructs the reporter with the options `config` (YAML) and
    /// `work_dir` as its directory.
    pub fn construct(&self, config: &str, work_dir: &Path) -> Result<R, PluginError> {
        (self.make)(null_context(self.plugin, config, work_dir))
    }

    /// Constructs the reporter in the run's results directory, plays the
    /// run into it ([`SyntheticRun::feed_to_file`]) and returns the run,
    /// the one file written and its text.
    pub fn render(&self, run: SyntheticRun, config: &str) -> (SyntheticRun, PathBuf, String) {
        let mut rep = self
            .construct(config, run.results_dir())
            .expect("construct");
        let (path, text) = run.feed_to_file(&mut rep);
        (run, path, text)
    }

    /// The error constructing with `config` gives; panics if it succeeds.
    pub fn refusal(&self, config: &str) -> PluginError {
        let dir = tempfile::tempdir().expect("tempdir");
        match self.construct(config, dir.path()) {
            Ok(_) => panic!("{}: options {config:?} were accepted", self.plugin),
            Err(e) => e,
        }
    }
}

/// When every synthetic run starts: 2026-01-02T03:04:05Z.
pub const RUN_START_MS: u64 = 1_767_323_045_000;

/// One step of a synthetic run.
pub enum Step {
    /// A file appears (or is overwritten), relative to the results
    /// directory.
    File(String, Vec<u8>),
    /// A result lands.
    Result(Box<ResultView>),
}

/// A result to build with [`result`]; fields not given take the
/// [`Default`]: a `pass` of `/` on `debian-12` by `local-1`, attempt 1 of
/// 1, one second long, at the start of the run.
#[derive(Debug, Clone)]
pub struct ResultSpec<'a> {
    /// Platform.
    pub platform: &'a str,
    /// Test name.
    pub test: &'a str,
    /// Sub-result name.
    pub sub: Option<&'a str>,
    /// Status word (parsed with [`Status::parse`]).
    pub status: &'a str,
    /// Note.
    pub note: Option<&'a str>,
    /// Files, relative to the results directory.
    pub files: &'a [&'a str],
    /// Start, in seconds after [`RUN_START_MS`].
    pub start_s: u64,
    /// Duration in ms.
    pub dur_ms: u64,
    /// Attempt number.
    pub attempt: u32,
    /// Whether it is the last attempt.
    pub final_attempt: bool,
    /// System that ran it.
    pub remote: &'a str,
    /// Extra keys, a JSON object text.
    pub extra: &'a str,
}

impl Default for ResultSpec<'_> {
    fn default() -> Self {
        ResultSpec {
            platform: "debian-12",
            test: "/",
            sub: None,
            status: "pass",
            note: None,
            files: &[],
            start_s: 0,
            dur_ms: 1000,
            attempt: 1,
            final_attempt: true,
            remote: "local-1",
            extra: "{}",
        }
    }
}

/// The result `r` describes, in the results directory `dir`.
pub fn result(dir: &Path, r: ResultSpec<'_>) -> ResultView {
    ResultView {
        platform: r.platform.to_string(),
        test: r.test.to_string(),
        subtest: r.sub.map(str::to_string),
        status: Status::parse(r.status),
        note: r.note.map(str::to_string),
        files: r.files.iter().map(|f| f.to_string()).collect(),
        results_dir: dir.to_path_buf(),
        started_unix_ms: RUN_START_MS + r.start_s * 1000,
        duration_ms: r.dur_ms,
        attempt: r.attempt,
        final_attempt: r.final_attempt,
        remote: r.remote.to_string(),
        extra_json: r.extra.to_string(),
    }
}

/// A deterministic log of about `size` bytes with numbered lines.
pub fn big_log(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 100);
    let mut i = 0;
    while out.len() < size {
        out.extend_from_slice(
            format!("line {i:07}: the quick brown fox jumps over the lazy dog\n").as_bytes(),
        );
        i += 1;
    }
    out
}

/// A fixed run in a temporary results directory (removed when dropped).
pub struct SyntheticRun {
    /// The results directory.
    pub dir: tempfile::TempDir,
    /// What happens, in order.
    pub steps: Vec<Step>,
    /// What the host hands to `finish`.
    pub summary: SummaryView,
}

/// Builds the steps of a run.
struct Builder {
    dir: PathBuf,
    steps: Vec<Step>,
}

impl Builder {
    fn file(&mut self, rel: &str, bytes: &[u8]) {
        self.steps.push(Step::File(rel.to_string(), bytes.to_vec()));
    }
    fn result(&mut self, r: ResultSpec<'_>) {
        self.steps
            .push(Step::Result(Box::new(result(&self.dir, r))));
    }
}

impl SyntheticRun {
    fn build(make: impl FnOnce(&mut Builder)) -> (tempfile::TempDir, Vec<Step>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut b = Builder {
            dir: dir.path().to_path_buf(),
            steps: Vec::new(),
        };
        make(&mut b);
        (dir, b.steps)
    }

    fn summary(
        dir: &Path,
        duration_ms: u64,
        tests_total: u64,
        counts: &[(&str, u64)],
    ) -> SummaryView {
        SummaryView {
            run_id: "run-golden".into(),
            results_dir: dir.to_path_buf(),
            started_unix_ms: RUN_START_MS,
            duration_ms,
            tests_total,
            counts: counts.iter().map(|(s, c)| (Status::parse(s), *c)).collect(),
            interrupted: false,
            extra_json: "{}".into(),
        }
    }

    /// The run atex's golden report files are made from: pass, fail,
    /// error, skip, infra, warn, info (as a sub-result) and a custom
    /// status, sub-results, a flaky and an always-failing rerun, characters
    /// XML forbids and ANSI escapes in a note and a log, a 1 MiB log, two
    /// platforms. Do not change it without regenerating those files.
    pub fn golden() -> SyntheticRun {
        let (dir, steps) = Self::build(golden_steps);
        let summary = Self::summary(
            dir.path(),
            754_321,
            13,
            &[
                ("error", 1),
                ("fail", 4),
                ("infra", 1),
                ("pass", 2),
                ("skip", 1),
                ("timeout", 1),
                ("warn", 1),
            ],
        );
        SyntheticRun {
            dir,
            steps,
            summary,
        }
    }

    /// A run made to break report writers: a test-level result of every
    /// [`Status`] and of an unknown word (`custom-word`) and an upper-case
    /// one (`FAIL`); test, sub-result, system and extra-key names and notes
    /// with `<&>"'`, `]]>`, control characters, ANSI escapes, characters
    /// XML forbids and non-ASCII text; a test with only sub-results; and a
    /// test rerun three times (`infra`, `error`, then `pass`), each attempt
    /// overwriting its log.
    pub fn nasty() -> SyntheticRun {
        let (dir, steps) = Self::build(nasty_steps);
        let summary = Self::summary(
            dir.path(),
            99_000,
            NASTY_TESTS,
            &[
                ("pass", 3),
                ("info", 1),
                ("skip", 1),
                ("warn", 1),
                ("fail", 3),
                ("error", 1),
                ("infra", 1),
                ("custom-word", 1),
            ],
        );
        SyntheticRun {
            dir,
            steps,
            summary,
        }
    }

    /// A run that says why tests ended, on two platforms (`debian-12`,
    /// `fedora-41`): `reason` keys (`exit code 3` on a test that printed
    /// nothing, `timed out after 5m` with a long log, `killed by signal 9
    /// (SIGKILL)`), a failure from an older atex with only a note, tests
    /// named `/t1`, `/t2`, `/t10` (natural order), a passing test with a
    /// `warn` sub-result, and [`ENDED_NOT_RUN`] tests that never ran
    /// (`skip`, attempt 0, `"not_run": true`, `not run: --max-fail 3
    /// reached`). [`ENDED_JOBS`] jobs in all.
    pub fn ended() -> SyntheticRun {
        let (dir, steps) = Self::build(ended_steps);
        let summary = Self::summary(
            dir.path(),
            321_000,
            ENDED_JOBS,
            &[("fail", 4), ("infra", 1), ("pass", 7)],
        );
        SyntheticRun {
            dir,
            steps,
            summary,
        }
    }

    /// The results directory.
    pub fn results_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The results, in the order they land.
    pub fn results(&self) -> impl Iterator<Item = &ResultView> {
        self.steps.iter().filter_map(|s| match s {
            Step::Result(r) => Some(&**r),
            Step::File(..) => None,
        })
    }

    /// Plays the run into a reporter and finishes it; returns what
    /// `finish` returned.
    pub fn feed(&self, rep: &mut dyn ReporterImpl) -> Vec<PathBuf> {
        for step in &self.steps {
            match step {
                Step::File(rel, bytes) => {
                    let p = self.dir.path().join(rel);
                    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&p, bytes).expect("write result file");
                }
                Step::Result(r) => rep.on_result(r).expect("on_result"),
            }
        }
        rep.finish(&self.summary).expect("finish")
    }

    /// Plays the run into a reporter that writes one file; checks that
    /// `finish` returned exactly one path and that the file exists, and
    /// returns the path and the file's text.
    pub fn feed_to_file(&self, rep: &mut dyn ReporterImpl) -> (PathBuf, String) {
        let paths = self.feed(rep);
        let [path] = <[PathBuf; 1]>::try_from(paths.clone())
            .unwrap_or_else(|_| panic!("finish returned {paths:?}, not one file"));
        assert!(
            path.is_file(),
            "finish returned {}, which does not exist",
            path.display()
        );
        let text = std::fs::read_to_string(&path).expect("read the report");
        (path, text)
    }
}

fn golden_steps(b: &mut Builder) {
    let p2 = "rhel-9.6@x86_64";
    // A plain pass.
    b.file(
        "files/debian-12/tests/login/basic/output.txt",
        b"logging in as alice\nok\n",
    );
    b.result(ResultSpec {
        test: "/tests/login/basic",
        files: &["files/debian-12/tests/login/basic/output.txt"],
        start_s: 1,
        dur_ms: 1234,
        extra: r#"{"tmt_id": "f00d", "priority": 3}"#,
        ..ResultSpec::default()
    });
    // A failure with coloured output.
    b.file(
        "files/debian-12/tests/login/bad-password/output.txt",
        b"\x1b[1mPOST /login\x1b[0m\n\x1b[31mexpected 401, got 200\x1b[0m\n",
    );
    b.result(ResultSpec {
        test: "/tests/login/bad-password",
        status: "fail",
        note: Some("expected 401, got 200\nsee output.txt"),
        files: &["files/debian-12/tests/login/bad-password/output.txt"],
        start_s: 2,
        dur_ms: 2500,
        remote: "local-2",
        ..ResultSpec::default()
    });
    // An error.
    b.file(
        "files/debian-12/tests/network/dns/output.txt",
        b"./test.sh: line 3: syntax error\n",
    );
    b.result(ResultSpec {
        test: "/tests/network/dns",
        status: "error",
        note: Some("test exited with 2"),
        files: &["files/debian-12/tests/network/dns/output.txt"],
        start_s: 3,
        dur_ms: 40,
        ..ResultSpec::default()
    });
    // A skip, without files.
    b.result(ResultSpec {
        test: "/tests/storage/lvm",
        status: "skip",
        note: Some("needs a second disk"),
        start_s: 4,
        dur_ms: 5,
        ..ResultSpec::default()
    });
    // Infrastructure trouble.
    b.file(
        "files/debian-12/tests/storage/nfs/output.txt",
        b"mounting...\n",
    );
    b.result(ResultSpec {
        test: "/tests/storage/nfs",
        status: "infra",
        note: Some("TestAbortedError(test duration timeout reached)"),
        files: &["files/debian-12/tests/storage/nfs/output.txt"],
        start_s: 5,
        dur_ms: 300_000,
        remote: "local-3",
        ..ResultSpec::default()
    });
    // Sub-results (they arrive before the test's own result).
    b.file(
        "files/debian-12/tests/suite/multi/check-a.log",
        b"a: mismatch in /etc/passwd\n",
    );
    b.file(
        "files/debian-12/tests/suite/multi/output.txt",
        b"running 4 checks\n",
    );
    for (sub, status, note, files) in [
        ("setup", "pass", None, &[][..]),
        (
            "check-a",
            "fail",
            Some("mismatch in /etc/passwd"),
            &["files/debian-12/tests/suite/multi/check-a.log"][..],
        ),
        ("check-b", "pass", None, &[][..]),
        ("note", "info", Some("ran with SELinux permissive"), &[][..]),
    ] {
        b.result(ResultSpec {
            test: "/tests/suite/multi",
            sub: Some(sub),
            status,
            note,
            files,
            start_s: 6,
            dur_ms: 100,
            ..ResultSpec::default()
        });
    }
    b.result(ResultSpec {
        test: "/tests/suite/multi",
        status: "fail",
        files: &["files/debian-12/tests/suite/multi/output.txt"],
        start_s: 6,
        dur_ms: 900,
        ..ResultSpec::default()
    });
    // Flaky: fails, then passes. The rerun overwrites output.txt.
    b.file(
        "files/debian-12/tests/flaky/network/output.txt",
        b"attempt 1: connection reset by peer\n",
    );
    b.result(ResultSpec {
        test: "/tests/flaky/network",
        status: "fail",
        note: Some("connection reset"),
        files: &["files/debian-12/tests/flaky/network/output.txt"],
        start_s: 10,
        dur_ms: 3000,
        final_attempt: false,
        remote: "local-1",
        ..ResultSpec::default()
    });
    b.file(
        "files/debian-12/tests/flaky/network/output.txt",
        b"attempt 2: all fine\n",
    );
    b.result(ResultSpec {
        test: "/tests/flaky/network",
        files: &["files/debian-12/tests/flaky/network/output.txt"],
        start_s: 14,
        dur_ms: 2000,
        attempt: 2,
        remote: "local-2",
        ..ResultSpec::default()
    });
    // Fails on every attempt (an error first, then a failure).
    b.file(
        "files/debian-12/tests/broken/always/output.txt",
        b"attempt 1 broke\n",
    );
    b.result(ResultSpec {
        test: "/tests/broken/always",
        status: "error",
        note: Some("segfault"),
        files: &["files/debian-12/tests/broken/always/output.txt"],
        start_s: 20,
        dur_ms: 10,
        final_attempt: false,
        ..ResultSpec::default()
    });
    b.file(
        "files/debian-12/tests/broken/always/output.txt",
        b"attempt 2 broke differently\n",
    );
    b.result(ResultSpec {
        test: "/tests/broken/always",
        status: "fail",
        note: Some("assertion failed"),
        files: &["files/debian-12/tests/broken/always/output.txt"],
        start_s: 21,
        dur_ms: 20,
        attempt: 2,
        ..ResultSpec::default()
    });
    // Characters XML 1.0 forbids, ANSI escapes, markup and a CDATA end.
    b.file(
        "files/debian-12/tests/weird/chars/output.txt",
        "nul:\0 bell:\x07 esc:\x1b[31mred\x1b[0m vt:\x0b ff:\x0c\n]]> <![CDATA[x]]> </script><b>&amp;\n\u{fffe}\u{ffff}\u{9b}c1 ok: ümlaut ✓\n"
            .as_bytes(),
    );
    b.result(ResultSpec {
        test: "/tests/weird/chars",
        status: "fail",
        note: Some("bad \x1b[1m\"quoted\"\x1b[0m <tag> & ]]> \0\x01 done"),
        files: &["files/debian-12/tests/weird/chars/output.txt"],
        start_s: 30,
        dur_ms: 77,
        ..ResultSpec::default()
    });
    // The same test on the second platform (a dot in its name), warning.
    b.file(
        "files/rhel-9.6@x86_64/tests/login/basic/output.txt",
        b"deprecated option -k\n",
    );
    b.result(ResultSpec {
        platform: p2,
        test: "/tests/login/basic",
        status: "warn",
        note: Some("deprecated option used"),
        files: &["files/rhel-9.6@x86_64/tests/login/basic/output.txt"],
        start_s: 31,
        dur_ms: 1500,
        remote: "tf-7",
        ..ResultSpec::default()
    });
    // A huge log (1 MiB) on the second platform, and a custom status.
    b.file(
        "files/rhel-9.6@x86_64/tests/huge/log/output.txt",
        &big_log(1 << 20),
    );
    b.result(ResultSpec {
        platform: p2,
        test: "/tests/huge/log",
        files: &["files/rhel-9.6@x86_64/tests/huge/log/output.txt"],
        start_s: 32,
        dur_ms: 61_005,
        remote: "tf-8",
        ..ResultSpec::default()
    });
    b.result(ResultSpec {
        platform: p2,
        test: "/tests/custom/status",
        status: "timeout",
        start_s: 40,
        dur_ms: 600_000,
        remote: "tf-7",
        ..ResultSpec::default()
    });
}

/// How many jobs (test × platform) [`SyntheticRun::ended`] has, those
/// that never ran included.
pub const ENDED_JOBS: u64 = 15;

/// How many of [`SyntheticRun::ended`]'s jobs never ran.
pub const ENDED_NOT_RUN: u64 = 3;

/// The reason of the tests [`SyntheticRun::ended`] did not run.
pub const ENDED_NOT_RUN_REASON: &str = "not run: --max-fail 3 reached";

/// The last line of the long log of `/tests/slow/hang` in
/// [`SyntheticRun::ended`] (a view scrolled to the end shows it).
pub const ENDED_LAST_LOG_LINE: &str = "still waiting for the lock (300 s)";

fn ended_steps(b: &mut Builder) {
    let (p1, p2) = ("debian-12", "fedora-41");
    let out = |p: &str, t: &str| format!("files/{p}{t}/output.txt");
    // Exits 3 without a word, on both platforms.
    for p in [p1, p2] {
        let f = out(p, "/tests/basics/exit-code");
        b.file(&f, b"");
        b.result(ResultSpec {
            platform: p,
            test: "/tests/basics/exit-code",
            status: "fail",
            files: &[f.as_str()],
            start_s: 1,
            dur_ms: 15,
            extra: r#"{"reason": "exit code 3", "exit_code": 3}"#,
            ..ResultSpec::default()
        });
    }
    // Runs out of time after a long log; the end of the log matters.
    let f = out(p1, "/tests/slow/hang");
    let mut log = String::new();
    for i in 1..300 {
        log.push_str(&format!("waiting for the lock ({i} s)\n"));
    }
    log.push_str(ENDED_LAST_LOG_LINE);
    log.push('\n');
    b.file(&f, log.as_bytes());
    b.result(ResultSpec {
        platform: p1,
        test: "/tests/slow/hang",
        status: "infra",
        note: Some("test duration timeout reached"),
        files: &[f.as_str()],
        start_s: 2,
        dur_ms: 300_000,
        remote: "local-2",
        extra: r#"{"reason": "timed out after 5m"}"#,
        ..ResultSpec::default()
    });
    // Killed, with an error line in the middle of its log.
    let f = out(p2, "/tests/signal/killed");
    b.file(
        &f,
        b"allocating\nERROR: cannot allocate 8 GiB\nretrying\nstill retrying\n",
    );
    b.result(ResultSpec {
        platform: p2,
        test: "/tests/signal/killed",
        status: "fail",
        files: &[f.as_str()],
        start_s: 3,
        dur_ms: 900,
        remote: "local-3",
        extra: r#"{"reason": "killed by signal 9 (SIGKILL)", "exit_code": 137}"#,
        ..ResultSpec::default()
    });
    // From an older atex: a note and no reason.
    b.result(ResultSpec {
        platform: p1,
        test: "/tests/legacy/noted",
        status: "fail",
        note: Some("assertion failed: 2 == 3\nat line 4"),
        start_s: 4,
        dur_ms: 30,
        ..ResultSpec::default()
    });
    // Numbered tests, landing out of order, on both platforms.
    for (i, n) in [10, 2, 1].into_iter().enumerate() {
        for p in [p1, p2] {
            let t = format!("/tests/num/t{n}");
            b.result(ResultSpec {
                platform: p,
                test: &t,
                start_s: 5 + i as u64,
                dur_ms: 100 * n,
                extra: r#"{"reason": "exit code 0", "exit_code": 0}"#,
                ..ResultSpec::default()
            });
        }
    }
    // Passes, with a sub-result that warns.
    for (sub, status) in [("prepare", "pass"), ("check-x", "warn")] {
        b.result(ResultSpec {
            platform: p1,
            test: "/tests/parent/with-subs",
            sub: Some(sub),
            status,
            note: (status == "warn").then_some("x is deprecated"),
            start_s: 9,
            dur_ms: 10,
            ..ResultSpec::default()
        });
    }
    b.result(ResultSpec {
        platform: p1,
        test: "/tests/parent/with-subs",
        start_s: 9,
        dur_ms: 40,
        extra: r#"{"reason": "reported pass by the test"}"#,
        ..ResultSpec::default()
    });
    // Never ran: the run stopped early.
    let extra = format!(r#"{{"not_run": true, "reason": "{ENDED_NOT_RUN_REASON}"}}"#);
    for (p, t) in [
        (p1, "/tests/late/one"),
        (p1, "/tests/late/two"),
        (p2, "/tests/late/one"),
    ] {
        b.result(ResultSpec {
            platform: p,
            test: t,
            status: "skip",
            start_s: 20,
            dur_ms: 0,
            attempt: 0,
            remote: "",
            extra: &extra,
            ..ResultSpec::default()
        });
    }
}

/// Markup, quotes, a CDATA end, C0 and C1 controls, an ANSI colour, XML
/// non-characters and non-ASCII text, all in one string.
pub const NASTY_TEXT: &str =
    "<&>\"' ]]> \u{1}\u{7}\u{1b}[31mred\u{1b}[0m \u{0}\u{9b}\u{fffe}\u{ffff} ümlaut ✓ 日本";

/// How many tests (on one platform each) [`SyntheticRun::nasty`] has.
pub const NASTY_TESTS: u64 = 12;

fn nasty_steps(b: &mut Builder) {
    let p = "fedora-41";
    let note = format!("note {NASTY_TEXT}\nsecond line");
    let log = format!("log {NASTY_TEXT}\n</script><!-- x -->\n");
    // One test-level result per status; the files are not where their
    // names would put them, as a test may write anywhere.
    let statuses = [
        "pass",
        "info",
        "skip",
        "warn",
        "fail",
        "error",
        "infra",
        "custom-word",
        "FAIL",
    ];
    for (i, status) in statuses.into_iter().enumerate() {
        let test = format!("/nasty/status/{status}");
        let file = format!("files/{p}/status-{i}.log");
        b.file(&file, log.as_bytes());
        b.result(ResultSpec {
            platform: p,
            test: &test,
            status,
            note: (status != "pass").then_some(note.as_str()),
            files: &[file.as_str()],
            start_s: i as u64,
            dur_ms: 10 * i as u64,
            ..ResultSpec::default()
        });
    }
    // Nasty names everywhere, with nasty sub-results.
    let name = format!("/nasty/name {NASTY_TEXT}");
    let sub = format!("sub {NASTY_TEXT}");
    let remote = format!("system {NASTY_TEXT}");
    let extra = r#"{"key <&>\"'": "value <&>\"' ✓ \u0001"}"#;
    b.file("files/fedora-41/nasty/name/output.txt", log.as_bytes());
    let nasty_name = ResultSpec {
        platform: p,
        test: &name,
        remote: &remote,
        start_s: 20,
        ..ResultSpec::default()
    };
    b.result(ResultSpec {
        sub: Some(&sub),
        status: "warn",
        note: Some(&note),
        ..nasty_name.clone()
    });
    b.result(ResultSpec {
        sub: Some("second"),
        status: "info",
        ..nasty_name.clone()
    });
    b.result(ResultSpec {
        note: Some(&note),
        files: &["files/fedora-41/nasty/name/output.txt"],
        extra,
        ..nasty_name
    });
    // Only sub-results, no result of the test itself.
    for (sub, status) in [("first", "skip"), ("second", "fail")] {
        b.result(ResultSpec {
            platform: p,
            test: "/nasty/only-subs",
            sub: Some(sub),
            status,
            start_s: 30,
            ..ResultSpec::default()
        });
    }
    // Three attempts, each overwriting the log of the one before.
    let log_file = "files/fedora-41/nasty/rerun/output.txt";
    for (attempt, status) in [(1, "infra"), (2, "error"), (3, "pass")] {
        let text = format!("attempt {attempt} {NASTY_TEXT}\n");
        b.file(log_file, text.as_bytes());
        b.result(ResultSpec {
            platform: p,
            test: "/nasty/rerun",
            status,
            note: (status != "pass").then_some(note.as_str()),
            files: &[log_file],
            start_s: 40 + u64::from(attempt),
            attempt,
            final_attempt: attempt == 3,
            remote: ["local-1", "local-2", "local-3"][attempt as usize - 1],
            ..ResultSpec::default()
        });
    }
}

/// Compares `actual` with the golden file, or rewrites the file when the
/// environment has `ATEX_BLESS=1`. On a difference it writes `actual` to a
/// temporary file and panics naming the first line that differs.
pub fn check_golden(golden: &Path, actual: &str) {
    if std::env::var("ATEX_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
        std::fs::write(golden, actual).expect("write golden");
        eprintln!("blessed {}", golden.display());
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with ATEX_BLESS=1 to create it",
            golden.display()
        )
    });
    if expected != actual {
        let actual_path = std::env::temp_dir().join(format!(
            "{}.actual",
            golden.file_name().expect("name").to_string_lossy()
        ));
        std::fs::write(&actual_path, actual).expect("write actual");
        let (n, (e, a)) = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .unwrap_or((
                expected.lines().count().min(actual.lines().count()),
                ("<end>", "<end>"),
            ));
        panic!(
            "{} differs from the output (written to {}) first at line {}:\n  expected: {}\n  actual:   {}\n\
             If the change is intended, run the tests with ATEX_BLESS=1 and review the diff.",
            golden.display(),
            actual_path.display(),
            n + 1,
            e,
            a
        );
    }
}

/// The path of a program on `PATH`, if any (tests skip, saying so, when a
/// tool such as `xmllint` is missing).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs a command to its end; returns whether it succeeded, its stdout and
/// its stderr.
pub fn run_command(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("spawn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nasty_run_has_every_status_and_its_counts_match() {
        let run = SyntheticRun::nasty();
        let finals: Vec<&ResultView> = run
            .results()
            .filter(|r| r.subtest.is_none() && r.final_attempt)
            .collect();
        for s in Status::KNOWN {
            assert!(finals.iter().any(|r| r.status == s), "no {s}");
        }
        assert!(finals.iter().any(|r| matches!(r.status, Status::Other(_))));
        let mut tests: Vec<&str> = run.results().map(|r| r.test.as_str()).collect();
        tests.sort_unstable();
        tests.dedup();
        assert_eq!(tests.len() as u64, NASTY_TESTS);
        assert_eq!(run.summary.tests_total, NASTY_TESTS);
        // The summary counts final test-level results, and only-subs tests
        // by their worst sub-result (fail).
        let counted: u64 = run.summary.counts.iter().map(|(_, n)| n).sum();
        assert_eq!(counted, NASTY_TESTS);
        assert!(run.results().any(|r| r.attempt == 3));
    }

    #[test]
    fn ended_run_has_reasons_and_not_run_jobs() {
        let run = SyntheticRun::ended();
        let finals: Vec<&ResultView> = run
            .results()
            .filter(|r| r.subtest.is_none() && r.final_attempt)
            .collect();
        assert_eq!(finals.len() as u64, ENDED_JOBS);
        let not_run: Vec<&&ResultView> = finals.iter().filter(|r| r.not_run()).collect();
        assert_eq!(not_run.len() as u64, ENDED_NOT_RUN);
        assert!(not_run.iter().all(|r| r.status == Status::Skip
            && r.attempt == 0
            && r.files.is_empty()
            && r.reason().as_deref() == Some(ENDED_NOT_RUN_REASON)));
        let counted: u64 = run.summary.counts.iter().map(|(_, n)| n).sum();
        assert_eq!(counted + ENDED_NOT_RUN, ENDED_JOBS);
        let exit3 = finals
            .iter()
            .find(|r| r.test == "/tests/basics/exit-code")
            .expect("exit-code");
        assert_eq!(exit3.reason().as_deref(), Some("exit code 3"));
        assert_eq!(exit3.exit_code(), Some(3));
        assert_eq!(exit3.note, None);
    }

    #[test]
    fn null_context_parses_config_and_never_cancels() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = null_context("x", "a: 1", dir.path());
        assert!(!ctx.is_cancelled());
        ctx.progress("ignored", Some(5));
        assert_eq!(ctx.work_dir(), dir.path());
        let v: std::collections::BTreeMap<String, u32> = ctx.parse_config().expect("config");
        assert_eq!(v["a"], 1);
    }
}
