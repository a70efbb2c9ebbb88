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
pub fn ssh_base_args(target: &SshTarget) -> Vec<String> {
    let mut args = vec!["-T".to_string()];
    for opt in SSH_DEFAULT_OPTIONS
        .iter()
        .copied()
        .map(str::to_string)
        .chain(target.options.iter().cloned())
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
            cmd.arg(format!("exec {}", shell_join(argv)));
            cmd
        }
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
}
