//! Machines that "already exist", for the `ssh` provisioner's tests: sshd
//! containers (`localhost/atex-test-ssh:bookworm`) published on port 22 of
//! their own loopback address `127.0.0.N`, a key pair that logs in as root,
//! optionally a second user with passwordless sudo, and a known_hosts file
//! with their host keys (from `ssh-keyscan`).

use std::{
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use crate::{podman, testing_farm_fake::SSH_IMAGE};

/// The label on every stand-in container.
pub const LABEL: &str = "atex.test=ssh-hosts";

/// One sshd container.
pub struct StandIn {
    /// Container name.
    pub container: String,
    /// Its loopback address (port 22).
    pub addr: Ipv4Addr,
}

/// A set of stand-ins with one key pair and one known_hosts file.
pub struct SshHosts {
    dir: tempfile::TempDir,
    /// The containers, in start order.
    pub hosts: Vec<StandIn>,
}

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl SshHosts {
    /// Starts `n` stand-ins and waits until each answers ssh with the key.
    pub fn start(n: usize) -> SshHosts {
        crate::testing_farm_fake::ensure_ssh_image();
        let dir = tempfile::Builder::new()
            .prefix("atex-ssh-hosts-")
            .tempdir()
            .expect("tempdir");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "atex-test", "-f"])
                .arg(dir.path().join("key"))
                .stdin(Stdio::null()),
            "ssh-keygen",
        );
        let mut set = SshHosts {
            dir,
            hosts: Vec::new(),
        };
        for i in 0..n {
            let host = set.start_one(i);
            set.hosts.push(host);
        }
        let public = std::fs::read(set.dir.path().join("key.pub")).expect("public key");
        for h in &set.hosts {
            set.exec_stdin(
                h,
                "umask 077; mkdir -p /root/.ssh; cat >> /root/.ssh/authorized_keys",
                &public,
            );
        }
        let mut known = String::new();
        for h in &set.hosts {
            known.push_str(&keyscan(h.addr));
        }
        std::fs::write(set.known_hosts(), known).expect("write known_hosts");
        set
    }

    fn start_one(&self, i: usize) -> StandIn {
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{}-{serial}", std::process::id());
        let name = format!("atex-ssh-host-{tag}");
        // A loopback address nobody else uses: different test processes
        // start at different places and skip taken ones.
        let base = 20 + (std::process::id() as usize * 7 + (serial + i) * 13) % 70;
        let mut last = String::new();
        for step in 0..40 {
            let n = u8::try_from(20 + (base + step) % 70).unwrap_or(20);
            let addr = Ipv4Addr::new(127, 0, 0, n);
            if TcpStream::connect_timeout(&(addr, 22).into(), Duration::from_millis(100)).is_ok() {
                continue;
            }
            let out = podman()
                .args(["run", "-d", "--pull=never", "--name", &name])
                .args(["--label", LABEL])
                .arg("-p")
                .arg(format!("{addr}:22:22"))
                .arg(SSH_IMAGE)
                .output()
                .expect("podman run");
            if out.status.success() {
                let end = Instant::now() + Duration::from_secs(30);
                while TcpStream::connect_timeout(&(addr, 22).into(), Duration::from_millis(500))
                    .is_err()
                {
                    assert!(Instant::now() < end, "sshd in {name} never answered");
                    std::thread::sleep(Duration::from_millis(100));
                }
                return StandIn {
                    container: name,
                    addr,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_string();
            let _ = podman().args(["rm", "-f", "-t", "0", &name]).output();
        }
        panic!("cannot start a stand-in host: {last}");
    }

    fn exec_stdin(&self, host: &StandIn, script: &str, input: &[u8]) {
        use std::io::Write as _;
        let mut child = podman()
            .args(["exec", "-i", &host.container, "sh", "-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("podman exec");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates `user` on stand-in `i`, allowed in with the key, with
    /// passwordless sudo.
    pub fn add_sudo_user(&self, i: usize, user: &str) {
        let public = std::fs::read(self.dir.path().join("key.pub")).expect("public key");
        let script = format!(
            "set -e; useradd -m -s /bin/bash {user}; \
             install -d -m 700 -o {user} -g {user} /home/{user}/.ssh; \
             cat > /home/{user}/.ssh/authorized_keys; \
             chown {user}:{user} /home/{user}/.ssh/authorized_keys; \
             chmod 600 /home/{user}/.ssh/authorized_keys; \
             echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user}; \
             chmod 440 /etc/sudoers.d/{user}"
        );
        self.exec_stdin(&self.hosts[i], &script, &public);
    }

    /// Creates `user` on stand-in `i`, allowed in with the key, without sudo.
    pub fn add_plain_user(&self, i: usize, user: &str) {
        let public = std::fs::read(self.dir.path().join("key.pub")).expect("public key");
        let script = format!(
            "set -e; useradd -m -s /bin/bash {user}; \
             install -d -m 700 -o {user} -g {user} /home/{user}/.ssh; \
             cat > /home/{user}/.ssh/authorized_keys; \
             chown {user}:{user} /home/{user}/.ssh/authorized_keys"
        );
        self.exec_stdin(&self.hosts[i], &script, &public);
    }

    /// The private key that logs in everywhere.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key")
    }

    /// The known_hosts file with every stand-in's host keys.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A scratch directory that lives as long as the set.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether container `i` still exists.
    pub fn exists(&self, i: usize) -> bool {
        podman()
            .args(["container", "exists", &self.hosts[i].container])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        let names: Vec<&str> = self.hosts.iter().map(|h| h.container.as_str()).collect();
        if !names.is_empty() {
            let _ = podman().args(["rm", "-f", "-t", "0"]).args(names).output();
        }
    }
}

/// The host keys of `addr` as known_hosts lines.
fn keyscan(addr: Ipv4Addr) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("ssh-keyscan")
            .args(["-T", "5", "-p", "22"])
            .arg(addr.to_string())
            .stderr(Stdio::null())
            .output()
            .expect("ssh-keyscan");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().any(|l| !l.starts_with('#') && !l.is_empty()) {
            return text;
        }
        assert!(Instant::now() < end, "ssh-keyscan {addr} found no keys");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `127.0.0.1:PORT` where nothing listens: a host that does not answer.
pub fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("127.0.0.1:{port}")
}
