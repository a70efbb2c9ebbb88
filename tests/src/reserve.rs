//! `atex reserve` run as a child process, as the reserve tests drive it.

use std::{
    io::{BufRead as _, BufReader, Read as _},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::{atex_bin, containers_conf, plugin_dir_with};

/// A running `atex reserve` and the lines it printed so far.
pub struct Reservation {
    /// The `atex reserve` process.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    _plugins: tempfile::TempDir,
}

impl Reservation {
    /// Starts `atex reserve -p SPEC EXTRA...` with only `plugin` in its
    /// plugin directory.
    pub fn start(plugin: &str, spec: &str, extra: &[&str]) -> Reservation {
        let plugins = plugin_dir_with(&[plugin]);
        let mut child = Command::new(atex_bin())
            .arg("reserve")
            .arg("--plugin-dir")
            .arg(plugins.path())
            .args(["-p", spec])
            .args(extra)
            .env("CONTAINERS_CONF", containers_conf())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start atex reserve");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Reservation {
            child,
            lines,
            _plugins: plugins,
        }
    }

    /// The `connect:` line, waiting up to `limit` for it.
    pub fn connect_line(&mut self, limit: Duration) -> String {
        let end = Instant::now() + limit;
        let mut seen = Vec::new();
        while Instant::now() < end {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(cmd) = line.strip_prefix("connect: ") {
                        return cmd.to_string();
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!(
                            "atex reserve exited ({status}) before printing the connection:\n{}\n{}",
                            seen.join("\n"),
                            self.stderr()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        panic!(
            "no `connect:` line within {limit:?}:\n{}\n{}",
            seen.join("\n"),
            self.stderr()
        );
    }

    /// Its error output (once it has ended).
    pub fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    /// Sends it signal `sig`.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
    }

    /// Waits for it to exit; its exit code and its error output.
    pub fn wait(&mut self, limit: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code(), self.stderr());
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("atex reserve did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs the `connect:` command `line` as a person would, with `input` on
/// its stdin instead of a keyboard; its standard output and error.
pub fn type_into(line: &str, input: &str) -> (String, String) {
    use std::io::Write as _;
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the printed command");
    shell
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = shell.wait_with_output().expect("wait");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
