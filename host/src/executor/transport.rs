//! From a remote's connection data to local processes.
//!
//! A remote never streams anything through the plugin boundary: it only
//! says how to reach it (see [`Connection`]). This module builds the local
//! `std::process::Command` that runs an argv on the system, so the host owns
//! every process: its pipes, its time limit, and killing it.

use std::process::Command;

use crate::backend::{Connection, SshTarget};

/// The ssh options every connection uses: no prompts, no TTY, no host key
/// bookkeeping for throw-away machines, and keep-alives that notice a dead
/// peer within two minutes.
pub const SSH_DEFAULT_OPTIONS: &[&str] = &[
    "LogLevel=ERROR",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "ConnectionAttempts=3",
    "ServerAliveCountMax=4",
    "ServerAliveInterval=30",
    "TCPKeepAlive=no",
    "EscapeChar=none",
    "ExitOnForwardFailure=yes",
    "RequestTTY=no",
    "BatchMode=yes",
];

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Joins an argv into one shell command line.
pub fn shell_join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The ssh argv (without the remote command) for `target`.
///
/// The target's own options come first: ssh keeps the first value given
/// for an option, so a provisioner can override the defaults (e.g. turn
/// host key checking on).
pub fn ssh_base_args(target: &SshTarget) -> Vec<String> {
    let mut args = vec!["-T".to_string()];
    for opt in target
        .options
        .iter()
        .cloned()
        .chain(SSH_DEFAULT_OPTIONS.iter().copied().map(str::to_string))
    {
        args.push("-o".into());
        args.push(opt);
    }
    if let Some(key) = &target.identity_file {
        args.push("-o".into());
        args.push("IdentitiesOnly=yes".into());
        args.push("-i".into());
        args.push(key.to_string_lossy().into_owned());
    }
    args.push("-p".into());
    args.push(target.port.to_string());
    args.push("-l".into());
    args.push(target.user.clone());
    args.push(target.host.clone());
    args
}

/// A local command that runs `argv` on the system behind `conn`.
///
/// The argv is passed through unchanged for local and command-prefix
/// connections; over ssh it is quoted into one remote command line.
pub fn command_for<S: AsRef<str>>(conn: &Connection, argv: &[S]) -> Command {
    match conn {
        Connection::Local => {
            let mut cmd = Command::new(argv.first().map_or("true", |a| a.as_ref()));
            cmd.args(argv.iter().skip(1).map(AsRef::as_ref));
            cmd
        }
        Connection::Command(prefix) => {
            // An empty prefix is refused when the connection is read from a
            // plugin; here it degrades to a command that fails.
            let (program, rest) = prefix
                .split_first()
                .map_or(("false", &[][..]), |(p, r)| (p.as_str(), r));
            let mut cmd = Command::new(program);
            cmd.args(rest).args(argv.iter().map(AsRef::as_ref));
            cmd
        }
        Connection::Ssh(target) => {
            let mut cmd = Command::new("ssh");
            cmd.args(ssh_base_args(target));
            cmd.arg(remote_line(target, argv));
            cmd
        }
    }
}

/// The remote command line ssh sends for `argv`: through `sudo -n` when
/// the login user is not root.
fn remote_line<S: AsRef<str>>(target: &SshTarget, argv: &[S]) -> String {
    if target.sudo {
        format!("exec sudo -n -- {}", shell_join(argv))
    } else {
        format!("exec {}", shell_join(argv))
    }
}

/// Why a file copy to or from a system failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A local path has no file name (`/`, `..`) or is not UTF-8.
    #[error("cannot copy {0}: it has no usable file name")]
    BadPath(std::path::PathBuf),
    /// A process of the copy could not be started.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// Which side, e.g. `local tar`.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// One side of the copy failed.
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        /// Which side, e.g. `tar on the system`.
        what: &'static str,
        /// How it ended.
        status: std::process::ExitStatus,
        /// Its error output.
        stderr: String,
    },
}

