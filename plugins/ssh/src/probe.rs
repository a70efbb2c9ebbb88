//! The ssh options of every connection, and the check made of each host at
//! `start`.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::config::{HostEntry, Settings};

/// The `Key=Value` ssh options the host is given for every slot: the
/// connect timeout and host key checking.
pub fn ssh_options(settings: &Settings) -> Vec<String> {
    let mut opts = vec![format!("ConnectTimeout={}", settings.connect_timeout)];
    if settings.host_key_check {
        opts.push("StrictHostKeyChecking=yes".into());
        opts.push(match &settings.known_hosts {
            Some(file) => format!("UserKnownHostsFile={}", file.display()),
            // ssh's own default, spelled out: the host's generic options
            // would otherwise point it at /dev/null.
            None => "UserKnownHostsFile=~/.ssh/known_hosts ~/.ssh/known_hosts2".into(),
        });
    } else {
        opts.push("StrictHostKeyChecking=no".into());
        opts.push("UserKnownHostsFile=/dev/null".into());
    }
    opts
}

/// Logs in to `entry` once (and runs `sudo -n true` when `sudo`); `Err`
/// says why the host cannot be used, in one line.
pub fn probe(settings: &Settings, entry: &HostEntry, sudo: bool) -> Result<(), String> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-T");
    for opt in ssh_options(settings).into_iter().chain(
        [
            "BatchMode=yes",
            "LogLevel=ERROR",
            "ConnectionAttempts=1",
            "PasswordAuthentication=no",
            "RequestTTY=no",
        ]
        .map(String::from),
    ) {
        cmd.arg("-o").arg(opt);
    }
    if let Some(key) = &settings.key {
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
    }
    cmd.arg("-p")
        .arg(entry.port.to_string())
        .arg("-l")
        .arg(&entry.user)
        .arg(&entry.host)
        // 123 tells "the command ran" from any failure of ssh itself (255)
        // or of sudo (1).
        .arg(if sudo {
            "sudo -n true && exit 123"
        } else {
            "exit 123"
        })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run ssh: {e}"))?;
    // ConnectTimeout covers the TCP connect only; give the login itself
    // some more time before giving up on the host.
    let limit = Duration::from_secs(settings.connect_timeout.saturating_add(20));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} s", limit.as_secs()));
            }
            Err(e) => return Err(format!("cannot wait for ssh: {e}")),
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let err = err.trim().replace('\n', " / ");
    match status.code() {
        Some(123) => Ok(()),
        Some(255) if err.contains("Host key verification failed") => Err(format!(
            "its host key is not in {} (or differs from it): refusing to connect; add the key (ssh-keyscan -p {} {} >> FILE) or, for a throwaway machine, set host_key_check=false",
            settings.known_hosts.as_ref().map_or_else(
                || "~/.ssh/known_hosts".to_string(),
                |p| p.display().to_string()
            ),
            entry.port,
            entry.host
        )),
        Some(255) => Err(if err.is_empty() {
            "ssh failed".to_string()
        } else {
            err
        }),
        Some(_) if sudo => Err(format!(
            "{} cannot run `sudo -n` (passwordless sudo is needed for a user other than root){}",
            entry.user,
            if err.is_empty() {
                String::new()
            } else {
                format!(": {err}")
            }
        )),
        code => Err(format!(
            "the login shell did not run a command (exit {code:?}){}",
            if err.is_empty() {
                String::new()
            } else {
                format!(": {err}")
            }
        )),
    }
}
