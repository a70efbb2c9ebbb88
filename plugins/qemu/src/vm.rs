//! One QEMU process: its command line, its files, starting it, asking
//! whether ssh works yet, saving its state, and killing it.

use std::{
    fs::OpenOptions,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use serde_json::json;

use crate::{PROVISIONER_MARKER, QemuError, RUN_MARKER, qmp::Qmp};

/// Everything every VM of one provisioner has in common.
pub(crate) struct Machine {
    pub qemu: String,
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    /// Kernel command line, the ssh key included.
    pub append: String,
    pub memory: u32,
    pub cpus: u32,
    pub extra: Vec<String>,
    pub run_label: String,
    pub token: String,
}

/// The accelerator arguments actually used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    Kvm,
    Tcg { tb_size: u32 },
}

impl Resolved {
    fn args(&self) -> Vec<String> {
        match self {
            Resolved::Kvm => vec!["-accel".into(), "kvm".into(), "-cpu".into(), "host".into()],
            Resolved::Tcg { tb_size } => vec!["-accel".into(), format!("tcg,tb-size={tb_size}")],
        }
    }
}

/// The files of one VM in the provisioner's state directory.
pub(crate) struct Files {
    pub overlay: PathBuf,
    pub pidfile: PathBuf,
    pub qmp: PathBuf,
    pub serial: PathBuf,
    /// QEMU's own error output (a file, not a pipe nobody reads while the
    /// VM runs).
    pub stderr: PathBuf,
}

impl Files {
    pub(crate) fn new(dir: &Path, name: &str) -> Files {
        Files {
            overlay: dir.join(format!("{name}.qcow2")),
            pidfile: dir.join(format!("{name}.pid")),
            qmp: dir.join(format!("{name}.qmp")),
            serial: dir.join(format!("{name}.log")),
            stderr: dir.join(format!("{name}.err")),
        }
    }

