//! Running the `podman` CLI: one function that runs a command with a time
//! limit and turns a failure into an error carrying podman's own message and
//! the command line, and the list of failures known to be transient.

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The program run for every podman command; found on `PATH`.
pub const PODMAN: &str = "podman";

/// What went wrong talking to podman.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PodmanError {
    /// podman ran and failed; `message` is what it printed, on one line.
    #[error("`{command}` failed: {message}")]
    Failed {
        /// The command line, shell-quoted.
        command: String,
        /// podman's message (its `Error: ` prefix removed) or the exit status.
        message: String,
        /// Exit code, when podman exited normally.
        code: Option<i32>,
    },
    /// The image is not in local storage and may not be pulled.
    #[error(
        "image {image} is not in podman's local storage and `pull` is `never` (pull or build it first, or set pull=missing): `{command}`: {message}"
    )]
    ImageMissing {
        /// The image as configured.
        image: String,
        /// The command line, shell-quoted.
        command: String,
        /// podman's message.
        message: String,
    },
    /// `podman pull` failed.
    #[error("cannot pull image {image}: {message}")]
    PullFailed {
        /// The image as configured.
        image: String,
        /// What podman (the registry) said, on one line.
        message: String,
    },
    /// Building a prepared image (or a user's Containerfile) failed.
    #[error("cannot prepare an image from {base}: {message}")]
    PrepareFailed {
        /// The base image or the Containerfile.
        base: String,
        /// What went wrong, on one line.
        message: String,
    },
    /// podman could not be started at all.
    #[error("cannot run `{command}`: {message}")]
    Spawn {
        /// The command line, shell-quoted.
        command: String,
        /// The operating system's error.
        message: String,
    },
    /// podman did not finish in time and was killed.
    #[error("`{command}` did not finish within {seconds} s and was killed")]
    Timeout {
        /// The command line, shell-quoted.
        command: String,
        /// The limit.
        seconds: u64,
    },
    /// Waiting for a container to be usable failed.
    #[error("container {container}: {message}")]
    Container {
        /// Container name or id.
        container: String,
        /// What happened.
        message: String,
    },
    /// The provisioner was stopped or the host cancelled the run.
    #[error("{0}")]
    Stopped(String),
}

impl PodmanError {
    /// Whether retrying the same command may succeed: failures seen when
    /// many podman commands run at once (lock contention, a racing runtime
    /// or network setup), never configuration errors.
    pub fn is_transient(&self) -> bool {
        match self {
            PodmanError::Failed { message, .. } => is_transient_message(message),
            PodmanError::Timeout { .. } => true,
            _ => false,
        }
    }
}

/// Messages of failures that come and go under parallel load.
const TRANSIENT: &[&str] = &[
    // boltdb/sqlite state database or a container lock held by another podman
    "database is locked",
    "resource temporarily unavailable",
    "timeout waiting",
    "timed out",
    "try again",
    // iptables/netavark setting up the network of several containers at once
    "xtables lock",
    "iptables",
    "netavark",
    "error creating network namespace",
    // runc racing with another runc or with cgroup setup
    "error reading from ready pipe",
    "reading container (probably exited) json message: eof",
    "device or resource busy",
    "no such file or directory: oci runtime",
    "cannot allocate memory",
    "signal: killed",
    "exit status 137",
    "unexpected eof",
];

fn is_transient_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    // The container's command does not exist or cannot be run: every retry
    // fails the same way (runc's message mentions "no such file or
    // directory: oci runtime", which alone would look transient).
    const PERMANENT: &[&str] = &[
        "image not known",
        "executable file not found",
        "command that was not found",
        "oci permission denied",
    ];
    if PERMANENT.iter().any(|p| m.contains(p)) {
        return false;
    }
    TRANSIENT.iter().any(|t| m.contains(t))
}

/// What a podman command printed.
#[derive(Debug)]
pub struct Output {
    /// Standard output, trimmed.
    pub stdout: String,
}

/// Quotes an argv for messages, the way a shell would need it.
pub fn command_line(args: &[String]) -> String {
    std::iter::once(PODMAN)
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c))
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// podman's stderr on one line: lines joined with `; `, `Error: ` dropped.
pub fn one_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("Error: ").unwrap_or(l))
        .collect();
    lines.join("; ")
}

/// How podman commands are run: a time limit and, optionally, the
/// containers.conf to use instead of the inherited `CONTAINERS_CONF`.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The longest any one command may take.
    pub timeout: Duration,
    /// Sets `CONTAINERS_CONF` for the commands.
    pub containers_conf: Option<PathBuf>,
}

impl Runner {
    /// Runs `podman ARGS...` with stdin closed, waiting at most `timeout`.
    pub fn run(&self, args: &[String]) -> Result<Output, PodmanError> {
        run_with(args, self.timeout, self.containers_conf.as_deref())
    }
}

/// Starts `podman ARGS...` (shown as `command`) with stdin closed and
/// stdout and stderr piped.
fn spawn(
    args: &[String],
    command: &str,
    containers_conf: Option<&Path>,
) -> Result<std::process::Child, PodmanError> {
    let mut cmd = Command::new(PODMAN);
    if let Some(conf) = containers_conf {
        cmd.env("CONTAINERS_CONF", conf);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PodmanError::Spawn {
            command: command.to_string(),
            message: e.to_string(),
        })
}

