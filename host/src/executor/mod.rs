//! Running tests on one system.
//!
//! [`System`] is the entry point: open one per remote, [`System::setup`]
//! it once (upload the tree, run prepare steps), then [`System::run_test`]
//! as many times as you like; [`System::run_command`] runs a command
//! outside any test. It keeps one persistent shell (the *agent*) per
//! system, so a test start costs a line written to a pipe, not a fresh
//! `ssh` handshake or container exec. The agent parses nothing: the
//! test-control stream (`result`, `exitcode`, `duration`, `disconnect`,
//! `noop`) is relayed to the host, which writes results and files into the
//! test's artifacts directory.
//!
//! [`command_for`] turns a remote's connection data into a local command
//! the host owns; [`copy_to`] and [`copy_from`] move files to and from any
//! system over it (tar, no rsync); [`shell_argv`] is the command a person
//! types to get a shell there.
//!
//! The system under test needs bash, coreutils, tar and util-linux's
//! `setsid` (and `script` for `tty: true`); no python, no rsync.

#[doc(hidden)]
pub mod control;
mod helpers;
mod scripts;
mod session;
#[doc(hidden)]
pub mod transport;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

pub use session::{System, SystemOptions};
pub use transport::{
    ConnectError, CopyError, Transport, command_for, copy_from, copy_to, shell_argv, shell_join,
};

use crate::Status;

/// A flag another thread sets to stop what is running.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// A token sharing an existing flag (e.g. the one plugins see).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        CancelToken(flag)
    }
    /// Ask everything watching this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The shared flag.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// One test, as the executor needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    /// Full name, e.g. `/tests/login`.
    pub name: String,
    /// Directory of the test relative to the tree root (where it runs).
    pub rel_dir: PathBuf,
    /// The `test` command (a bash script body).
    pub script: String,
    /// Time limit, from the start of its setup.
    pub duration: Duration,
    /// The test's `environment`, in order.
    pub environment: Vec<(String, String)>,
    /// Packages that must be installed.
    pub require: Vec<String>,
    /// Packages installed when available.
    pub recommend: Vec<String>,
    /// Run it with a pseudo-terminal.
    pub tty: bool,
    /// The full metadata, written to `TMT_TEST_METADATA`.
    pub metadata: serde_json::Value,
}

/// A plan's steps that apply to a whole system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanSpec {
    /// The plan's `environment`, in order.
    pub environment: Vec<(String, String)>,
    /// `prepare` steps, in order.
    pub prepare: Vec<PrepareStep>,
    /// `finish` shell scripts.
    pub finish: Vec<String>,
}

/// One `prepare` step.
#[derive(Debug, Clone, PartialEq)]
pub enum PrepareStep {
    /// `how: install`: packages.
    Install(Vec<String>),
    /// `how: shell`: a script.
    Shell(String),
}

/// How a test attempt ended, as seen by the executor. The detailed results
/// are in the artifacts directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOutcome {
    /// The test's exit code, when it reported one.
    pub exit_code: Option<i32>,
    /// Status of the test's own (nameless) result.
    pub status: Status,
    /// Note of the test's own result.
    pub note: Option<String>,
    /// Wall time of the attempt, setup included.
    pub duration: Duration,
    /// How many times the system rebooted during the test.
    pub reboots: u32,
    /// The system stopped answering or was found dead: do not reuse it.
    pub system_lost: bool,
    /// The test called `tmt-abort`: no further test of the run starts.
    pub abort_run: bool,
    /// Why the attempt ended, in one line: `exit code 3`, `killed by
    /// signal 9 (SIGKILL)`, `timed out after 5m`, `setup failed: ...`,
    /// `system lost: ...`, `cancelled`, `reported fail by the test`.
    pub reason: Option<String>,
}

/// What a command run with [`System::run_command`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Its exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// Its standard output and error, interleaved.
    pub output: String,
}

/// Errors that concern a whole system rather than one test.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The agent could not be started or died.
    #[error("{system}: cannot reach the system: {detail}")]
    Unreachable {
        /// The system's name.
        system: String,
        /// What happened.
        detail: String,
    },
    /// Uploading the tree or a prepare step failed.
    #[error("{system}: setup failed: {detail}")]
    Setup {
        /// The system's name.
        system: String,
        /// What happened, with the failing step's output tail.
        detail: String,
    },
    /// Cancelled from another thread.
    #[error("{system}: cancelled")]
    Cancelled {
        /// The system's name.
        system: String,
    },
    /// A local I/O error (artifacts directory, temp files).
    // The I/O error is part of the message, not a `source()`, so that
    // printing the chain does not repeat it.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        error: std::io::Error,
    },
}