    pub(crate) fn remove(&self, keep_overlay: bool) {
        if !keep_overlay {
            let _ = std::fs::remove_file(&self.overlay);
        }
        for p in [&self.pidfile, &self.qmp, &self.serial, &self.stderr] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Quotes a path for the shell QEMU runs `exec:` migration commands with.
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

/// Commas in QEMU option values are doubled.
fn qemu_escape(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// `qemu-img create` of a copy-on-write overlay on `backing`.
pub(crate) fn create_overlay(backing: &Path, overlay: &Path) -> Result<(), QemuError> {
    let format = image_format(backing);
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(backing)
        .arg(overlay)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| QemuError::Spawn {
            program: "qemu-img".into(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(QemuError::Failed {
            what: format!("qemu-img create of {}", overlay.display()),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// `qcow2` when the file starts with the qcow2 magic, `raw` otherwise.
fn image_format(path: &Path) -> &'static str {
    use std::io::Read;
    let mut magic = [0u8; 4];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)) {
        Ok(()) if &magic == b"QFI\xfb" => "qcow2",
        _ => "raw",
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; QEMU binds it shortly
/// after, and a lost race is retried by the caller).
pub(crate) fn free_port() -> Result<u16, QemuError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| QemuError::Failed {
        what: "finding a free port".into(),
        message: e.to_string(),
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| QemuError::Failed {
            what: "finding a free port".into(),
            message: e.to_string(),
        })
}

impl Machine {
    /// The full QEMU argv for one VM.
    pub(crate) fn argv(
        &self,
        name: &str,
        files: &Files,
        accel: &Resolved,
        port: u16,
        incoming: Option<&Path>,
    ) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-name".into(),
            format!("guest={name},process=atex-qemu"),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
        ];
        a.extend(accel.args());
        a.extend([
            "-m".into(),
            self.memory.to_string(),
            "-smp".into(),
            self.cpus.to_string(),
            "-kernel".into(),
            self.kernel.to_string_lossy().into_owned(),
        ]);
        if let Some(initrd) = &self.initrd {
            a.extend(["-initrd".into(), initrd.to_string_lossy().into_owned()]);
        }
        a.extend([
            "-append".into(),
            self.append.clone(),
            "-drive".into(),
            format!(
                "file={},if=virtio,format=qcow2,cache=unsafe",
                qemu_escape(&files.overlay)
            ),
            "-netdev".into(),
            format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
            "-serial".into(),
            format!("file:{}", files.serial.to_string_lossy()),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qemu_escape(&files.qmp)),
            "-pidfile".into(),
            files.pidfile.to_string_lossy().into_owned(),
            // Markers: which run and which provisioner a process belongs to
            // (read by `remove_leftovers`); harmless firmware config blobs.
            "-fw_cfg".into(),
            format!("name={RUN_MARKER},string={}", self.run_label),
            "-fw_cfg".into(),
            format!("name={PROVISIONER_MARKER},string={}", self.token),
        ]);
        if let Some(state) = incoming {
            a.extend(["-incoming".into(), format!("exec:cat {}", sh_quote(state))]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// Starts QEMU in its own process group (a Ctrl-C on the terminal
    /// reaches atex, which stops the VMs itself).
    pub(crate) fn spawn(&self, argv: &[String], stderr: &Path) -> Result<Child, QemuError> {
        use std::os::unix::process::CommandExt as _;
        let err = std::fs::File::create(stderr)
            .map_err(|e| QemuError::Io(format!("creating {}: {e}", stderr.display())))?;
        Command::new(&self.qemu)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| QemuError::Spawn {
                program: self.qemu.clone(),
                message: e.to_string(),
            })
    }
}

/// A QEMU child and what is needed to reach and end it.
pub(crate) struct Process {
    pub name: String,
    pub port: u16,
    pub files: Files,
    child: Mutex<Option<Child>>,
    pub pid: u32,
}

impl Process {
    pub(crate) fn new(name: String, port: u16, files: Files, child: Child) -> Process {
        Process {
            name,
            port,
            files,
            pid: child.id(),
            child: Mutex::new(Some(child)),
        }
    }

    /// `None` while running; the exit description once it has ended (and
    /// QEMU's error output, if it said anything).
    pub(crate) fn exited(&self) -> Option<String> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(child) = guard.as_mut() else {
            return Some("QEMU was killed".into());
        };
        match child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => {
                let err = std::fs::read(&self.files.stderr).unwrap_or_default();
                let err = String::from_utf8_lossy(&err).trim().replace('\n', "; ");
                Some(if err.is_empty() {
                    format!("QEMU exited ({status})")
                } else {
                    format!("QEMU exited ({status}): {err}")
                })
            }
            Err(e) => Some(format!("cannot wait for QEMU: {e}")),
        }
    }

    /// Kills QEMU (if it still runs) and reaps it. Idempotent.
    pub(crate) fn kill(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = guard.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `limit` for QEMU to exit by itself; kills it after that.
    pub(crate) fn wait_exit(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Waits until an incoming migration has been loaded (the VM is then
    /// paused) and lets the VM run.
    pub(crate) fn resume_after_restore(&self, limit: Duration) -> Result<(), QemuError> {
        let fail = |message: String| QemuError::Failed {
            what: format!("restoring {}", self.name),
            message,
        };
        let mut qmp = Qmp::connect(&self.files.qmp, Duration::from_secs(10)).map_err(fail)?;
        let deadline = Instant::now() + limit;
        loop {
            let status = qmp.execute("query-status", None).map_err(fail)?;
            match status.get("status").and_then(|s| s.as_str()).unwrap_or("") {
                "running" => return Ok(()),
                "paused" | "postmigrate" | "prelaunch" => {
                    qmp.execute("cont", None).map_err(fail)?;
                }
                "inmigrate" | "finish-migrate" | "restore-vm" => {}
                other => return Err(fail(format!("the VM is in state {other:?}"))),
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "the saved state was not loaded within {} s",
                    limit.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the guest kernel panicked (it then hangs, and QEMU keeps
    /// running): the end of the serial console says so.
    pub(crate) fn guest_panicked(&self) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.files.serial) else {
            return false;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let mut tail = Vec::new();
        if f.seek(SeekFrom::Start(len.saturating_sub(8192))).is_err()
            || f.read_to_end(&mut tail).is_err()
        {
            return false;
        }
        String::from_utf8_lossy(&tail).contains("Kernel panic - not syncing")
    }

    /// The last lines QEMU's serial console printed, for error messages.
    pub(crate) fn console_tail(&self) -> String {
        let text = std::fs::read(&self.files.serial).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }

    /// Pauses the VM, saves its state to `state` (a migration to a file),
    /// then quits QEMU.
    ///
    /// The VM is paused first: a live migration under TCG gave restored
    /// guests a corrupted memory now and then (kernel oopses, segfaulting
    /// sshd). VMs restored from a paused state start paused;
    /// [`Process::resume_after_restore`] lets them run.
    pub(crate) fn save_and_quit(&self, state: &Path) -> Result<(), QemuError> {
        let fail = |message: String| QemuError::Failed {
            what: format!("saving the state of {}", self.name),
            message,
        };
        let mut qmp = Qmp::connect(&self.files.qmp, Duration::from_secs(10)).map_err(fail)?;
        qmp.execute("stop", None).map_err(fail)?;
        // A bandwidth limit far above the default (128 MiB/s) but not so
        // high that QEMU gives up on it.
        qmp.execute(
            "migrate-set-parameters",
            Some(json!({ "max-bandwidth": 1u64 << 30 })),
        )
        .map_err(fail)?;
        qmp.execute(
            "migrate",
            Some(json!({ "uri": format!("exec:cat > {}", sh_quote(state)) })),
        )
        .map_err(fail)?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let info = qmp.execute("query-migrate", None).map_err(fail)?;
            match info.get("status").and_then(|s| s.as_str()) {
                Some("completed") => break,
                Some("failed") | Some("cancelled") => {
                    let why = info
                        .get("error-desc")
                        .and_then(|s| s.as_str())
                        .unwrap_or("no reason given");
                    return Err(fail(format!("migration failed: {why}")));
                }
                _ if Instant::now() > deadline => {
                    return Err(fail("migration did not complete within 120 s".into()));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let _ = qmp.execute("quit", None);
        self.wait_exit(Duration::from_secs(10));
        Ok(())
    }
}

/// Options of every ssh probe: never prompt, never remember host keys of
/// throw-away machines, give up quickly.
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

/// Logs in, sets the guest's clock to the host's (a restored VM's clock
/// lags by the time since the state was saved) and runs `then`, a shell
/// command whose result does not count. True when the login worked within
/// `limit`.
pub(crate) fn ssh_probe(key: &Path, user: &str, port: u16, then: &str, limit: Duration) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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
        .arg("127.0.0.1")
        .arg(format!(
            "date -u -s @{now} >/dev/null 2>&1; {then} ; exit 123"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code() == Some(123),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Runs `script` (fed to `sh -s` on stdin) over ssh as `user`, killing it
/// after `limit` or once `cancelled` says so; returns whether it exited 0
/// and the last lines of its combined output.
pub(crate) fn ssh_run(
    key: &Path,
    user: &str,
    port: u16,
    script: &str,
    limit: Duration,
    cancelled: &dyn Fn() -> bool,
) -> Result<(bool, String), QemuError> {
    use std::io::Write;
    let out_file = tempfile::NamedTempFile::new().map_err(|e| QemuError::Io(e.to_string()))?;
    let err = out_file
        .as_file()
        .try_clone()
        .map_err(|e| QemuError::Io(e.to_string()))?;
    let out = out_file
        .as_file()
        .try_clone()
        .map_err(|e| QemuError::Io(e.to_string()))?;
    let mut cmd = Command::new("ssh");
    cmd.arg("-T");
    for opt in PROBE_OPTIONS {
        cmd.arg("-o").arg(opt);
    }
    cmd.args(["-o", "ServerAliveInterval=10", "-i"])
        .arg(key)
        .arg("-p")
        .arg(port.to_string())
        .arg("-l")
        .arg(user)
        .arg("127.0.0.1")
        .arg("sh -s")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err);
    let mut child = cmd.spawn().map_err(|e| QemuError::Spawn {
        program: "ssh".into(),
        message: e.to_string(),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A guest that closed early shows in the exit status.
        let _ = stdin.write_all(script.as_bytes());
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline && !cancelled() => {
                std::thread::sleep(Duration::from_millis(100));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = std::fs::read(out_file.path()).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    match status {
        Some(s) => Ok((s.success(), tail)),
        None if cancelled() => Err(QemuError::Stopped("qemu: stopped while preparing".into())),
        None => Ok((
            false,
            format!(
                "did not finish within {} s (last output: {tail})",
                limit.as_secs()
            ),
        )),
    }
}

/// An ed25519 key pair made with `ssh-keygen` in a private directory.
pub(crate) struct KeyPair {
    pub private: PathBuf,
    pub public: String,
}

impl KeyPair {
    pub(crate) fn generate(dir: &Path) -> Result<KeyPair, QemuError> {
        let private = dir.join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "atex-qemu", "-f"])
            .arg(&private)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| QemuError::Spawn {
                program: "ssh-keygen".into(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(QemuError::Failed {
                what: "ssh-keygen".into(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let public = std::fs::read_to_string(private.with_extension("pub"))
            .map_err(|e| QemuError::Io(format!("reading the public key: {e}")))?;
        Ok(KeyPair {
            private,
            public: public.trim().to_string(),
        })
    }

    /// The kernel command line word the image's unit reads.
    pub(crate) fn kernel_arg(&self) -> String {
        let line = format!("{}\n", self.public);
        format!(
            "atex.authorized_key={}",
            base64::engine::general_purpose::STANDARD.encode(line)
        )
    }
}

/// Whether `/dev/kvm` can be opened for reading and writing.
pub(crate) fn kvm_openable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// What the probe waits for on the serial console: printed by the kernel
/// proper once it runs in 64-bit mode and has set up its drivers.
const PROBE_MARK: &str = "Freeing unused kernel";

/// Boots the kernel under KVM with no disk and reports whether it got as
/// far as [`PROBE_MARK`] within `limit`. A KVM that exists but makes no
/// progress (a nested or paravirtualised host) fails here.
pub(crate) fn kvm_works(
    machine: &Machine,
    dir: &Path,
    limit: Duration,
    stopping: &dyn Fn() -> bool,
) -> Result<bool, QemuError> {
    let log = dir.join("kvm-probe.log");
    let _ = std::fs::remove_file(&log);
    let mut argv: Vec<String> = vec![
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-accel".into(),
        "kvm".into(),
        "-cpu".into(),
        "host".into(),
        "-m".into(),
        "256".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        machine.kernel.to_string_lossy().into_owned(),
    ];
    if let Some(initrd) = &machine.initrd {
        argv.extend(["-initrd".into(), initrd.to_string_lossy().into_owned()]);
    }
    argv.extend([
        "-append".into(),
        "console=ttyS0 panic=-1".into(),
        "-serial".into(),
        format!("file:{}", log.to_string_lossy()),
        "-fw_cfg".into(),
        format!("name={RUN_MARKER},string={}", machine.run_label),
    ]);
    let files = Files::new(dir, "kvm-probe");
    let child = machine.spawn(&argv, &files.stderr)?;
    let p = Process::new("kvm-probe".into(), 0, files, child);
    let deadline = Instant::now() + limit;
    let mut ok = false;
    while Instant::now() < deadline && !stopping() {
        let text = std::fs::read(&log).unwrap_or_default();
        if String::from_utf8_lossy(&text).contains(PROBE_MARK) {
            ok = true;
            break;
        }
        if let Some(why) = p.exited() {
            tracing::info!(target: "atex_qemu", "KVM probe: {why}");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    p.kill();
    p.files.remove(false);
    let _ = std::fs::remove_file(&log);
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_on_the_console_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Files::new(dir.path(), "vm-1");
        let child = Command::new("true").spawn().expect("spawn true");
        let p = Process::new("vm-1".into(), 0, files, child);
        assert!(!p.guest_panicked(), "no console file yet");
        let mut console = "[    1.0] booting\n".repeat(2000);
        std::fs::write(&p.files.serial, &console).expect("write");
        assert!(!p.guest_panicked());
        console.push_str("[  239.8] Kernel panic - not syncing: sysrq triggered crash\n");
        std::fs::write(&p.files.serial, &console).expect("write");
        assert!(p.guest_panicked());
        assert!(p.console_tail().contains("Kernel panic"));
        p.kill();
    }

    #[test]
    fn argv_has_markers_and_restore() {
        let m = Machine {
            qemu: "qemu-system-x86_64".into(),
            kernel: "/k".into(),
            initrd: None,
            append: "root=/dev/vda".into(),
            memory: 512,
            cpus: 1,
            extra: vec![],
            run_label: "run-1".into(),
            token: "abcd".into(),
        };
        let f = Files::new(Path::new("/s,t"), "vm-1");
        let a = m.argv(
            "vm-1",
            &f,
            &Resolved::Tcg { tb_size: 128 },
            2222,
            Some(Path::new("/s/it's")),
        );
        assert!(a.contains(&"name=opt/atex/run,string=run-1".to_string()));
        assert!(a.contains(&"tcg,tb-size=128".to_string()));
        assert!(
            a.contains(&"file=/s,,t/vm-1.qcow2,if=virtio,format=qcow2,cache=unsafe".to_string())
        );
        assert!(a.contains(&r"exec:cat '/s/it'\''s'".to_string()));
        assert!(a.contains(&"user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22".to_string()));
    }
}