/// Pipes `producer`'s stdout into `consumer`'s stdin and waits for both.
fn pipe_through(
    mut producer: Command,
    producer_name: &'static str,
    mut consumer: Command,
    consumer_name: &'static str,
) -> Result<(), CopyError> {
    use std::process::Stdio;
    let mut first = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| CopyError::Spawn {
            what: producer_name,
            source,
        })?;
    let Some(pipe) = first.stdout.take() else {
        let _ = first.kill();
        let _ = first.wait();
        return Err(CopyError::Spawn {
            what: producer_name,
            source: std::io::Error::other("no stdout pipe"),
        });
    };
    let second = consumer
        .stdin(Stdio::from(pipe))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let second = match second {
        Ok(c) => c,
        Err(source) => {
            let _ = first.kill();
            let _ = first.wait();
            return Err(CopyError::Spawn {
                what: consumer_name,
                source,
            });
        }
    };
    // Both stderr pipes are read to the end by wait_with_output, the
    // consumer's first: it is the one that ends the producer by exiting.
    let second = second.wait_with_output();
    let first = first.wait_with_output();
    let failed = |what, out: std::process::Output| CopyError::Failed {
        what,
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    };
    let second = second.map_err(|source| CopyError::Spawn {
        what: consumer_name,
        source,
    })?;
    let first = first.map_err(|source| CopyError::Spawn {
        what: producer_name,
        source,
    })?;
    if !first.status.success() {
        return Err(failed(producer_name, first));
    }
    if !second.status.success() {
        return Err(failed(consumer_name, second));
    }
    Ok(())
}

fn parent_and_name(path: &std::path::Path) -> Result<(std::path::PathBuf, String), CopyError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CopyError::BadPath(path.to_path_buf()))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    Ok((parent, name.to_string()))
}

/// Copies a local file or directory into `remote_dir` on the system behind
/// `conn` (the directory is created when missing), as tar over the
/// connection: it needs only tar on both sides, like the rest of atex.
///
/// ```no_run
/// # use atex::{Connection, executor::transport::copy_to};
/// copy_to(&Connection::Local, "results/report.txt".as_ref(), "/tmp/in")?;
/// # Ok::<(), atex::executor::transport::CopyError>(())
/// ```
pub fn copy_to(
    conn: &Connection,
    local: &std::path::Path,
    remote_dir: &str,
) -> Result<(), CopyError> {
    let (parent, name) = parent_and_name(local)?;
    let mut pack = Command::new("tar");
    pack.arg("-C").arg(&parent).args(["-cf", "-", "--", &name]);
    let unpack = command_for(
        conn,
        &[
            "sh",
            "-c",
            r#"mkdir -p -- "$1" && exec tar -C "$1" -xf -"#,
            "sh",
            remote_dir,
        ],
    );
    pipe_through(pack, "local tar", unpack, "tar on the system")
}

/// Copies the file or directory `remote_path` of the system behind `conn`
/// into the local directory `local_dir` (created when missing).
pub fn copy_from(
    conn: &Connection,
    remote_path: &str,
    local_dir: &std::path::Path,
) -> Result<(), CopyError> {
    let trimmed = remote_path.trim_end_matches('/');
    let (parent, name) = parent_and_name(std::path::Path::new(trimmed))?;
    let parent = parent.to_string_lossy().into_owned();
    let pack = command_for(conn, &["tar", "-C", &parent, "-cf", "-", "--", &name]);
    std::fs::create_dir_all(local_dir).map_err(|source| CopyError::Spawn {
        what: "mkdir",
        source,
    })?;
    let mut unpack = Command::new("tar");
    unpack.arg("-C").arg(local_dir).args(["-xf", "-"]);
    pipe_through(pack, "tar on the system", unpack, "local tar")
}

