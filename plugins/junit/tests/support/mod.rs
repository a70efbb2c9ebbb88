//! Test support shared by the junit and html plugin tests (the html tests
//! include this file with `#[path]`): a plugin context without a host, a
//! fixed synthetic run, golden-file comparison, and tool discovery.

#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use atex_plugin_api::{
    HostContext, HostServices, HostServices_TO, LogLevel, ProgressEvent, RunSummary, StatusCount,
    TestResult,
    abi_stable::{
        sabi_trait::TD_Opaque,
        std_types::{RArc, ROption, RStr, RString, RVec},
    },
    sdk::{PluginContext, ReporterImpl},
};

/// Host services that drop everything.
#[derive(Clone)]
struct NullHost;

impl HostServices for NullHost {
    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}
    fn is_cancelled(&self) -> bool {
        false
    }
    fn progress(&self, _event: &ProgressEvent) {}
}

/// A plugin context as the host would build it.
pub fn context(plugin: &str, config: &str, work_dir: &Path) -> PluginContext {
    PluginContext::new(HostContext {
        services: HostServices_TO::from_ptr(RArc::new(NullHost), TD_Opaque),
        config: config.into(),
        plugin_name: plugin.into(),
        run_id: "run-golden".into(),
        work_dir: work_dir.to_string_lossy().as_ref().into(),
    })
}

/// 2026-01-02T03:04:05Z
pub const RUN_START: u64 = 1_767_323_045_000;

/// One step of a synthetic run: a file appears, or a result lands.
pub enum Step {
    File(String, Vec<u8>),
    Result(Box<TestResult>),
}

/// A fixed synthetic run in a temporary results directory.
pub struct Run {
    pub dir: tempfile::TempDir,
    pub steps: Vec<Step>,
    pub summary: RunSummary,
}

impl Run {
    pub fn results_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Plays the run into a reporter and finishes it.
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
}

pub struct R<'a> {
    pub platform: &'a str,
    pub test: &'a str,
    pub sub: Option<&'a str>,
    pub status: &'a str,
    pub note: Option<&'a str>,
    pub files: &'a [&'a str],
    pub start_s: u64,
    pub dur_ms: u64,
    pub attempt: u32,
    pub final_attempt: bool,
    pub remote: &'a str,
    pub extra: &'a str,
}

