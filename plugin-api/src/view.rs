//! Plain-Rust views of the data that crosses the ABI.
//!
//! The ABI types ([`TestResult`], [`RunSummary`], [`SshTarget`]) are made of
//! `RString`, `ROption` and `RVec` so that their layout can be checked at
//! load time. A plugin author should not have to care: the [`crate::sdk`]
//! adapters convert them into the views here before calling the plugin, and
//! a provisioner can build an [`SshTargetView`] and hand it to
//! [`crate::Connection::ssh`].
//!
//! The views are not part of the ABI: they may grow fields in any release
//! without changing what a host and a plugin must agree on.

use std::path::PathBuf;

use abi_stable::std_types::{ROption, RString};

use crate::{
    status::Status,
    types::{RunSummary, SshTarget, TestResult},
};

/// One result as it lands, in plain Rust types; see [`TestResult`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultView {
    /// The platform the test ran on, e.g. `debian-12`.
    pub platform: String,
    /// Full test name, e.g. `/tests/login/basic`.
    pub test: String,
    /// Name of a sub-result; `None` for the test's own result.
    pub subtest: Option<String>,
    /// The status, parsed (an unknown word is [`Status::Other`]).
    pub status: Status,
    /// Free-form note, e.g. why a test errored.
    pub note: Option<String>,
    /// Files of this result, relative to [`ResultView::results_dir`], with
    /// `/` separators, as they appear in `results.jsonl`.
    pub files: Vec<String>,
    /// Absolute path of the run's results directory.
    pub results_dir: PathBuf,
    /// When the attempt started, milliseconds since the Unix epoch (UTC).
    pub started_unix_ms: u64,
    /// How long the attempt ran, in milliseconds.
    pub duration_ms: u64,
    /// Which attempt this is, starting at 1.
    pub attempt: u32,
    /// False when the test failed and will be run again.
    pub final_attempt: bool,
    /// Name of the system that ran it.
    pub remote: String,
    /// Any other keys of the result, as a JSON object text (`{}` when none).
    pub extra_json: String,
}

impl ResultView {
    /// The absolute paths of the result's files.
    pub fn file_paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.files.iter().map(|f| self.results_dir.join(f))
    }

    /// Why the test ended, in one line (`exit code 3`, `timed out after
    /// 5m`, `not run: run interrupted`): the `reason` key of
    /// [`ResultView::extra_json`], which atex sets on a test's own result.
    /// `None` when absent or empty (results of older runs: use the note).
    pub fn reason(&self) -> Option<String> {
        EndKeys::of(&self.extra_json)
            .reason
            .filter(|r| !r.trim().is_empty())
    }

    /// Whether this stands for a test that never ran (the run was
    /// interrupted or stopped early): `"not_run": true` in
    /// [`ResultView::extra_json`]. Such a result is a `skip` of attempt 0
    /// without files; its [`reason`](ResultView::reason) says why.
    pub fn not_run(&self) -> bool {
        EndKeys::of(&self.extra_json).not_run == Some(true)
    }

    /// The test's exit code, when atex knew it (`exit_code` in
    /// [`ResultView::extra_json`]).
    pub fn exit_code(&self) -> Option<i64> {
        EndKeys::of(&self.extra_json).exit_code
    }
}

/// The keys of `extra_json` that say how a test ended.
#[derive(Default, serde::Deserialize)]
struct EndKeys {
    reason: Option<String>,
    not_run: Option<bool>,
    exit_code: Option<i64>,
}