/// The local argv of an interactive login shell on the system behind
/// `conn`, for a person at a terminal: `ssh … user@host` (with `sudo -i`
/// when the login user is not root), `podman exec -it … bash -l`, or a
/// local shell. `atex reserve` prints it and runs it.
pub fn shell_argv(conn: &Connection) -> Vec<String> {
    match conn {
        Connection::Local => {
            vec![std::env::var("SHELL").unwrap_or_else(|_| "bash".to_string())]
        }
        Connection::Command(prefix) => {
            let mut argv = prefix.clone();
            let engine = argv.first().is_some_and(|p| {
                let name = std::path::Path::new(p)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("");
                name == "podman" || name == "docker"
            });
            // `podman exec -i ID` passes stdin only; a person needs a TTY.
            if engine
                && let Some(at) = argv.iter().position(|a| a == "exec")
                && !argv.iter().any(|a| a == "-t" || a == "-it" || a == "--tty")
            {
                argv.insert(at + 1, "-t".to_string());
            }
            argv.extend(["bash".to_string(), "-l".to_string()]);
            argv
        }
        Connection::Ssh(t) => {
            let mut argv = vec!["ssh".to_string()];
            if t.sudo {
                argv.push("-t".into());
            }
            let set: Vec<&str> = t
                .options
                .iter()
                .filter_map(|o| o.split_once('=').map(|(k, _)| k))
                .collect();
            // The target's options, then the defaults a person needs to
            // get in the way atex does (no prompt about throwaway keys).
            let defaults = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]
                .into_iter()
                .filter(|d| d.split_once('=').is_some_and(|(k, _)| !set.contains(&k)));
            for opt in t.options.iter().map(String::as_str).chain(defaults) {
                argv.push("-o".into());
                argv.push(opt.to_string());
            }
            if let Some(key) = &t.identity_file {
                argv.extend(["-o".into(), "IdentitiesOnly=yes".into(), "-i".into()]);
                argv.push(key.to_string_lossy().into_owned());
            }
            if t.port != 22 {
                argv.extend(["-p".into(), t.port.to_string()]);
            }
            argv.push(format!("{}@{}", t.user, t.host));
            if t.sudo {
                argv.extend(["sudo".into(), "-i".into()]);
            }
            argv
        }
    }
}

/// A connection the host keeps open to one system: for ssh, a
/// ControlMaster every command goes through (one handshake per system,
/// not per command); nothing for the other kinds.
pub struct Transport {
    connection: Connection,
    master: Option<SshMaster>,
}

struct SshMaster {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl SshMaster {
    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("cm")
    }
}

impl Drop for SshMaster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Transport {
    /// A transport for `connection`; ssh connects lazily.
    pub fn new(connection: Connection) -> Self {
        Transport {
            connection,
            master: None,
        }
    }

