//! Plain data that crosses the plugin boundary.
//!
//! Every type is `#[repr(C)]` and derives `StableAbi`, so its layout is
//! checked when a plugin is loaded. Sets of named values that may grow
//! (error kinds, log levels, plugin kinds, connection kinds) are newtypes over
//! an integer with associated constants instead of enums, because an
//! exhaustive enum can never gain a variant without breaking the ABI.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};

/// What went wrong in a plugin, in a form that crosses the ABI.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The category; see the constants on [`ErrorKind`].
    pub kind: ErrorKind,
    /// A message for people: what failed and, when known, what to do.
    pub message: RString,
}

impl PluginError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: RString::from(message.into()),
        }
    }
    /// The plugin's configuration is wrong.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::CONFIG, message)
    }
    /// An I/O operation failed.
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::IO, message)
    }
    /// A system could not be provisioned, reached or released.
    pub fn remote(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::REMOTE, message)
    }
    /// Anything else.
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::OTHER, message)
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for PluginError {}

/// The category of a [`PluginError`].
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u16);

impl ErrorKind {
    /// Bad plugin configuration.
    pub const CONFIG: ErrorKind = ErrorKind(1);
    /// A file or pipe operation failed.
    pub const IO: ErrorKind = ErrorKind(2);
    /// Provisioning, reaching or releasing a system failed.
    pub const REMOTE: ErrorKind = ErrorKind(3);
    /// Something took longer than allowed.
    pub const TIMEOUT: ErrorKind = ErrorKind(4);
    /// The host asked to cancel.
    pub const CANCELLED: ErrorKind = ErrorKind(5);
    /// The plugin panicked; the panic was caught at the boundary.
    pub const PANIC: ErrorKind = ErrorKind(6);
    /// The plugin does not support what was asked.
    pub const UNSUPPORTED: ErrorKind = ErrorKind(7);
    /// Anything else.
    pub const OTHER: ErrorKind = ErrorKind(8);

    /// A short lower-case name of the kind.
    pub fn name(self) -> &'static str {
        match self {
            Self::CONFIG => "configuration error",
            Self::IO => "I/O error",
            Self::REMOTE => "remote error",
            Self::TIMEOUT => "timeout",
            Self::CANCELLED => "cancelled",
            Self::PANIC => "plugin panicked",
            Self::UNSUPPORTED => "unsupported",
            _ => "error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Severity of a log line sent to the host.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogLevel(pub u8);

impl LogLevel {
    /// Something failed.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Something looks wrong.
    pub const WARN: LogLevel = LogLevel(2);
    /// Progress a user wants to see.
    pub const INFO: LogLevel = LogLevel(3);
    /// Details for debugging.
    pub const DEBUG: LogLevel = LogLevel(4);
    /// Very fine details.
    pub const TRACE: LogLevel = LogLevel(5);
}

/// Which kinds of backend a plugin provides (a bit set).
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PluginKinds(pub u32);

impl PluginKinds {
    /// The plugin can construct a provisioner.
    pub const PROVISIONER: PluginKinds = PluginKinds(1);
    /// The plugin can construct a reporter.
    pub const REPORTER: PluginKinds = PluginKinds(2);

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: PluginKinds) -> bool {
        self.0 & other.0 == other.0
    }
    /// The union of two sets.
    #[must_use]
    pub fn with(self, other: PluginKinds) -> PluginKinds {
        PluginKinds(self.0 | other.0)
    }
    /// Names of the kinds in the set, e.g. `["provisioner"]`.
    pub fn names(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.contains(Self::PROVISIONER) {
            out.push("provisioner");
        }
        if self.contains(Self::REPORTER) {
            out.push("reporter");
        }
        out
    }
}

/// What a plugin says about itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    /// The name users type after `-p` or `-r`, e.g. `podman`.
    pub name: RString,
    /// The plugin's own version (not the API version).
    pub version: RString,
    /// One line about what it does.
    pub description: RString,
    /// Which constructors it provides.
    pub kinds: PluginKinds,
}

/// A progress event a plugin may send to the host (shown to users).
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct ProgressEvent {
    /// What is happening, e.g. `reserving machine 2 of 3`.
    pub message: RString,
    /// How far along, when the plugin knows.
    pub percent: ROption<u8>,
}

/// How the host reaches a system: data, not a stream.
///
/// The host turns this into local processes it owns (for pipes, time limits
/// and killing): nothing streams across the plugin boundary.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionKind(pub u8);