impl EndKeys {
    /// Reads the keys; anything unreadable counts as absent. JSON is read
    /// as YAML (a superset of it), which this crate parses already.
    fn of(extra_json: &str) -> EndKeys {
        let t = extra_json.trim();
        if t.len() < 3
            || !(t.contains("reason") || t.contains("not_run") || t.contains("exit_code"))
        {
            return EndKeys::default();
        }
        #[derive(serde::Deserialize)]
        struct Loose {
            #[serde(default)]
            reason: Option<serde_yaml::Value>,
            #[serde(default)]
            not_run: Option<serde_yaml::Value>,
            #[serde(default)]
            exit_code: Option<serde_yaml::Value>,
        }
        let Ok(l) = serde_yaml::from_str::<Loose>(t) else {
            return EndKeys::default();
        };
        EndKeys {
            reason: l.reason.and_then(|v| v.as_str().map(str::to_string)),
            not_run: l.not_run.and_then(|v| v.as_bool()),
            exit_code: l.exit_code.and_then(|v| v.as_i64()),
        }
    }
}

fn opt(o: &ROption<RString>) -> Option<String> {
    o.as_ref().into_option().map(|s| s.to_string())
}

impl From<&TestResult> for ResultView {
    fn from(r: &TestResult) -> Self {
        ResultView {
            platform: r.platform.to_string(),
            test: r.test.to_string(),
            subtest: opt(&r.subtest),
            status: Status::parse(&r.status),
            note: opt(&r.note),
            files: r.files.iter().map(|f| f.to_string()).collect(),
            results_dir: PathBuf::from(r.results_dir.as_str()),
            started_unix_ms: r.started_unix_ms,
            duration_ms: r.duration_ms,
            attempt: r.attempt,
            final_attempt: r.final_attempt,
            remote: r.remote.to_string(),
            extra_json: r.extra_json.to_string(),
        }
    }
}

/// The summary of a finished run, in plain Rust types; see [`RunSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryView {
    /// Identifier of the run.
    pub run_id: String,
    /// Absolute path of the run's results directory.
    pub results_dir: PathBuf,
    /// When the run started, milliseconds since the Unix epoch (UTC).
    pub started_unix_ms: u64,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: u64,
    /// Number of tests that were selected to run.
    pub tests_total: u64,
    /// How many tests ended with each status (final test-level results).
    pub counts: Vec<(Status, u64)>,
    /// True when the run was interrupted (Ctrl-C, SIGTERM).
    pub interrupted: bool,
    /// Anything else, as a JSON object text (`{}` when none).
    pub extra_json: String,
}

impl From<&RunSummary> for SummaryView {
    fn from(s: &RunSummary) -> Self {
        SummaryView {
            run_id: s.run_id.to_string(),
            results_dir: PathBuf::from(s.results_dir.as_str()),
            started_unix_ms: s.started_unix_ms,
            duration_ms: s.duration_ms,
            tests_total: s.tests_total,
            counts: s
                .counts
                .iter()
                .map(|c| (Status::parse(&c.status), c.count))
                .collect(),
            interrupted: s.interrupted,
            extra_json: s.extra_json.to_string(),
        }
    }
}

/// Where an ssh-reached system is, in plain Rust types; see [`SshTarget`].
///
/// A provisioner builds one and passes it to [`crate::Connection::ssh`],
/// which takes anything that converts into an [`SshTarget`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTargetView {
    /// Host name or address.
    pub host: String,
    /// TCP port, 22 on real guests.
    pub port: u16,
    /// User to log in as.
    pub user: String,
    /// Path of the private key on the host, if not the user's default.
    pub identity_file: Option<PathBuf>,
    /// Extra `-o Key=Value` options, each as `Key=Value`.
    pub options: Vec<String>,
}

impl From<&SshTarget> for SshTargetView {
    fn from(t: &SshTarget) -> Self {
        SshTargetView {
            host: t.host.to_string(),
            port: t.port,
            user: t.user.to_string(),
            identity_file: t
                .identity_file
                .as_ref()
                .into_option()
                .map(|p| PathBuf::from(p.as_str())),
            options: t.options.iter().map(|o| o.to_string()).collect(),
        }
    }
}