impl Default for R<'_> {
    fn default() -> Self {
        R {
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

pub fn result(dir: &Path, r: R<'_>) -> TestResult {
    TestResult {
        platform: r.platform.into(),
        test: r.test.into(),
        subtest: r.sub.map(RString::from).into(),
        status: r.status.into(),
        note: match r.note {
            Some(n) => ROption::RSome(n.into()),
            None => ROption::RNone,
        },
        files: r
            .files
            .iter()
            .map(|f| RString::from(*f))
            .collect::<RVec<_>>(),
        results_dir: dir.to_string_lossy().as_ref().into(),
        started_unix_ms: RUN_START + r.start_s * 1000,
        duration_ms: r.dur_ms,
        attempt: r.attempt,
        final_attempt: r.final_attempt,
        remote: r.remote.into(),
        extra_json: r.extra.into(),
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

/// The golden run: pass, fail, error, skip, infra, warn, info and custom
/// statuses, sub-results, a flaky and an always-failing rerun, characters
/// XML forbids and ANSI escapes, a huge log, two platforms.
pub fn golden_run() -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_path_buf();
    let mut steps = Vec::new();
    let file = |steps: &mut Vec<Step>, rel: &str, bytes: &[u8]| {
        steps.push(Step::File(rel.to_string(), bytes.to_vec()));
    };
    let p1 = "debian-12";
    let p2 = "rhel-9.6@x86_64";

    // A plain pass.
    file(
        &mut steps,
        "files/debian-12/tests/login/basic/output.txt",
        b"logging in as alice\nok\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/login/basic",
            files: &["files/debian-12/tests/login/basic/output.txt"],
            start_s: 1,
            dur_ms: 1234,
            extra: r#"{"tmt_id": "f00d", "priority": 3}"#,
            ..R::default()
        },
    ))));
    // A failure with coloured output.
    file(
        &mut steps,
        "files/debian-12/tests/login/bad-password/output.txt",
        b"\x1b[1mPOST /login\x1b[0m\n\x1b[31mexpected 401, got 200\x1b[0m\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/login/bad-password",
            status: "fail",
            note: Some("expected 401, got 200\nsee output.txt"),
            files: &["files/debian-12/tests/login/bad-password/output.txt"],
            start_s: 2,
            dur_ms: 2500,
            remote: "local-2",
            ..R::default()
        },
    ))));
    // An error.
    file(
        &mut steps,
        "files/debian-12/tests/network/dns/output.txt",
        b"./test.sh: line 3: syntax error\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/network/dns",
            status: "error",
            note: Some("test exited with 2"),
            files: &["files/debian-12/tests/network/dns/output.txt"],
            start_s: 3,
            dur_ms: 40,
            ..R::default()
        },
    ))));
    // A skip, without files.
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/storage/lvm",
            status: "skip",
            note: Some("needs a second disk"),
            start_s: 4,
            dur_ms: 5,
            ..R::default()
        },
    ))));
    // Infrastructure trouble.
    file(
        &mut steps,
        "files/debian-12/tests/storage/nfs/output.txt",
        b"mounting...\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/storage/nfs",
            status: "infra",
            note: Some("TestAbortedError(test duration timeout reached)"),
            files: &["files/debian-12/tests/storage/nfs/output.txt"],
            start_s: 5,
            dur_ms: 300_000,
            remote: "local-3",
            ..R::default()
        },
    ))));
    // Sub-results (they arrive before the test's own result).
    file(
        &mut steps,
        "files/debian-12/tests/suite/multi/check-a.log",
        b"a: mismatch in /etc/passwd\n",
    );
    file(
        &mut steps,
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
        steps.push(Step::Result(Box::new(result(
            &d,
            R {
                test: "/tests/suite/multi",
                sub: Some(sub),
                status,
                note,
                files,
                start_s: 6,
                dur_ms: 100,
                ..R::default()
            },
        ))));
    }
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/suite/multi",
            status: "fail",
            files: &["files/debian-12/tests/suite/multi/output.txt"],
            start_s: 6,
            dur_ms: 900,
            ..R::default()
        },
    ))));
    // Flaky: fails, then passes. The rerun overwrites output.txt.
    file(
        &mut steps,
        "files/debian-12/tests/flaky/network/output.txt",
        b"attempt 1: connection reset by peer\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/flaky/network",
            status: "fail",
            note: Some("connection reset"),
            files: &["files/debian-12/tests/flaky/network/output.txt"],
            start_s: 10,
            dur_ms: 3000,
            final_attempt: false,
            remote: "local-1",
            ..R::default()
        },
    ))));
    file(
        &mut steps,
        "files/debian-12/tests/flaky/network/output.txt",
        b"attempt 2: all fine\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/flaky/network",
            files: &["files/debian-12/tests/flaky/network/output.txt"],
            start_s: 14,
            dur_ms: 2000,
            attempt: 2,
            remote: "local-2",
            ..R::default()
        },
    ))));
    // Fails on every attempt (an error first, then a failure).
    file(
        &mut steps,
        "files/debian-12/tests/broken/always/output.txt",
        b"attempt 1 broke\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/broken/always",
            status: "error",
            note: Some("segfault"),
            files: &["files/debian-12/tests/broken/always/output.txt"],
            start_s: 20,
            dur_ms: 10,
            final_attempt: false,
            ..R::default()
        },
    ))));
    file(
        &mut steps,
        "files/debian-12/tests/broken/always/output.txt",
        b"attempt 2 broke differently\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/broken/always",
            status: "fail",
            note: Some("assertion failed"),
            files: &["files/debian-12/tests/broken/always/output.txt"],
            start_s: 21,
            dur_ms: 20,
            attempt: 2,
            ..R::default()
        },
    ))));
    // Characters XML 1.0 forbids, ANSI escapes, markup and a CDATA end.
    file(
        &mut steps,
        "files/debian-12/tests/weird/chars/output.txt",
        "nul:\0 bell:\x07 esc:\x1b[31mred\x1b[0m vt:\x0b ff:\x0c\n]]> <![CDATA[x]]> </script><b>&amp;\n\u{fffe}\u{ffff}\u{9b}c1 ok: ümlaut ✓\n"
            .as_bytes(),
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            test: "/tests/weird/chars",
            status: "fail",
            note: Some("bad \x1b[1m\"quoted\"\x1b[0m <tag> & ]]> \0\x01 done"),
            files: &["files/debian-12/tests/weird/chars/output.txt"],
            start_s: 30,
            dur_ms: 77,
            ..R::default()
        },
    ))));
    // The same test on the second platform (a dot in its name), warning.
    file(
        &mut steps,
        "files/rhel-9.6@x86_64/tests/login/basic/output.txt",
        b"deprecated option -k\n",
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            platform: p2,
            test: "/tests/login/basic",
            status: "warn",
            note: Some("deprecated option used"),
            files: &["files/rhel-9.6@x86_64/tests/login/basic/output.txt"],
            start_s: 31,
            dur_ms: 1500,
            remote: "tf-7",
            ..R::default()
        },
    ))));
    // A huge log (1 MiB) on the second platform, and a custom status.
    file(
        &mut steps,
        "files/rhel-9.6@x86_64/tests/huge/log/output.txt",
        &big_log(1 << 20),
    );
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            platform: p2,
            test: "/tests/huge/log",
            files: &["files/rhel-9.6@x86_64/tests/huge/log/output.txt"],
            start_s: 32,
            dur_ms: 61_005,
            remote: "tf-8",
            ..R::default()
        },
    ))));
    steps.push(Step::Result(Box::new(result(
        &d,
        R {
            platform: p2,
            test: "/tests/custom/status",
            status: "timeout",
            start_s: 40,
            dur_ms: 600_000,
            remote: "tf-7",
            ..R::default()
        },
    ))));
    let _ = p1;

    let counts = [
        ("error", 1),
        ("fail", 4),
        ("infra", 1),
        ("pass", 2),
        ("skip", 1),
        ("timeout", 1),
        ("warn", 1),
    ];
    let summary = RunSummary {
        run_id: "run-golden".into(),
        results_dir: d.to_string_lossy().as_ref().into(),
        started_unix_ms: RUN_START,
        duration_ms: 754_321,
        tests_total: 13,
        counts: counts
            .iter()
            .map(|(s, c)| StatusCount {
                status: (*s).into(),
                count: *c,
            })
            .collect(),
        interrupted: false,
        extra_json: "{}".into(),
    };
    Run {
        dir,
        steps,
        summary,
    }
}

/// Compares `actual` with the golden file, or rewrites it when
/// `ATEX_BLESS=1`.
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

/// The path of a program on PATH, if any.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs a command and returns (success, stdout, stderr).
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("spawn");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