impl ConnectionKind {
    /// The system is the host itself; commands run as local processes.
    pub const LOCAL: ConnectionKind = ConnectionKind(1);
    /// The system is reached with OpenSSH (see [`Connection::ssh`]).
    pub const SSH: ConnectionKind = ConnectionKind(2);
    /// Commands run by prefixing them with a local argv, e.g.
    /// `podman exec -i CONTAINER` (see [`Connection::command_prefix`]).
    pub const COMMAND: ConnectionKind = ConnectionKind(3);
    /// Like [`ConnectionKind::SSH`], but the login user is not root: the
    /// host runs every command through `sudo -n` (see
    /// [`Connection::ssh_sudo`]). Added in 0.1; older hosts refuse it.
    pub const SSH_SUDO: ConnectionKind = ConnectionKind(4);
}

/// Where an ssh-reached system is.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Host name or address.
    pub host: RString,
    /// TCP port, 22 on real guests.
    pub port: u16,
    /// User to log in as.
    pub user: RString,
    /// Path of the private key on the host, if not the user's default.
    pub identity_file: ROption<RString>,
    /// Extra `-o Key=Value` options, each as `Key=Value`.
    pub options: RVec<RString>,
}

/// How to reach a system; see [`ConnectionKind`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Which of the fields below applies.
    pub kind: ConnectionKind,
    /// For [`ConnectionKind::SSH`] and [`ConnectionKind::SSH_SUDO`].
    pub ssh: ROption<SshTarget>,
    /// For [`ConnectionKind::COMMAND`]: the local argv that the remote argv is
    /// appended to. It must pass stdin through and never allocate a TTY.
    pub command_prefix: RVec<RString>,
}

impl Connection {
    /// The local host.
    pub fn local() -> Self {
        Connection {
            kind: ConnectionKind::LOCAL,
            ssh: ROption::RNone,
            command_prefix: RVec::new(),
        }
    }
    /// A system reached over ssh; takes an [`SshTarget`] or a plain
    /// [`crate::view::SshTargetView`].
    pub fn ssh(target: impl Into<SshTarget>) -> Self {
        Connection {
            kind: ConnectionKind::SSH,
            ssh: ROption::RSome(target.into()),
            command_prefix: RVec::new(),
        }
    }
    /// A system reached over ssh as a user that is not root, where the host
    /// runs commands as root through passwordless `sudo -n`.
    pub fn ssh_sudo(target: SshTarget) -> Self {
        Connection {
            kind: ConnectionKind::SSH_SUDO,
            ssh: ROption::RSome(target),
            command_prefix: RVec::new(),
        }
    }
    /// A system reached through a local command prefix.
    pub fn command<I, S>(prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Connection {
            kind: ConnectionKind::COMMAND,
            ssh: ROption::RNone,
            command_prefix: prefix
                .into_iter()
                .map(|s| RString::from(s.into()))
                .collect(),
        }
    }
}

/// One result as it lands, as reporters receive it.
///
/// A test produces one or more results: one for the test itself
/// (`subtest` is none) and any number of named sub-results. With reruns,
/// every attempt is reported; `final_attempt` tells whether another attempt
/// follows.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct TestResult {
    /// The platform the test ran on, e.g. `debian-12` or `9.6@x86_64`.
    pub platform: RString,
    /// Full test name, e.g. `/tests/login/basic`.
    pub test: RString,
    /// Name of a sub-result, none for the test's own result.
    pub subtest: ROption<RString>,
    /// `pass`, `fail`, `error`, `infra`, `skip`, `warn`, `info` or a custom value.
    pub status: RString,
    /// Free-form note, e.g. why a test errored.
    pub note: ROption<RString>,
    /// Files of this result, relative to `results_dir`.
    pub files: RVec<RString>,
    /// Absolute path of the run's results directory.
    pub results_dir: RString,
    /// When the attempt started, milliseconds since the Unix epoch (UTC).
    pub started_unix_ms: u64,
    /// How long the attempt ran, in milliseconds.
    pub duration_ms: u64,
    /// Which attempt this is, starting at 1.
    pub attempt: u32,
    /// False when the test failed and will be run again.
    pub final_attempt: bool,
    /// Name of the system that ran it.
    pub remote: RString,
    /// Any other keys of the result, as a JSON object (`{}` when none).
    pub extra_json: RString,
}

/// How many results had one status.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// The status, e.g. `pass`.
    pub status: RString,
    /// How many tests ended with it (final attempts only).
    pub count: u64,
}

/// The summary of a finished run, given to reporters at the end.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct RunSummary {
    /// Identifier of the run (also used in container labels).
    pub run_id: RString,
    /// Absolute path of the run's results directory.
    pub results_dir: RString,
    /// When the run started, milliseconds since the Unix epoch (UTC).
    pub started_unix_ms: u64,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: u64,
    /// Number of tests that were selected to run.
    pub tests_total: u64,
    /// Counts of final test-level results by status.
    pub counts: RVec<StatusCount>,
    /// True when the run was interrupted (Ctrl-C, SIGTERM).
    pub interrupted: bool,
    /// Anything else, as a JSON object (`{}` when none).
    pub extra_json: RString,
}