impl From<SshTargetView> for SshTarget {
    fn from(t: SshTargetView) -> Self {
        SshTarget {
            host: t.host.into(),
            port: t.port,
            user: t.user.into(),
            identity_file: t
                .identity_file
                .map(|p| RString::from(p.to_string_lossy().into_owned()))
                .into(),
            options: t.options.into_iter().map(RString::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StatusCount;

    fn abi_result() -> TestResult {
        TestResult {
            platform: "debian-12".into(),
            test: "/t".into(),
            subtest: ROption::RSome("sub".into()),
            status: "WARN".into(),
            note: ROption::RNone,
            files: vec![RString::from("files/debian-12/t/output.txt")].into(),
            results_dir: "/results".into(),
            started_unix_ms: 5,
            duration_ms: 7,
            attempt: 2,
            final_attempt: false,
            remote: "local-1".into(),
            extra_json: "{}".into(),
        }
    }

    #[test]
    fn result_view_parses_the_status_and_converts_back() {
        let view = ResultView::from(&abi_result());
        assert_eq!(view.status, Status::Warn);
        assert_eq!(view.subtest.as_deref(), Some("sub"));
        assert_eq!(view.note, None);
        assert_eq!(
            view.file_paths().collect::<Vec<_>>(),
            [PathBuf::from("/results/files/debian-12/t/output.txt")]
        );
        assert_eq!((view.attempt, view.final_attempt), (2, false));
    }

    #[test]
    fn reason_not_run_and_exit_code_come_from_extra_json() {
        let mut view = ResultView::from(&abi_result());
        assert_eq!(
            (view.reason(), view.not_run(), view.exit_code()),
            (None, false, None)
        );
        view.extra_json = r#"{"tmt_id": "x", "reason": "exit code 3", "exit_code": 3}"#.into();
        assert_eq!(view.reason().as_deref(), Some("exit code 3"));
        assert_eq!(view.exit_code(), Some(3));
        assert!(!view.not_run());
        view.extra_json =
            r#"{"not_run": true, "reason": "not run: run interrupted \u00e9 <&>"}"#.into();
        assert!(view.not_run());
        assert_eq!(
            view.reason().as_deref(),
            Some("not run: run interrupted é <&>")
        );
        // Wrong types and broken text are absent, not errors.
        view.extra_json = r#"{"not_run": "yes", "reason": 5, "exit_code": "3"}"#.into();
        assert_eq!(
            (view.reason(), view.not_run(), view.exit_code()),
            (None, false, None)
        );
        view.extra_json = r#"{"reason": "#.into();
        assert_eq!(view.reason(), None);
        view.extra_json = r#"{"reason": "  "}"#.into();
        assert_eq!(view.reason(), None);
    }

    #[test]
    fn summary_view_parses_counts() {
        let abi = RunSummary {
            run_id: "r".into(),
            results_dir: "/results".into(),
            started_unix_ms: 1,
            duration_ms: 2,
            tests_total: 3,
            counts: vec![
                StatusCount {
                    status: "pass".into(),
                    count: 2,
                },
                StatusCount {
                    status: "Odd".into(),
                    count: 1,
                },
            ]
            .into(),
            interrupted: true,
            extra_json: "{}".into(),
        };
        let view = SummaryView::from(&abi);
        assert_eq!(
            view.counts,
            [(Status::Pass, 2), (Status::Other("odd".into()), 1)]
        );
        assert_eq!(view.results_dir, PathBuf::from("/results"));
        assert!(view.interrupted);
    }

    #[test]
    fn ssh_target_view_round_trips() {
        let view = SshTargetView {
            host: "127.0.0.2".into(),
            port: 22,
            user: "root".into(),
            identity_file: Some("/keys/id".into()),
            options: vec!["StrictHostKeyChecking=no".into()],
        };
        let abi = SshTarget::from(view.clone());
        assert_eq!(
            abi.identity_file.as_ref().map(|s| s.as_str()),
            ROption::RSome("/keys/id")
        );
        assert_eq!(SshTargetView::from(&abi), view);
    }
}