/// Runs `podman ARGS...` with stdin closed, waiting at most `timeout`.
pub fn run_with(
    args: &[String],
    timeout: Duration,
    containers_conf: Option<&Path>,
) -> Result<Output, PodmanError> {
    let command = command_line(args);
    tracing::debug!(target: "atex_podman::cmd", "{command}");
    let mut child = spawn(args, &command, containers_conf)?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_timeout(&mut child, timeout);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Err(PodmanError::Timeout {
                command,
                seconds: timeout.as_secs(),
            });
        }
        Err(e) => {
            return Err(PodmanError::Spawn {
                command,
                message: e.to_string(),
            });
        }
    };
    if status.success() {
        Ok(Output {
            stdout: stdout.trim().to_string(),
        })
    } else {
        let mut message = one_line(&stderr);
        if message.is_empty() {
            message = format!("podman exited with {status}");
        }
        Err(PodmanError::Failed {
            command,
            message,
            code: status.code(),
        })
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child`; `Ok(None)` when it was killed after `timeout`.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Runs a long podman command (`pull`, `build`), logging every line it
/// prints at info level as `WHAT: line`, waiting at most `timeout` and
/// killing it when `cancelled` says so. Returns its stdout; a failure
/// carries podman's error lines (or its last line), not the progress.
pub fn run_logged(
    args: &[String],
    what: &str,
    timeout: Duration,
    containers_conf: Option<&Path>,
    cancelled: &dyn Fn() -> bool,
) -> Result<Output, PodmanError> {
    let command = command_line(args);
    tracing::info!(target: "atex_podman", "{what}: {command}");
    let mut child = spawn(args, &command, containers_conf)?;
    let stdout = forward(child.stdout.take(), what.to_string());
    let stderr = forward(child.stderr.take(), what.to_string());
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(e.to_string()),
        }
        if start.elapsed() >= timeout || cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            break Err(String::new());
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Ok(status) if status.success() => Ok(Output {
            stdout: stdout.trim().to_string(),
        }),
        Ok(status) => {
            let mut message = error_lines(&stderr);
            if message.is_empty() {
                message = error_lines(&stdout);
            }
            // A failed build step: what the step printed last (e.g. the
            // package manager's error) says more than podman's summary.
            if let Some(last) = last_step_line(&stdout, &stderr)
                && !message.contains(&last)
            {
                message = format!("{message} (last output: {last})");
            }
            if message.is_empty() {
                message = format!("podman exited with {status}");
            }
            Err(PodmanError::Failed {
                command,
                message,
                code: status.code(),
            })
        }
        Err(e) if !e.is_empty() => Err(PodmanError::Spawn {
            command,
            message: e,
        }),
        Err(_) if cancelled() => Err(PodmanError::Stopped(format!(
            "podman: cancelled during `{command}`"
        ))),
        Err(_) => Err(PodmanError::Timeout {
            command,
            seconds: timeout.as_secs(),
        }),
    }
}

/// Reads a pipe line by line, logging each line; returns all of it.
fn forward<R: Read + Send + 'static>(pipe: Option<R>, what: String) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut all = String::new();
        if let Some(p) = pipe {
            for line in BufReader::new(p).lines() {
                let Ok(line) = line else { break };
                let line = line.trim_end();
                if !line.is_empty() {
                    tracing::info!(target: "atex_podman", "{what}: {line}");
                }
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    })
}

/// The last line a build step printed that is not podman's own (`STEP`,
/// `Error:`, `-->` lines), looked for on stderr, then stdout.
fn last_step_line(stdout: &str, stderr: &str) -> Option<String> {
    let own = |l: &&str| {
        l.is_empty()
            || l.starts_with("Error: ")
            || l.starts_with("STEP ")
            || l.starts_with("--> ")
            || l.starts_with("Trying to pull")
            || l.starts_with("Getting image source")
            || l.starts_with("Copying ")
            || l.starts_with("Writing manifest")
            || l.starts_with("Storing signatures")
    };
    [stderr, stdout].into_iter().find_map(|out| {
        out.lines()
            .map(str::trim)
            .rev()
            .find(|l| !own(l))
            .map(str::to_string)
    })
}

/// The `Error: ` lines of podman's output on one line, or else its last
/// non-empty line: a failed pull's message without the progress before it.
pub fn error_lines(output: &str) -> String {
    let errors: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("Error: "))
        .collect();
    if !errors.is_empty() {
        return errors.join("; ");
    }
    output
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// `args` as owned strings.
pub fn args<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    items.into_iter().map(|s| s.as_ref().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        assert_eq!(
            one_line("Error: localhost/nope:1: image not known\n"),
            "localhost/nope:1: image not known"
        );
        assert_eq!(one_line("warn: x\n\nError: y\n"), "warn: x; y");
    }

    #[test]
    fn error_lines_skip_progress() {
        let out = "Trying to pull 127.0.0.1:1/x:1...\nError: initializing source docker://127.0.0.1:1/x:1: manifest unknown\n";
        assert_eq!(
            error_lines(out),
            "initializing source docker://127.0.0.1:1/x:1: manifest unknown"
        );
        assert_eq!(
            error_lines("a\nE: Unable to locate package nope\n\n"),
            "E: Unable to locate package nope"
        );
    }

    #[test]
    fn command_lines_are_quoted() {
        assert_eq!(
            command_line(&args(["run", "--label", "atex.run=r 1", "img:1"])),
            "podman run --label 'atex.run=r 1' img:1"
        );
    }

    #[test]
    fn transient_classification() {
        let failed = |m: &str| PodmanError::Failed {
            command: "podman run".into(),
            message: m.into(),
            code: Some(125),
        };
        assert!(failed("netavark: iptables: Resource temporarily unavailable").is_transient());
        assert!(failed("database is locked").is_transient());
        assert!(!failed("localhost/nope: image not known").is_transient());
        assert!(!failed("unknown flag: --bogus").is_transient());
        // A container command that does not exist is not worth retrying.
        assert!(!failed("runc: runc create failed: unable to start container process: exec: \"/nope\": stat /nope: no such file or directory: OCI runtime attempted to invoke a command that was not found").is_transient());
    }
}
