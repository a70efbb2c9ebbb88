//! The host's own view of provisioners, remote systems and reporters.
//!
//! These are plain Rust traits with std types. The scheduler, the executor,
//! the CLI and the tests only ever see these. Loaded plugins are adapted to
//! them in [`crate::plugins`]; a library user can also implement them
//! directly in Rust and skip dynamic loading altogether.

use std::{fmt, path::PathBuf, time::Duration};

pub use atex_plugin_api::ErrorKind;

use crate::Status;

/// An error from a provisioner, remote or reporter.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct BackendError {
    /// Which backend failed, e.g. `podman` or `podman-3f2a`.
    pub origin: String,
    /// What happened.
    pub message: String,
    /// Whether it was a panic caught at the plugin boundary.
    pub panicked: bool,
    /// The category a plugin gave it (configuration, I/O, remote, timeout,
    /// cancelled, panic, unsupported, ...); `None` for errors of backends
    /// written in plain Rust that do not say.
    pub kind: Option<ErrorKind>,
}

impl BackendError {
    /// An error raised by `origin`.
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        BackendError {
            origin: origin.into(),
            message: message.into(),
            panicked: false,
            kind: None,
        }
    }

    /// The same error, of category `kind`.
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.panicked = kind == ErrorKind::PANIC;
        self.kind = Some(kind);
        self
    }
}

/// Where an ssh-reached system is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Login user.
    pub user: String,
    /// Private key to use, if not the default.
    pub identity_file: Option<PathBuf>,
    /// Extra `Key=Value` ssh options; they win over atex's defaults.
    pub options: Vec<String>,
    /// The login user is not root: commands run through `sudo -n`.
    pub sudo: bool,
}

/// How to run commands on a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// The local host.
    Local,
    /// OpenSSH to a host.
    Ssh(SshTarget),
    /// A local argv prefix (e.g. `podman exec -i ID`) to which the remote
    /// argv is appended.
    Command(Vec<String>),
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::Local => f.write_str("local"),
            Connection::Ssh(t) if t.sudo => {
                write!(f, "ssh {}@{}:{} (sudo)", t.user, t.host, t.port)
            }
            Connection::Ssh(t) => write!(f, "ssh {}@{}:{}", t.user, t.host, t.port),
            Connection::Command(p) => write!(f, "command `{}`", p.join(" ")),
        }
    }
}

/// One system a provisioner handed out.
pub trait Remote: Send + Sync {
    /// Unique name within the run.
    fn name(&self) -> String;
    /// Platform its results are filed under.
    fn platform(&self) -> String;
    /// How to run commands on it.
    fn connection(&self) -> Result<Connection, BackendError>;
    /// Whether it is still usable.
    fn alive(&self) -> Result<bool, BackendError>;
    /// Give it back (idempotent).
    fn release(&self) -> Result<(), BackendError>;
}

/// A source of systems. All methods may be called from any thread.
///
/// Only `name` and `get_remote` must be written; the rest default to a
/// provisioner with nothing to start, stop or queue.
pub trait Provisioner: Send + Sync {
    /// A name for messages, e.g. `podman`.
    fn name(&self) -> String;
    /// Start background work.
    fn start(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// Ask for `count` more systems (`u32::MAX`: as many as possible).
    fn provision(&self, count: u32) {
        let _ = count;
    }
    /// A ready system, waiting at most `timeout` (`Duration::MAX`: forever).
    /// An error answers one request (the system will not come); the
    /// scheduler asks again if it still needs one.
    fn get_remote(&self, timeout: Duration) -> Result<Option<Box<dyn Remote>>, BackendError>;
    /// Drop unfulfilled requests.
    fn clear(&self) {}
    /// The most systems handed out at once, when known.
    fn max_remotes(&self) -> Option<u32> {
        None
    }
    /// The platform its systems are for: the column of the run's matrix
    /// they serve. `None`: the run's default platform.
    fn platform(&self) -> Option<String> {
        None
    }
    /// Release everything and join background work.
    fn stop(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// One result as reporters see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReportedResult {
    /// Platform the test ran on.
    pub platform: String,
    /// Full test name.
    pub test: String,
    /// Sub-result name, `None` for the test's own result.
    pub subtest: Option<String>,
    /// Status, `None` when the result line has none.
    pub status: Option<Status>,
    /// Free-form note.
    pub note: Option<String>,
    /// Files, relative to `results_dir`.
    pub files: Vec<String>,
    /// The run's results directory.
    pub results_dir: PathBuf,
    /// Start of the attempt, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Duration of the attempt.
    #[serde(rename = "duration_seconds", serialize_with = "secs")]
    pub duration: Duration,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// False when another attempt follows.
    pub final_attempt: bool,
    /// Name of the system that ran it.
    pub remote: String,
    /// Other keys of the result.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The summary of a run, for reporters.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// Run identifier.
    pub run_id: String,
    /// Results directory.
    pub results_dir: PathBuf,
    /// Start of the run, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Wall time of the run.
    #[serde(rename = "duration_seconds", serialize_with = "secs")]
    pub duration: Duration,
    /// Tests selected to run.
    pub tests_total: u64,
    /// Final test-level results by status, sorted by status.
    pub counts: Vec<(Status, u64)>,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Anything else.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A consumer of results.
pub trait Reporter: Send {
    /// A name for messages, e.g. `junit`.
    fn name(&self) -> String;
    /// One result landed.
    fn on_result(&mut self, result: &ReportedResult) -> Result<(), BackendError>;
    /// The run is over; returns what it wrote.
    fn finish(&mut self, summary: &RunSummary) -> Result<Vec<PathBuf>, BackendError>;
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
