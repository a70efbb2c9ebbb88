//! The provisioner's ssh key pair and the "does ssh with our key work yet"
//! probe.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;

/// Options of the probe: never prompt, never remember host keys of
/// throw-away machines, give up on a dead address quickly.
const PROBE_OPTIONS: &[&str] = &[
    "BatchMode=yes",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "LogLevel=ERROR",
    "ConnectTimeout=10",
    "ConnectionAttempts=1",
    "IdentitiesOnly=yes",
    "RequestTTY=no",
    "PasswordAuthentication=no",
];

/// Why a key pair could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The private directory could not be made.
    #[error("cannot create a directory for the ssh key: {0}")]
    Directory(std::io::Error),
    /// `ssh-keygen` could not be started.
    #[error("cannot run ssh-keygen: {0}")]
    Spawn(std::io::Error),
    /// `ssh-keygen` failed; its error output.
    #[error("ssh-keygen failed: {0}")]
    Failed(String),
    /// The public key could not be read back.
    #[error("cannot read the public key: {0}")]
    ReadPublic(std::io::Error),
    /// The user's key (`ssh_key`) is unusable.
    #[error("`ssh_key` {path}: {reason}")]
    UserKey {
        /// The private key path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where the private key lives.
enum KeyHome {
    /// Generated into a private temporary directory (0700), removed on drop.
    Generated(tempfile::TempDir),
    /// The user's own key file (`ssh_key`), left alone.
    User(PathBuf),
}

/// The provisioner's key pair.
pub struct KeyPair {
    home: KeyHome,
    public: String,
}

impl KeyPair {
    /// Generates an ed25519 key pair with `ssh-keygen`.
    pub fn generate() -> Result<KeyPair, KeyError> {
        let dir = tempfile::Builder::new()
            .prefix("atex-testing-farm-")
            .tempdir()
            .map_err(KeyError::Directory)?;
        let key = dir.path().join("key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "atex", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .map_err(KeyError::Spawn)?;
        if !out.status.success() {
            return Err(KeyError::Failed(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        let public =
            std::fs::read_to_string(key.with_extension("pub")).map_err(KeyError::ReadPublic)?;
        Ok(KeyPair {
            home: KeyHome::Generated(dir),
            public: public.trim().to_string(),
        })
    }

    /// The user's own private key at `path` (the `ssh_key` option). Its
    /// public key is `PATH.pub` when that file exists, else derived with
    /// `ssh-keygen -y` (which fails for a key with a passphrase: ssh runs
    /// in batch mode and could not use it either).
    pub fn from_file(path: &Path) -> Result<KeyPair, KeyError> {
        let user_err = |reason: String| KeyError::UserKey {
            path: path.display().to_string(),
            reason,
        };
        std::fs::File::open(path).map_err(|e| user_err(format!("cannot read it: {e}")))?;
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let pub_path = PathBuf::from(pub_path);
        let public = if pub_path.is_file() {
            std::fs::read_to_string(&pub_path)
                .map_err(|e| user_err(format!("cannot read {}: {e}", pub_path.display())))?
        } else {
            let out = Command::new("ssh-keygen")
                .arg("-y")
                .arg("-P")
                .arg("")
                .arg("-f")
                .arg(path)
                .stdin(Stdio::null())
                .output()
                .map_err(KeyError::Spawn)?;
            if !out.status.success() {
                return Err(user_err(format!(
                    "not a usable private key without a passphrase (ssh-keygen -y: {})",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let public = public.lines().next().unwrap_or_default().trim().to_string();
        if public.split_whitespace().count() < 2 {
            return Err(user_err(
                "its public key is not an ssh public key line".into(),
            ));
        }
        Ok(KeyPair {
            home: KeyHome::User(path.to_path_buf()),
            public,
        })
    }

    /// The private key file.
    pub fn private_path(&self) -> PathBuf {
        match &self.home {
            KeyHome::Generated(dir) => dir.path().join("key"),
            KeyHome::User(path) => path.clone(),
        }
    }

    /// `TF_RESERVATION_AUTHORIZED_KEYS_BASE64`: the public key line, with a
    /// neutral comment, base64-encoded.
    pub fn authorized_keys_base64(&self) -> String {
        let mut parts = self.public.split_whitespace();
        let line = match (parts.next(), parts.next()) {
            (Some(kind), Some(key)) => format!("{kind} {key} atex@testing-farm\n"),
            _ => format!("{}\n", self.public),
        };
        base64::engine::general_purpose::STANDARD.encode(line)
    }
}

/// Whether `s` is safe as an ssh host or user (no option injection).
pub fn valid_login_part(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

/// Runs `exit 123` on the machine; true when it ran (ssh works with our key).
pub fn probe(key: &Path, user: &str, host: &str, port: u16) -> bool {
    let mut cmd = Command::new("ssh");
    cmd.arg("-T");
    for opt in PROBE_OPTIONS {
        cmd.arg("-o").arg(opt);
    }
    cmd.arg("-i")
        .arg(key)
        .arg("-p")
        .arg(port.to_string())
        .arg("-l")
        .arg(user)
        .arg(host)
        .arg("exit 123")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code() == Some(123),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_parts_are_checked() {
        assert!(valid_login_part("root"));
        assert!(valid_login_part("127.0.0.100"));
        assert!(valid_login_part("ip-10-0-0-1.ec2.internal"));
        assert!(!valid_login_part("-oProxyCommand=x"));
        assert!(!valid_login_part("a b"));
        assert!(!valid_login_part(""));
    }
}