    /// The connection data.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Makes sure an ssh master is up (a no-op for other kinds). Waits at
    /// most `limit` for it.
    pub fn connect(&mut self, limit: std::time::Duration) -> Result<(), ConnectError> {
        let Connection::Ssh(target) = &self.connection else {
            return Ok(());
        };
        if let Some(m) = &mut self.master {
            if matches!(m.child.try_wait(), Ok(None)) && m.socket().exists() {
                return Ok(());
            }
            self.master = None;
        }
        let dir = tempfile::Builder::new()
            .prefix("atex-ssh-")
            .tempdir()
            .map_err(ConnectError::TempDir)?;
        let socket = dir.path().join("cm");
        let mut cmd = Command::new("ssh");
        cmd.arg("-M")
            .arg("-N")
            .arg("-o")
            .arg(format!("ControlPath={}", socket.display()));
        cmd.args(["-o", "ControlPersist=no"]);
        cmd.args(ssh_base_args(target));
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        cmd.stderr(std::process::Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().map_err(ConnectError::Spawn)?;
        let mut master = SshMaster { child, dir };
        let start = std::time::Instant::now();
        loop {
            if master.socket().exists() {
                self.master = Some(master);
                return Ok(());
            }
            if let Ok(Some(status)) = master.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = master.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(ConnectError::Exited {
                    target: format!("{}@{}", target.user, target.host),
                    status: status.to_string(),
                    stderr: err.trim().to_string(),
                });
            }
            if start.elapsed() > limit {
                return Err(ConnectError::Timeout {
                    target: format!("{}@{}", target.user, target.host),
                    limit,
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Drops the ssh master (e.g. after the system rebooted).
    pub fn disconnect(&mut self) {
        self.master = None;
    }

    /// A local command running `argv` on the system, through the master
    /// when there is one. It is put in its own process group so the
    /// terminal's Ctrl-C reaches atex, which then stops it in order.
    pub fn command<S: AsRef<str>>(&self, argv: &[S]) -> Command {
        let mut cmd = match (&self.connection, &self.master) {
            (Connection::Ssh(target), Some(master)) => {
                let mut cmd = Command::new("ssh");
                cmd.arg("-o")
                    .arg(format!("ControlPath={}", master.socket().display()));
                cmd.args(["-o", "ControlMaster=no"]);
                cmd.args(ssh_base_args(target));
                cmd.arg(remote_line(target, argv));
                cmd
            }
            (conn, _) => command_for(conn, argv),
        };
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        let argv = ["printf", "%s|", "a b", "it's", "", "$HOME", "*"];
        let line = shell_join(&argv);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's||$HOME|*|");
    }

    #[test]
    fn command_prefix_is_prepended() {
        let cmd = command_for(
            &Connection::Command(vec!["env".into(), "A=1".into()]),
            &["sh", "-c", "echo $A"],
        );
        let out = { cmd }.output().expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    }

    fn target(sudo: bool, options: &[&str]) -> SshTarget {
        SshTarget {
            host: "192.0.2.7".into(),
            port: 2222,
            user: "tester".into(),
            identity_file: None,
            options: options.iter().map(|o| o.to_string()).collect(),
            sudo,
        }
    }

    fn args_of(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn target_options_come_before_the_defaults() {
        let args = ssh_base_args(&target(false, &["StrictHostKeyChecking=yes"]));
        let mine = args.iter().position(|a| a == "StrictHostKeyChecking=yes");
        let default = args.iter().position(|a| a == "StrictHostKeyChecking=no");
        assert!(
            mine.is_some() && default.is_some() && mine < default,
            "{args:?}"
        );
    }

    #[test]
    fn sudo_targets_run_commands_through_sudo() {
        let plain = command_for(&Connection::Ssh(target(false, &[])), &["id", "-u"]);
        assert_eq!(
            args_of(&plain).last().map(String::as_str),
            Some("exec id -u")
        );
        let sudo = command_for(&Connection::Ssh(target(true, &[])), &["id", "-u"]);
        assert_eq!(
            args_of(&sudo).last().map(String::as_str),
            Some("exec sudo -n -- id -u")
        );
    }

    #[test]
    fn shell_argv_is_what_a_person_types() {
        let ssh = shell_argv(&Connection::Ssh(target(true, &["UserKnownHostsFile=/k"])));
        assert_eq!(
            shell_join(&ssh),
            "ssh -t -o UserKnownHostsFile=/k -o StrictHostKeyChecking=no -p 2222 tester@192.0.2.7 sudo -i"
        );
        let podman = shell_argv(&Connection::Command(
            ["podman", "exec", "-i", "c1"].map(String::from).to_vec(),
        ));
        assert_eq!(shell_join(&podman), "podman exec -t -i c1 bash -l");
    }

    #[test]
    fn files_go_there_and_back() {
        let src = tempfile::tempdir().expect("tempdir");
        let tree = src.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
        std::fs::write(tree.join("sub/a b.txt"), "hello\n").expect("write");
        let remote = tempfile::tempdir().expect("tempdir");
        let remote_dir = remote.path().join("in/here");
        // Through a command prefix, as a container connection is.
        let conn = Connection::Command(vec!["env".into(), "LC_ALL=C".into()]);
        copy_to(&conn, &tree, remote_dir.to_str().expect("utf-8")).expect("copy to");
        assert_eq!(
            std::fs::read_to_string(remote_dir.join("tree/sub/a b.txt")).expect("copied"),
            "hello\n"
        );
        let back = src.path().join("back");
        copy_from(
            &conn,
            remote_dir.join("tree/sub/").to_str().expect("utf-8"),
            &back,
        )
        .expect("copy from");
        assert_eq!(
            std::fs::read_to_string(back.join("sub/a b.txt")).expect("copied back"),
            "hello\n"
        );
        let missing = copy_from(&conn, "/nonexistent/atex-nothing", &back);
        assert!(
            matches!(missing, Err(CopyError::Failed { .. })),
            "{missing:?}"
        );
    }
}

/// Why an ssh master connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Its socket directory could not be made.
    #[error("cannot create a directory for the ssh socket: {0}")]
    TempDir(std::io::Error),
    /// `ssh` could not be started.
    #[error("cannot run ssh: {0}")]
    Spawn(std::io::Error),
    /// `ssh` ended before it connected.
    #[error("ssh to {target} exited with {status}: {stderr}")]
    Exited {
        /// `user@host`.
        target: String,
        /// How it ended.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// It did not connect in time.
    #[error("ssh to {target} did not connect within {limit:?}")]
    Timeout {
        /// `user@host`.
        target: String,
        /// The time it had.
        limit: std::time::Duration,
    },
}
