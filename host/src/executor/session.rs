//! One system: its persistent agent shell, setup and test runs.
//!
//! The agent (see [`super::scripts`]) is started once per system through
//! the transport and kept running; every test attempt is one request to
//! it. Time limits, cancellation and killing are decided here, on the host:
//! when a test runs out of time everything of its attempt on the system is
//! killed with a separate command ([`scripts::KILL_FUNCTION`]), then the
//! agent reports the end as usual.
//!
//! A `disconnect` ends the agent, so the test's next control write fails
//! (without killing it); the host then waits for a new boot token, and
//! starts the test again with `TMT_REBOOT_COUNT` raised. A connection that
//! breaks without `disconnect` is examined the same way, to say in the
//! note whether the system rebooted, went away, or only the connection
//! failed.

use std::{
    collections::HashSet,
    fs::OpenOptions,
    io::{Read, Write},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, ChildStdout, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;

use super::{
    CancelToken, CommandOutput, ExecError, PlanSpec, PrepareStep, TestOutcome, TestSpec,
    control::{ControlEvent, ControlParser, DurationChange, ResultWriter},
    helpers,
    scripts::{self, RunScript},
    transport::Transport,
};
use crate::{Status, backend::Connection};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// How long to wait for the agent to start.
const AGENT_START_LIMIT: Duration = Duration::from_secs(60);
/// How long a test that vanished after `disconnect` may take to show up
/// as a reboot (the system going down, then a new boot token).
const GONE_GRACE: Duration = Duration::from_secs(60);
/// How long a killed test may take to be reported as ended.
const KILL_GRACE: Duration = Duration::from_secs(15);
/// How long a system may take to come back from a reboot the test asked
/// for without a timeout of its own (tmt's `TMT_REBOOT_TIMEOUT` default).
const REBOOT_TIMEOUT: Duration = Duration::from_secs(600);

/// tmt's restart keys of a test (`restart-on-exit-code`,
/// `restart-max-count`, `restart-with-reboot`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RestartKeys {
    on_exit_code: Vec<i32>,
    max_count: u32,
    with_reboot: bool,
}

impl RestartKeys {
    fn from_metadata(metadata: &serde_json::Value) -> RestartKeys {
        let codes = match metadata.get("restart-on-exit-code") {
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|v| v.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect(),
            Some(v) => v
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        RestartKeys {
            on_exit_code: codes,
            max_count: metadata
                .get("restart-max-count")
                .and_then(serde_json::Value::as_u64)
                .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            with_reboot: metadata
                .get("restart-with-reboot")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        }
    }
}

/// tmt's verdict of a BeakerLib test from its `TestResults` summary:
/// status and note.
fn beakerlib_verdict(
    summary: Option<&serde_json::Map<String, serde_json::Value>>,
) -> (String, Option<String>) {
    let text = |key: &str| {
        summary
            .and_then(|m| m.get(key))
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let found = summary
        .and_then(|m| m.get("found"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if !found {
        return (
            "error".into(),
            Some("beakerlib: TestResults FileError (no TestResults in BEAKERLIB_DIR: the test never started a BeakerLib journal)".into()),
        );
    }
    let (state, result) = (text("state"), text("result"));
    if state.is_empty() || result.is_empty() {
        return (
            "error".into(),
            Some("beakerlib: Result/State missing in TestResults (BeakerLib 1.23 or later is needed)".into()),
        );
    }
    if state != "complete" {
        return (
            "error".into(),
            Some(format!(
                "beakerlib: State '{state}': the test never completed its journal (rlJournalEnd was not reached)"
            )),
        );
    }
    (result.to_lowercase(), None)
}

/// Options for opening a system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Time limit for setup (upload and prepare steps).
    pub setup_timeout: Option<Duration>,
    /// Kill what a test leaves running in its session when it exits.
    pub kill_leftovers: bool,
    /// Paths of the tree, relative to its root, that are not uploaded:
    /// by default atex's own results (`atex-results`) and timing history
    /// (`.atex-history.json`); `.git` never is.
    pub upload_exclude: Vec<String>,
    /// More host directories uploaded at setup, after the tree: each
    /// `(dest, dir)` goes to `dest` relative to the work directory (remote
    /// discover sections and libraries, see [`crate::remote`]); `.git` is
    /// left out.
    pub extra_uploads: Vec<(String, PathBuf)>,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            setup_timeout: Some(Duration::from_secs(3600)),
            kill_leftovers: true,
            upload_exclude: vec!["atex-results".into(), ".atex-history.json".into()],
            extra_uploads: Vec::new(),
        }
    }
}

enum Recv {
    Line(Vec<u8>),
    Eof,
    Timeout,
}

/// The agent's answers, a line at a time, read by the thread that waits
/// for them (`poll` with a time limit, then `read`): no reader thread, and
/// no hand-over between threads for every line.
struct LineReader {
    stdout: ChildStdout,
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    start: usize,
    eof: bool,
}

impl LineReader {
    fn new(stdout: ChildStdout) -> LineReader {
        LineReader {
            stdout,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            eof: false,
        }
    }

    /// The next line (without its newline; the last one may have none),
    /// the end of the stream, or nothing within `timeout`.
    fn next(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            let unread = &self.buf[self.start..];
            if let Some(i) = unread.iter().position(|&b| b == b'\n') {
                let line = unread[..i].to_vec();
                self.start += i + 1;
                return Recv::Line(line);
            }
            if self.eof {
                if unread.is_empty() {
                    return Recv::Eof;
                }
                let line = unread.to_vec();
                self.start = self.buf.len();
                return Recv::Line(line);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.stdout.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            // SAFETY: one valid pollfd for a descriptor this reader owns.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                self.eof = true;
                continue;
            }
            if n == 0 {
                return Recv::Timeout;
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stdout.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }
}

/// The running agent shell on the system.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: LineReader,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// The agent's pid on the system.
    remote_pid: String,
}

impl Agent {
    fn start(transport: &Transport, workdir: &str) -> Result<(Agent, String, String), String> {
        let (version, names) = (helpers::version(), helpers::names());
        let mut child = transport
            .command(&[
                "bash",
                "-c",
                scripts::AGENT,
                "atex-agent",
                workdir,
                helpers::HELPER,
                &version,
                &names,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start the agent through {}: {e}",
                    transport.connection()
                )
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err("the agent has no pipes".into());
        };
        let err_buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&err_buf);
        std::thread::spawn(move || {
            let mut stderr = stderr;
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = sink.lock() {
                    b.extend_from_slice(&chunk[..n]);
                    let excess = b.len().saturating_sub(8192);
                    b.drain(..excess);
                }
            }
        });
        let mut agent = Agent {
            child,
            stdin,
            lines: LineReader::new(stdout),
            stderr: err_buf,
            remote_pid: String::new(),
        };
        match agent.recv(AGENT_START_LIMIT) {
            Recv::Line(line) => {
                let text = String::from_utf8_lossy(&line).into_owned();
                let mut parts = text.split(' ');
                if parts.next() == Some("READY")
                    && let (Some(w), Some(boot), Some(pid)) =
                        (parts.next(), parts.next(), parts.next())
                {
                    agent.remote_pid = pid.to_string();
                    return Ok((agent, w.to_string(), boot.to_string()));
                }
                agent.kill();
                Err(format!("unexpected agent greeting {text:?}"))
            }
            Recv::Eof => {
                let _ = agent.child.wait();
                Err(format!(
                    "the agent exited at start: {}",
                    agent.stderr_text()
                ))
            }
            Recv::Timeout => {
                agent.kill();
                Err(format!(
                    "the agent did not start within {AGENT_START_LIMIT:?}"
                ))
            }
        }
    }

    fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default()
    }

    fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.stdin.write_all(line.as_bytes())?;
        self.stdin.write_all(b"\n")?;
        self.stdin.flush()
    }

    /// Stores `data` as `meta/<key>` in the work directory (`put`).
    fn put(&mut self, key: &str, data: &[u8]) -> std::io::Result<()> {
        self.stdin
            .write_all(format!("put {key} {}\n", data.len()).as_bytes())?;
        self.stdin.write_all(data)?;
        self.stdin.flush()
    }

    fn recv(&mut self, timeout: Duration) -> Recv {
        self.lines.next(timeout)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.send("exit");
        // Give it a moment to go on its own, then make sure.
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }
}

/// One system tests run on, with its agent shell.
pub struct System {
    name: String,
    transport: Transport,
    agent: Option<Agent>,
    workdir: String,
    boot: String,
    runs: u64,
    options: SystemOptions,
    plan: Option<PlanSpec>,
    /// Metadata already stored on the system this boot (keys of `put`).
    sent_metadata: HashSet<String>,
    /// What the run scripts found about the system's packages.
    packages: KnownPackages,
}

/// The packages of tests found present on a system (`require`), and the
/// recommended ones tried, since its package database last changed as far
/// as the run scripts saw (see [`scripts::PackageCheck`]). Forgotten when
/// a check's outcome is not known (an attempt that did not end normally)
/// and on a new boot.
#[derive(Debug, Default)]
struct KnownPackages {
    present: HashSet<String>,
    tried: HashSet<String>,
}

impl KnownPackages {
    /// The test's packages that still need a check: (require, recommend).
    fn unchecked(&self, test: &TestSpec) -> (Vec<String>, Vec<String>) {
        let require = test
            .require
            .iter()
            .filter(|p| !self.present.contains(*p))
            .cloned()
            .collect();
        let recommend = test
            .recommend
            .iter()
            .filter(|p| !self.present.contains(*p) && !self.tried.contains(*p))
            .cloned()
            .collect();
        (require, recommend)
    }

    /// Takes in how the run script of `test`, which checked `unchecked`,
    /// ended: `wrapper_rc` is its exit status.
    fn update(
        &mut self,
        test: &TestSpec,
        unchecked: &(Vec<String>, Vec<String>),
        wrapper_rc: Option<i32>,
    ) {
        match wrapper_rc {
            Some(0) => {
                self.present.extend(unchecked.0.iter().cloned());
                self.tried.extend(unchecked.1.iter().cloned());
            }
            Some(scripts::PACKAGES_RECHECKED) => {
                self.present = test.require.iter().cloned().collect();
                self.tried = test.recommend.iter().cloned().collect();
            }
            _ => self.clear(),
        }
    }

    fn clear(&mut self) {
        self.present.clear();
        self.tried.clear();
    }
}

/// A test's metadata as sent to the system (`metadata.yaml`; JSON is
/// YAML), with the name it is stored under: its hash and length.
struct Metadata {
    key: String,
    data: Vec<u8>,
}

impl Metadata {
    fn new(metadata: &serde_json::Value) -> serde_json::Result<Metadata> {
        Ok(Metadata::keyed(serde_json::to_vec_pretty(metadata)?))
    }

    /// The metadata as block-style YAML with the test's `name`, as tmt
    /// writes it into a BeakerLib test's directory (BeakerLib's own YAML
    /// reader, behind `rlImport --all` and the journal's test name, takes
    /// no JSON).
    fn yaml(name: &str, metadata: &serde_json::Value) -> Result<Metadata, serde_yaml::Error> {
        let mut map = metadata.as_object().cloned().unwrap_or_default();
        map.insert("name".into(), name.into());
        Ok(Metadata::keyed(serde_yaml::to_string(&map)?.into_bytes()))
    }

    fn keyed(data: Vec<u8>) -> Metadata {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&data, &mut hasher);
        let key = format!(
            "{:016x}-{}.yaml",
            std::hash::Hasher::finish(&hasher),
            data.len()
        );
        Metadata { key, data }
    }
}

/// Upstream's debug switches, read from atex's own environment at each
/// test start, as upstream reads them.
#[derive(Debug, Clone, Copy, Default)]
struct DebugSwitches {
    /// `ATEX_DEBUG_NO_EXITCODE=1`: the wrapper sends no `exitcode`.
    no_exitcode: bool,
    /// `ATEX_DEBUG_NO_BG_KILL=1`: what the test leaves running is not
    /// killed when it exits.
    no_bg_kill: bool,
    /// `ATEX_DEBUG_TEST_OUTPUT_FD=N`: the test output goes to atex's file
    /// descriptor N instead of `output.txt`.
    output_fd: Option<i32>,
}

impl DebugSwitches {
    fn from_env() -> Self {
        let on = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
        DebugSwitches {
            no_exitcode: on("ATEX_DEBUG_NO_EXITCODE"),
            no_bg_kill: on("ATEX_DEBUG_NO_BG_KILL"),
            output_fd: std::env::var("ATEX_DEBUG_TEST_OUTPUT_FD")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|fd: &i32| *fd >= 0),
        }
    }
}

/// Where the test's output goes: `testout.temp` (linked as `output.txt`),
/// or a descriptor of atex's own (`ATEX_DEBUG_TEST_OUTPUT_FD`).
struct TestOutput {
    file: std::fs::File,
    fd: Option<i32>,
}

impl TestOutput {
    fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        let Some(fd) = self.fd else {
            return self.file.write_all(data);
        };
        while !data.is_empty() {
            // SAFETY: a plain write(2) from a valid buffer to a descriptor
            // the user named; a bad descriptor is an error, nothing more.
            let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            data = &data[usize::try_from(n).unwrap_or(data.len()).min(data.len())..];
        }
        Ok(())
    }
}

fn unreachable(system: &str, detail: impl Into<String>) -> ExecError {
    ExecError::Unreachable {
        system: system.to_string(),
        detail: detail.into(),
    }
}

/// Last `max` bytes of `text`, on a character boundary.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl System {
    /// Connects to the system and starts its agent.
    pub fn open(
        name: &str,
        connection: Connection,
        options: &SystemOptions,
    ) -> Result<System, ExecError> {
        let mut system = System {
            name: name.to_string(),
            transport: Transport::new(connection),
            agent: None,
            workdir: String::new(),
            boot: String::new(),
            runs: 0,
            options: options.clone(),
            plan: None,
            sent_metadata: HashSet::new(),
            packages: KnownPackages::default(),
        };
        system.ensure_agent().map_err(|e| unreachable(name, e))?;
        Ok(system)
    }

    /// The system's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent's work directory on the system.
    pub fn workdir(&self) -> &str {
        &self.workdir
    }

    fn ensure_agent(&mut self) -> Result<(), String> {
        if self
            .agent
            .as_mut()
            .is_some_and(|a| matches!(a.child.try_wait(), Ok(None)))
        {
            return Ok(());
        }
        self.agent = None;
        self.transport
            .connect(AGENT_START_LIMIT)
            .map_err(|e| e.to_string())?;
        let (agent, workdir, boot) = Agent::start(&self.transport, &self.workdir)?;
        self.agent = Some(agent);
        self.workdir = workdir;
        if boot != self.boot {
            // A new boot may have lost what was stored outside /var.
            self.sent_metadata.clear();
            self.packages.clear();
        }
        self.boot = boot;
        Ok(())
    }

    /// Runs a one-off command on the system, feeding `input` to it, with a
    /// time limit and cancellation. Returns (exit code, stdout+stderr).
    fn oneoff(
        &self,
        argv: &[&str],
        input: Option<&mut dyn Read>,
        limit: Option<Duration>,
        cancel: &CancelToken,
    ) -> Result<(Option<i32>, String), String> {
        let mut child = self
            .transport
            .command(argv)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run a command through {}: {e}",
                    self.transport.connection()
                )
            })?;
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = std::sync::Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                let mut pipe = pipe;
                let mut buf = [0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut o) = sink.lock() {
                        o.extend_from_slice(&buf[..n]);
                    }
                }
            }));
        }
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A broken pipe shows up as the command's own failure below.
            let _ = std::io::copy(input, &mut stdin);
        }
        let start = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            if cancel.is_cancelled() || limit.is_some_and(|l| start.elapsed() > l) {
                kill_group(&mut child);
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in readers {
            let _ = r.join();
        }
        let text = output
            .lock()
            .map(|o| String::from_utf8_lossy(&o).into_owned())
            .unwrap_or_default();
        match status {
            Some(s) => Ok((s.code(), text)),
            None if cancel.is_cancelled() => Err("cancelled".into()),
            None => Err(format!(
                "did not finish within {:?}: {}",
                limit.unwrap_or_default(),
                tail(&text, 2000)
            )),
        }
    }

    /// Runs `script` with bash on the system, outside any test (as root,
    /// in its own session, with the setup time limit), and returns its
    /// exit code and output: a library user's own setup step, or a look
    /// around a system.
    pub fn run_command(
        &mut self,
        script: &str,
        cancel: &CancelToken,
    ) -> Result<CommandOutput, ExecError> {
        match self.oneoff(
            &["bash", "-c", script],
            None,
            self.options.setup_timeout,
            cancel,
        ) {
            Ok((exit_code, output)) => Ok(CommandOutput { exit_code, output }),
            Err(_) if cancel.is_cancelled() => Err(ExecError::Cancelled {
                system: self.name.clone(),
            }),
            Err(detail) => Err(ExecError::Unreachable {
                system: self.name.clone(),
                detail,
            }),
        }
    }

    /// Uploads the tree (streamed with tar over the connection) and runs
    /// the plan's prepare steps.
    pub fn setup(
        &mut self,
        tree_root: &Path,
        plan: &PlanSpec,
        cancel: &CancelToken,
    ) -> Result<(), ExecError> {
        self.ensure_agent()
            .map_err(|e| unreachable(&self.name, e))?;
        let name = self.name.clone();
        let setup_err = |detail: String| ExecError::Setup {
            system: name.clone(),
            detail,
        };
        let excludes: Vec<String> = self
            .options
            .upload_exclude
            .iter()
            .map(|p| format!("--exclude=./{}", p.trim_start_matches("./")))
            .collect();
        self.upload(tree_root, "tests", &excludes, cancel)?;
        for (dest, dir) in self.options.extra_uploads.clone() {
            self.upload(&dir, &dest, &[], cancel)?;
        }
        let plan_env_file = format!("{}/plan_env", self.workdir);
        let mut env_args: Vec<String> = vec!["env".into()];
        env_args.extend(plan.environment.iter().map(|(k, v)| format!("{k}={v}")));
        env_args.push(format!("TMT_TREE={}/tests", self.workdir));
        env_args.push(format!("TMT_PLAN_ENVIRONMENT_FILE={plan_env_file}"));
        let (_, out) = self
            .oneoff(
                &["bash", "-c", ": > \"$1\"", "x", &plan_env_file],
                None,
                Some(Duration::from_secs(60)),
                cancel,
            )
            .map_err(setup_err)?;
        let _ = out;
        for (i, step) in plan.prepare.iter().enumerate() {
            let script = match step {
                PrepareStep::Install(pkgs) => {
                    format!("set -xe\n{}", scripts::package_install(pkgs, &[]))
                }
                PrepareStep::Shell(s) => scripts::plan_shell(&self.workdir, s),
            };
            let mut argv: Vec<&str> = env_args.iter().map(String::as_str).collect();
            argv.extend(["bash", "-c", script.as_str()]);
            match self.oneoff(&argv, None, self.options.setup_timeout, cancel) {
                Ok((Some(0), _)) => {}
                Ok((code, out)) => {
                    return Err(setup_err(format!(
                        "prepare step {} failed ({}): {}",
                        i + 1,
                        exit_status(code),
                        tail(&out, 2000)
                    )));
                }
                Err(_) if cancel.is_cancelled() => {
                    return Err(ExecError::Cancelled {
                        system: self.name.clone(),
                    });
                }
                Err(e) => return Err(setup_err(format!("prepare step {} failed: {e}", i + 1))),
            }
        }
        self.plan = Some(plan.clone());
        Ok(())
    }

    /// Streams the host directory `dir` (without `.git`) with tar into
    /// `dest` under the work directory, replacing what was there.
    fn upload(
        &mut self,
        dir: &Path,
        dest: &str,
        excludes: &[String],
        cancel: &CancelToken,
    ) -> Result<(), ExecError> {
        let name = self.name.clone();
        let setup_err = |detail: String| ExecError::Setup {
            system: name.clone(),
            detail,
        };
        let mut tar = std::process::Command::new("tar")
            .args(["-c", "--exclude=.git"])
            .args(excludes)
            .arg("-C")
            .arg(dir)
            .arg(".")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| setup_err(format!("cannot run tar: {e}")))?;
        let mut stream = tar
            .stdout
            .take()
            .ok_or_else(|| setup_err("tar has no stdout".into()))?;
        let unpack = self.oneoff(
            &[
                "bash",
                "-c",
                scripts::UNPACK_TREE,
                "atex-unpack",
                &self.workdir,
                dest,
            ],
            Some(&mut stream),
            self.options.setup_timeout,
            cancel,
        );
        let tar_status = tar.wait().map_err(|e| setup_err(e.to_string()))?;
        match unpack {
            Ok((Some(0), _)) if tar_status.success() => Ok(()),
            Ok((code, out)) => Err(setup_err(format!(
                "uploading {} failed ({}): {}",
                if dest == "tests" { "the tests" } else { dest },
                exit_status(code),
                tail(&out, 2000)
            ))),
            Err(_) if cancel.is_cancelled() => Err(ExecError::Cancelled {
                system: self.name.clone(),
            }),
            Err(e) => Err(setup_err(format!("uploading {dest} failed: {e}"))),
        }
    }

    /// Kills what a test attempt runs: its session `pid` and everything
    /// carrying its `mark` or holding the agent's control FIFO.
    fn kill_attempt(&self, pid: &str, mark: &str) {
        let agent = self
            .agent
            .as_ref()
            .map(|a| a.remote_pid.clone())
            .unwrap_or_default();
        let ctl = if agent.is_empty() {
            String::new()
        } else {
            format!("{}/ctl.{agent}", self.workdir)
        };
        let script = format!("{}\natex_kill \"$@\"", scripts::KILL_FUNCTION);
        let _ = self.oneoff(
            &[
                "bash",
                "-c",
                &script,
                "atex-kill",
                pid,
                mark,
                &ctl,
                if agent.is_empty() { "-" } else { &agent },
            ],
            None,
            Some(Duration::from_secs(30)),
            &CancelToken::new(),
        );
    }

    /// The `ATEX_TEST_MARK` of attempt `id`: unique on a host shared by
    /// several runs (the work directory's name and the attempt id).
    fn mark(&self, id: &str) -> String {
        format!(
            "{}.{id}",
            self.workdir.rsplit('/').next().unwrap_or_default()
        )
    }

    /// Makes sure `metadata` (a [`Metadata`]) is on the system. Each
    /// distinct metadata travels once per system and boot, as raw bytes
    /// beside the agent's requests, not inside every run script.
    fn send_metadata(&mut self, metadata: &Metadata) -> Result<(), String> {
        if !self.sent_metadata.contains(&metadata.key) {
            let agent = self.agent.as_mut().ok_or("no connection to the system")?;
            agent
                .put(&metadata.key, &metadata.data)
                .map_err(|e| format!("cannot send the test metadata: {e}"))?;
            self.sent_metadata.insert(metadata.key.clone());
        }
        Ok(())
    }

    /// Runs one test into `artifacts` (an existing empty directory) and
    /// returns how it ended; results and files are in `artifacts`.
    pub fn run_test(
        &mut self,
        test: &TestSpec,
        artifacts: &Path,
        extra_env: &[(String, String)],
        cancel: &CancelToken,
    ) -> Result<TestOutcome, ExecError> {
        let io = |context: &str, error: std::io::Error| ExecError::Io {
            context: format!("{}: {context}", artifacts.display()),
            error,
        };
        let start = Instant::now();
        let mut writer =
            ResultWriter::create(artifacts).map_err(|e| io("cannot create the artifacts", e))?;
        let debug = DebugSwitches::from_env();
        let mut testout = TestOutput {
            file: OpenOptions::new()
                .append(true)
                .open(writer.testout_path())
                .map_err(|e| io("cannot open testout.temp", e))?,
            fd: debug.output_fd,
        };
        let mut run = TestRun {
            deadline: start + test.duration,
            saved: Vec::new(),
            exit_code: None,
            abort: None,
            error: None,
            reboots: 0,
            reboot_timeout: None,
            system_lost: false,
            streamed: 0,
            wrapper_rc: None,
        };
        let beakerlib = test
            .metadata
            .get("framework")
            .and_then(serde_json::Value::as_str)
            == Some("beakerlib");
        let restart = RestartKeys::from_metadata(&test.metadata);
        // Restarts so far, the reboots the test asked for included (tmt's
        // restart counter); a restart with a reboot counts once.
        let mut restarts = 0u32;
        // tmt's serial number of the invocation: `TESTID`, and the name of
        // its directory (fresh for every attempt and restart).
        let mut serial = self.runs + 1;
        if let Err(e) = self.ensure_agent() {
            return Err(unreachable(&self.name, e));
        }
        let metadata = Metadata::new(&test.metadata).map_err(|e| ExecError::Io {
            context: format!("{}: cannot serialise the metadata", test.name),
            error: std::io::Error::other(e),
        })?;
        let bl_metadata = if beakerlib {
            Some(
                Metadata::yaml(&test.name, &test.metadata).map_err(|e| ExecError::Io {
                    context: format!("{}: cannot serialise the metadata", test.name),
                    error: std::io::Error::other(e),
                })?,
            )
        } else {
            None
        };
        loop {
            let id = {
                self.runs += 1;
                format!("{}-{}", std::process::id(), self.runs)
            };
            let invocation = format!("{}/inv-{serial}", self.workdir);
            let counts = Counts {
                serial,
                reboots: run.reboots,
                restarts,
            };
            let env = self.environment(test, &id, extra_env, &invocation, counts, beakerlib);
            let sent = self
                .send_metadata(&metadata)
                .and_then(|()| match &bl_metadata {
                    Some(m) => self.send_metadata(m),
                    None => Ok(()),
                });
            if let Err(e) = sent {
                run.abort = Some(format!("connection to the system lost: {e}"));
                run.system_lost = true;
                self.agent = None;
                break;
            }
            let mark = self.mark(&id);
            let unchecked = self.packages.unchecked(test);
            let agent_pid = self
                .agent
                .as_ref()
                .map(|a| a.remote_pid.clone())
                .unwrap_or_default();
            let script = RunScript {
                test,
                workdir: &self.workdir,
                id: &id,
                env: &env,
                metadata_key: &metadata.key,
                mark: &mark,
                agent_pid: &agent_pid,
                kill_leftovers: self.options.kill_leftovers && !debug.no_bg_kill,
                send_exitcode: !debug.no_exitcode,
                invocation: &invocation,
                beakerlib_metadata_key: bl_metadata.as_ref().map(|m| m.key.as_str()),
                packages: scripts::PackageCheck {
                    require: &unchecked.0,
                    recommend: &unchecked.1,
                },
            }
            .render();
            let request = format!("run {id} {}", B64.encode(script.as_bytes()));
            run.wrapper_rc = None;
            let disconnected = self.attempt(
                &id,
                &mark,
                &request,
                &mut run,
                &mut writer,
                &mut testout,
                cancel,
            );
            self.packages.update(test, &unchecked, run.wrapper_rc);
            if !disconnected {
                if let Some(code) = run.exit_code
                    && run.abort.is_none()
                    && !cancel.is_cancelled()
                    && restart.on_exit_code.contains(&code)
                {
                    if restarts >= restart.max_count {
                        run.error = Some(format!(
                            "the test ended with exit code {code} (restart-on-exit-code) and restart-max-count {} is reached",
                            restart.max_count
                        ));
                        break;
                    }
                    restarts += 1;
                    let _ = testout.write_all(
                        format!(
                            "\n[atex] exit code {code}: restarting the test ({restarts} of {}){}\n",
                            restart.max_count,
                            if restart.with_reboot {
                                " after a reboot"
                            } else {
                                ""
                            }
                        )
                        .as_bytes(),
                    );
                    if let Err(e) = writer.reset() {
                        run.abort = Some(format!("cannot restart the test: {e}"));
                        break;
                    }
                    run.exit_code = None;
                    serial = self.runs + 1;
                    if restart.with_reboot {
                        if !self.reboot_for_restart(&mut run, cancel) {
                            break;
                        }
                        run.reboots += 1;
                    }
                    continue;
                }
                break;
            }
            // The test announced a reboot: wait for the system to come back.
            match self.await_reconnect(&id, &mut run, &mut testout, cancel) {
                Reconnect::Rebooted => {
                    run.reboots += 1;
                    // tmt counts reboots as restarts too.
                    restarts += 1;
                    continue;
                }
                Reconnect::Finished => break,
                Reconnect::Failed => break,
            }
        }
        let abort = run.abort.clone();
        let abort_run = writer.abort_requested();
        if abort.is_none() {
            // The test's own verdict, when something other than its exit
            // code decides it (as in tmt).
            let mut verdict = serde_json::Map::new();
            if let Some(error) = &run.error {
                verdict.insert("status".into(), "error".into());
                verdict.insert("note".into(), error.as_str().into());
            } else if beakerlib {
                let (status, note) = beakerlib_verdict(writer.beakerlib());
                verdict.insert("status".into(), status.into());
                if let Some(note) = note {
                    verdict.insert("note".into(), note.into());
                }
            } else if let Some(worst) = writer.reported_worst()
                && !writer.own_written()
            {
                verdict.insert("status".into(), worst.into());
            }
            if abort_run {
                verdict.insert(
                    "note".into(),
                    "the test called tmt-abort: the rest of the run is not run".into(),
                );
            }
            if !verdict.is_empty() {
                verdict.insert("partial".into(), true.into());
                if let Err(e) = writer.report(verdict) {
                    run.abort = Some(e.to_string());
                }
            }
        }
        let abort = run.abort.clone();
        let reported = writer.own_reported();
        let limit = run.deadline.saturating_duration_since(start);
        if let Err(e) = writer.finish(run.exit_code, abort.as_deref()) {
            // The test's own results were unusable; record why.
            let _ = writer.finish(None, Some(&e.to_string()));
        }
        drop(testout);
        let _ = std::fs::remove_file(writer.testout_path());
        let own = writer.own_result();
        let status = own
            .and_then(|r| r.get("status"))
            .and_then(|s| s.as_str())
            .map_or(Status::Pass, Status::parse);
        let reason = end_reason(
            abort.as_deref(),
            run.system_lost,
            reported.then_some(&status),
            run.exit_code,
            limit,
        );
        Ok(TestOutcome {
            exit_code: run.exit_code,
            reason: Some(reason),
            status,
            note: own
                .and_then(|r| r.get("note"))
                .and_then(|s| s.as_str())
                .map(str::to_string),
            duration: start.elapsed(),
            reboots: run.reboots,
            system_lost: run.system_lost,
            abort_run,
        })
    }

    fn environment(
        &self,
        test: &TestSpec,
        id: &str,
        extra: &[(String, String)],
        invocation: &str,
        counts: Counts,
        beakerlib: bool,
    ) -> Vec<(String, String)> {
        let w = &self.workdir;
        let mut env: Vec<(String, String)> = Vec::new();
        if let Some(plan) = &self.plan {
            env.extend(plan.environment.iter().cloned());
        }
        env.push(("TMT_PLAN_ENVIRONMENT_FILE".into(), format!("{w}/plan_env")));
        env.push(("TMT_TEST_NAME".into(), test.name.clone()));
        env.push((
            "TMT_TEST_METADATA".into(),
            format!("{w}/test-{id}/metadata.yaml"),
        ));
        if let Some(path) = scripts::library_path(test, w) {
            // BeakerLib's rlImport looks for `libs/<repo>/<name>` under
            // these roots; the test script itself lives outside the tree.
            env.push(("BEAKERLIB_LIBRARY_PATH".into(), path));
        }
        env.extend(test.environment.iter().cloned());
        env.push(("TMT_TREE".into(), format!("{w}/tests")));
        env.extend(extra.iter().cloned());
        let reboots = counts.reboots.to_string();
        for key in ["TMT_REBOOT_COUNT", "REBOOTCOUNT", "RSTRNT_REBOOTCOUNT"] {
            env.push((key.into(), reboots.clone()));
        }
        env.push(("TMT_TEST_RESTART_COUNT".into(), counts.restarts.to_string()));
        env.push(("TMT_TEST_SERIAL_NUMBER".into(), counts.serial.to_string()));
        env.push((
            "TMT_TEST_ITERATION_ID".into(),
            format!(
                "{}-{}",
                w.rsplit('/').next().unwrap_or_default(),
                counts.serial
            ),
        ));
        env.push(("TMT_TEST_INVOCATION_PATH".into(), invocation.into()));
        env.push(("TMT_TEST_DATA".into(), format!("{invocation}/data")));
        env.push(("TMT_RESTRAINT_COMPATIBLE".into(), "0".into()));
        if beakerlib {
            // The framework's variables come last and win, as in tmt.
            env.push(("BEAKERLIB_DIR".into(), invocation.into()));
            env.push(("TESTID".into(), counts.serial.to_string()));
            env.push((
                "BEAKERLIB_COMMAND_REPORT_RESULT".into(),
                format!("{w}/bin/rhts-report-result"),
            ));
            env.push((
                "BEAKERLIB_COMMAND_SUBMIT_LOG".into(),
                format!("{w}/bin/tmt-file-submit"),
            ));
        }
        env.retain(|(k, _)| {
            !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        env
    }

    /// One start of the test. Returns true when the test sent `disconnect`.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &mut self,
        id: &str,
        mark: &str,
        request: &str,
        run: &mut TestRun,
        writer: &mut ResultWriter,
        testout: &mut TestOutput,
        cancel: &CancelToken,
    ) -> bool {
        let Some(agent) = self.agent.as_mut() else {
            run.abort
                .get_or_insert_with(|| "no connection to the system".into());
            run.system_lost = true;
            return false;
        };
        if let Err(e) = agent.send(request) {
            run.abort = Some(format!("connection to the system lost: {e}"));
            run.system_lost = true;
            self.agent = None;
            return false;
        }
        run.streamed = 0;
        let mut parser = ControlParser::new();
        let mut pid: Option<String> = None;
        let mut killed_at: Option<Instant> = None;
        let mut wrapper_rc: Option<i32> = None;
        loop {
            let now = Instant::now();
            let wait = if killed_at.is_some() {
                Duration::from_millis(200)
            } else {
                run.deadline
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(200))
            };
            let Some(agent) = self.agent.as_mut() else {
                break;
            };
            match agent.recv(wait) {
                Recv::Line(line) => {
                    let (kind, rest) = split_word(&line);
                    let (line_id, payload) = split_word(rest);
                    if line_id != id.as_bytes() {
                        continue;
                    }
                    match kind {
                        b"P" => pid = Some(String::from_utf8_lossy(payload).into_owned()),
                        b"C" if run.abort.is_none() => {
                            let data = B64.decode(payload).unwrap_or_default();
                            match parser.feed(&data, writer) {
                                Ok(events) => {
                                    for event in events {
                                        match event {
                                            ControlEvent::ExitCode(c) => run.exit_code = Some(c),
                                            ControlEvent::Duration(d) => run.change_duration(d),
                                            ControlEvent::Disconnect(timeout) => {
                                                run.reboot_timeout = timeout;
                                                // Stop reading: once the agent
                                                // is gone, the test's next
                                                // control write fails, then it
                                                // reboots.
                                                let agent_pid = self
                                                    .agent
                                                    .as_ref()
                                                    .map(|a| a.remote_pid.clone())
                                                    .unwrap_or_default();
                                                if !agent_pid.is_empty() {
                                                    let _ = self.oneoff(
                                                        &["kill", "-KILL", &agent_pid],
                                                        None,
                                                        Some(Duration::from_secs(30)),
                                                        &CancelToken::new(),
                                                    );
                                                }
                                                self.agent = None;
                                                self.transport.disconnect();
                                                return true;
                                            }
                                        }
                                    }
                                }
                                Err(e) => {
                                    run.abort = Some(e.to_string());
                                    if let Some(p) = &pid {
                                        self.kill_attempt(p, mark);
                                    }
                                    killed_at = Some(Instant::now());
                                }
                            }
                        }
                        b"O" => {
                            let data = B64.decode(payload).unwrap_or_default();
                            run.streamed += data.len() as u64;
                            let _ = testout.write_all(&data);
                        }
                        b"E" => {
                            wrapper_rc = std::str::from_utf8(payload)
                                .ok()
                                .and_then(|s| s.trim().parse().ok());
                            break;
                        }
                        _ => {}
                    }
                }
                Recv::Eof => {
                    let detail = agent.stderr_text();
                    self.agent = None;
                    if run.abort.is_none() {
                        let (note, lost) = self.explain_lost_connection(id, &detail, run, cancel);
                        run.abort = Some(note);
                        run.system_lost = lost;
                    } else {
                        run.system_lost = true;
                    }
                    return false;
                }
                Recv::Timeout => {}
            }
            if let Some(at) = killed_at {
                if at.elapsed() > KILL_GRACE {
                    // The agent does not answer any more: drop it.
                    run.system_lost = true;
                    self.agent = None;
                    return false;
                }
                continue;
            }
            let reason = if cancel.is_cancelled() {
                Some("cancel requested".to_string())
            } else if Instant::now() >= run.deadline {
                Some("test duration timeout reached".to_string())
            } else {
                None
            };
            if let Some(reason) = reason {
                run.abort = Some(reason);
                if let Some(p) = &pid {
                    self.kill_attempt(p, mark);
                }
                killed_at = Some(Instant::now());
            }
        }
        if run.abort.is_none()
            && let Err(e) = parser.finish()
        {
            run.abort = Some(e.to_string());
        }
        run.wrapper_rc = wrapper_rc;
        if run.abort.is_none() {
            match wrapper_rc {
                Some(0 | scripts::PACKAGES_RECHECKED) if run.exit_code.is_some() => {}
                Some(0 | scripts::PACKAGES_RECHECKED) => {
                    run.abort = Some("exitcode not reported by the wrapper".into())
                }
                Some(scripts::SETUP_FAILED) => {
                    let out = std::fs::read_to_string(writer.testout_path()).unwrap_or_default();
                    run.abort = Some(format!("TestSetupError({})", tail(out.trim(), 1000)));
                }
                Some(scripts::NO_TEST_DIR) => {
                    run.abort = Some("the test's directory does not exist on the system".into())
                }
                Some(rc) => {
                    run.abort = Some(format!(
                        "the test's wrapper on the system ended with exit status {rc}{}",
                        signal_hint(rc)
                    ))
                }
                None => {
                    run.abort =
                        Some("the test's wrapper on the system ended without an exit status".into())
                }
            }
        }
        false
    }

    /// The connection to the agent broke while a test ran without sending
    /// `disconnect`: finds out whether the system rebooted, went away, or
    /// only the connection failed, and says so in words a test author
    /// understands. Returns the note and whether the system is lost.
    fn explain_lost_connection(
        &mut self,
        id: &str,
        detail: &str,
        run: &TestRun,
        cancel: &CancelToken,
    ) -> (String, bool) {
        let old_boot = self.boot.clone();
        self.transport.disconnect();
        let limit = Instant::now()
            + GONE_GRACE.min(
                run.deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(10)),
            );
        let why = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", tail(detail, 300))
        };
        let mut reached = false;
        loop {
            if self.ensure_agent().is_ok() {
                reached = true;
                if self.boot != old_boot {
                    return (
                        "the system rebooted while the test was running, and disconnect was not sent via test control before it (send `disconnect` before a reboot)".into(),
                        false,
                    );
                }
                // Same boot. A system going down may still answer for a
                // moment: only a test that is still running shows the
                // system stays up.
                if let Some(answer) = self.request_line(&format!("status {id}"), b"S")
                    && answer.starts_with(b"running")
                {
                    // Nobody reads its control channel any more: end it.
                    self.kill_attempt("-", &self.mark(id));
                    return (
                        format!(
                            "the connection to the system broke while the test was running; the system did not reboot{why}"
                        ),
                        true,
                    );
                }
                self.agent = None;
            }
            if cancel.is_cancelled() || Instant::now() >= limit {
                let note = if reached {
                    format!(
                        "the test ended when the connection to the system broke, and the system did not reboot{why}"
                    )
                } else {
                    "the system went away while the test was running (it stopped answering and did not come back), and disconnect was not sent via test control".into()
                };
                return (note, true);
            }
            self.transport.disconnect();
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn await_reconnect(
        &mut self,
        id: &str,
        run: &mut TestRun,
        testout: &mut TestOutput,
        cancel: &CancelToken,
    ) -> Reconnect {
        let old_boot = self.boot.clone();
        let mut gone_since: Option<Instant> = None;
        let mut failed_since: Option<Instant> = None;
        let timeout = run.reboot_timeout.take().unwrap_or(REBOOT_TIMEOUT);
        let limit = Instant::now() + timeout;
        loop {
            if cancel.is_cancelled() {
                run.abort = Some("cancel requested".into());
                return Reconnect::Failed;
            }
            if Instant::now() >= limit {
                run.abort = Some(format!(
                    "the system did not come back within {} s of the reboot the test asked for",
                    timeout.as_secs()
                ));
                run.system_lost = true;
                return Reconnect::Failed;
            }
            if Instant::now() >= run.deadline {
                run.abort = Some(
                    "test duration timeout reached while waiting for the system to come back"
                        .into(),
                );
                run.system_lost = true;
                return Reconnect::Failed;
            }
            if self.ensure_agent().is_err() {
                self.transport.disconnect();
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            if self.boot != old_boot {
                self.fetch_output(id, run.streamed, testout);
                return Reconnect::Rebooted;
            }
            // Same boot: has the test ended without a reboot?
            match self.request_line(&format!("status {id}"), b"S") {
                Some(answer) if answer.starts_with(b"done") => {
                    let rc: Option<i32> = String::from_utf8_lossy(&answer[4..]).trim().parse().ok();
                    // A test that failed after `disconnect` is usually one
                    // the shutdown for its reboot has just ended: its exit
                    // status does not count, the reboot does. Only when
                    // no reboot follows is this how the test ended.
                    if rc != Some(0)
                        && failed_since.get_or_insert_with(Instant::now).elapsed() < GONE_GRACE
                    {
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                    run.exit_code = run.exit_code.or(rc);
                    self.fetch_output(id, run.streamed, testout);
                    return Reconnect::Finished;
                }
                Some(answer) if answer.starts_with(b"running") => {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Some(_) if gone_since.get_or_insert_with(Instant::now).elapsed() < GONE_GRACE => {
                    // Gone without a status: usually the system is going
                    // down for the reboot and will come back with a new
                    // boot token. Reconnect afresh until it does.
                    self.agent = None;
                    std::thread::sleep(Duration::from_millis(500));
                }
                Some(_) => {
                    self.fetch_output(id, run.streamed, testout);
                    run.abort =
                        Some("the test disappeared after disconnect without a reboot".into());
                    return Reconnect::Failed;
                }
                None => {
                    self.agent = None;
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
    }

    /// Reboots the system before a restart (`restart-with-reboot`) and
    /// waits for it to come back with a new boot. False (with the reason
    /// in `run.abort`) when it does not.
    fn reboot_for_restart(&mut self, run: &mut TestRun, cancel: &CancelToken) -> bool {
        let old_boot = self.boot.clone();
        let _ = self.oneoff(
            &[
                "bash",
                "-c",
                "sync; if [ -d /run/systemd/system ]; then systemctl reboot; else reboot; fi",
            ],
            None,
            Some(Duration::from_secs(30)),
            &CancelToken::new(),
        );
        self.agent = None;
        self.transport.disconnect();
        let limit = Instant::now() + REBOOT_TIMEOUT;
        loop {
            if cancel.is_cancelled() {
                run.abort = Some("cancel requested".into());
                return false;
            }
            let now = Instant::now();
            if now >= limit || now >= run.deadline {
                run.abort = Some(
                    "the system did not come back from the reboot before the restart (restart-with-reboot)"
                        .into(),
                );
                run.system_lost = true;
                return false;
            }
            if self.ensure_agent().is_ok() && self.boot != old_boot {
                return true;
            }
            self.agent = None;
            self.transport.disconnect();
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Sends a request and returns the payload of the first answer line of
    /// kind `kind` (after the id).
    fn request_line(&mut self, request: &str, kind: &[u8]) -> Option<Vec<u8>> {
        let agent = self.agent.as_mut()?;
        agent.send(request).ok()?;
        loop {
            match agent.recv(Duration::from_secs(30)) {
                Recv::Line(line) => {
                    let (k, rest) = split_word(&line);
                    if k == kind {
                        return Some(split_word(rest).1.to_vec());
                    }
                }
                Recv::Eof | Recv::Timeout => return None,
            }
        }
    }

    /// Fetches the output of attempt `id` from byte `from` on (what was
    /// not streamed while it ran).
    fn fetch_output(&mut self, id: &str, from: u64, testout: &mut TestOutput) {
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        if agent.send(&format!("fetch {id} {from}")).is_err() {
            return;
        }
        loop {
            match agent.recv(Duration::from_secs(60)) {
                Recv::Line(line) => {
                    let (k, rest) = split_word(&line);
                    match k {
                        b"O" => {
                            let data = B64.decode(split_word(rest).1).unwrap_or_default();
                            let _ = testout.write_all(&data);
                        }
                        b"F" => return,
                        _ => {}
                    }
                }
                Recv::Eof | Recv::Timeout => return,
            }
        }
    }

    /// Whether the agent is still running (a cheap liveness check).
    pub fn is_connected(&mut self) -> bool {
        self.agent
            .as_mut()
            .is_some_and(|a| matches!(a.child.try_wait(), Ok(None)))
    }

    /// Runs the plan's finish steps (best effort), removes the work
    /// directory and stops the agent and the ssh master.
    pub fn close(mut self) {
        let cancel = CancelToken::new();
        if let Some(plan) = self.plan.take() {
            for script in &plan.finish {
                let s = scripts::plan_shell(&self.workdir, script);
                let _ = self.oneoff(
                    &["bash", "-c", &s],
                    None,
                    Some(Duration::from_secs(300)),
                    &cancel,
                );
            }
        }
        if !self.workdir.is_empty() {
            // Also when the agent is gone (e.g. after a lost connection):
            // nothing of the run may stay on a reused host.
            let limit = if self.agent.is_some() { 60 } else { 20 };
            let _ = self.oneoff(
                &["rm", "-rf", "--", &self.workdir],
                None,
                Some(Duration::from_secs(limit)),
                &cancel,
            );
        }
        self.agent = None;
        self.transport.disconnect();
    }
}

enum Reconnect {
    Rebooted,
    Finished,
    Failed,
}

/// The counters of one start of a test.
#[derive(Debug, Clone, Copy)]
struct Counts {
    /// tmt's serial number of the invocation.
    serial: u64,
    /// Reboots so far (`TMT_REBOOT_COUNT`).
    reboots: u32,
    /// Restarts so far, reboots included (`TMT_TEST_RESTART_COUNT`).
    restarts: u32,
}

struct TestRun {
    deadline: Instant,
    saved: Vec<Duration>,
    exit_code: Option<i32>,
    abort: Option<String>,
    /// The test's own result is an error with this note (the system is fine).
    error: Option<String>,
    reboots: u32,
    /// How long the reboot the test announced may take.
    reboot_timeout: Option<Duration>,
    system_lost: bool,
    /// Output bytes received while the current start of the test ran.
    streamed: u64,
    /// Exit status of the current start's run script, when it ended
    /// normally.
    wrapper_rc: Option<i32>,
}

impl TestRun {
    fn change_duration(&mut self, change: DurationChange) {
        let now = Instant::now();
        match change {
            DurationChange::Set(d) => self.deadline = now + d,
            DurationChange::Extend(d) => self.deadline += d,
            DurationChange::Shorten(d) => {
                self.deadline = self.deadline.checked_sub(d).unwrap_or(now)
            }
            DurationChange::Save => self
                .saved
                .push(self.deadline.saturating_duration_since(now)),
            DurationChange::Restore => {
                // Nested saves: only the outermost restore counts.
                if self.saved.len() == 1 {
                    self.deadline = now + self.saved[0];
                }
                self.saved.pop();
            }
        }
    }
}

/// Why an attempt ended, in one line (see [`TestOutcome::reason`]):
/// `aborted` is the note of an abnormal end, `reported` the status the test
/// reported for itself, `limit` its time limit at the end.
fn end_reason(
    aborted: Option<&str>,
    system_lost: bool,
    reported: Option<&Status>,
    exit_code: Option<i32>,
    limit: Duration,
) -> String {
    let first_line = |s: &str| {
        let line = s
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        tail_chars(line, 200)
    };
    if let Some(note) = aborted {
        if note == "cancel requested" {
            return "cancelled".into();
        }
        if note.starts_with("test duration timeout reached") {
            return format!("timed out after {}", short_duration(limit));
        }
        if let Some(inner) = note
            .strip_prefix("TestSetupError(")
            .and_then(|s| s.strip_suffix(')'))
        {
            // The setup's output: its last line says what failed.
            let last = inner.lines().map(str::trim).rfind(|l| !l.is_empty());
            return format!(
                "setup failed: {}",
                tail_chars(last.unwrap_or("no output"), 200)
            );
        }
        if system_lost {
            return format!("system lost: {}", first_line(note));
        }
        return first_line(note);
    }
    if let Some(status) = reported {
        return format!("reported {status} by the test");
    }
    match exit_code {
        Some(rc) if (129..=192).contains(&rc) => {
            let sig = rc - 128;
            match signal_name(sig) {
                Some(name) => format!("killed by signal {sig} ({name})"),
                None => format!("killed by signal {sig}"),
            }
        }
        Some(rc) => format!("exit code {rc}"),
        None => "no exit code".into(),
    }
}

/// `5m`, `1h30m`, `2m5s`, `45s`: a time limit as a person writes it.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    if s == 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (sec, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// The last `max` characters of `s`, with `…` in front when cut.
fn tail_chars(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let rest: String = s.chars().skip(n - max).collect();
    format!("…{rest}")
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

/// `exit status 3`, or `killed by a signal` when there is no status.
fn exit_status(code: Option<i32>) -> String {
    match code {
        Some(rc) => format!("exit status {rc}{}", signal_hint(rc)),
        None => "killed by a signal".into(),
    }
}

/// ` (killed by SIGKILL)` for exit statuses 129..=192, else nothing.
fn signal_hint(rc: i32) -> String {
    let name = match rc - 128 {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        n if (1..=64).contains(&n) => return format!(" (killed by signal {n})"),
        _ => return String::new(),
    };
    format!(" (killed by {name})")
}

fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[]),
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain syscall; the child was put in its own process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn known_packages_follow_what_the_run_script_reported() {
        let test = |require: &[&str], recommend: &[&str]| TestSpec {
            name: "/t".into(),
            rel_dir: "t".into(),
            script: "true".into(),
            duration: Duration::from_secs(5),
            environment: Vec::new(),
            require: require.iter().map(|p| p.to_string()).collect(),
            recommend: recommend.iter().map(|p| p.to_string()).collect(),
            tty: false,
            metadata: json!({}),
        };
        let names = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let mut known = KnownPackages::default();
        let first = test(&["bash", "sed"], &["tar"]);
        let unchecked = known.unchecked(&first);
        assert_eq!(unchecked, (names(&["bash", "sed"]), names(&["tar"])));
        // Checked in full (no stamp yet): exactly the test's packages.
        known.update(&first, &unchecked, Some(scripts::PACKAGES_RECHECKED));
        let second = test(&["sed", "gawk"], &["tar", "bash"]);
        let unchecked = known.unchecked(&second);
        assert_eq!(unchecked, (names(&["gawk"]), Vec::new()));
        // Checked only the new one: it is added.
        known.update(&second, &unchecked, Some(0));
        assert_eq!(
            known.unchecked(&test(&["gawk", "bash"], &[])),
            (Vec::new(), Vec::new())
        );
        // The database changed: only the last test's packages are known.
        let third = test(&["coreutils"], &[]);
        let unchecked = known.unchecked(&third);
        known.update(&third, &unchecked, Some(scripts::PACKAGES_RECHECKED));
        assert_eq!(
            known.unchecked(&test(&["coreutils", "bash"], &["tar"])),
            (names(&["bash"]), names(&["tar"]))
        );
        // An attempt that did not end normally: nothing is known.
        known.update(&third, &unchecked, None);
        assert_eq!(known.unchecked(&third), (names(&["coreutils"]), Vec::new()));
        // A setup failure neither.
        known.update(&first, &known.unchecked(&first), Some(0));
        known.update(
            &third,
            &(Vec::new(), Vec::new()),
            Some(scripts::SETUP_FAILED),
        );
        assert_eq!(known.unchecked(&first).0, names(&["bash", "sed"]));
    }

    #[test]
    fn restart_keys_as_tmt_reads_them() {
        let keys = RestartKeys::from_metadata(&json!({"restart-on-exit-code": 3}));
        assert_eq!(
            keys,
            RestartKeys {
                on_exit_code: vec![3],
                max_count: 1,
                with_reboot: false
            }
        );
        let keys = RestartKeys::from_metadata(&json!({
            "restart-on-exit-code": [3, 79],
            "restart-max-count": 4,
            "restart-with-reboot": true
        }));
        assert_eq!(
            (keys.on_exit_code, keys.max_count, keys.with_reboot),
            (vec![3, 79], 4, true)
        );
        assert!(
            RestartKeys::from_metadata(&json!({}))
                .on_exit_code
                .is_empty()
        );
    }

    #[test]
    fn beakerlib_verdicts_as_tmt_gives_them() {
        let summary = |v: serde_json::Value| v.as_object().cloned();
        let verdict = |v: Option<serde_json::Map<String, serde_json::Value>>| {
            let (status, note) = beakerlib_verdict(v.as_ref());
            (status, note.unwrap_or_default())
        };
        assert_eq!(
            verdict(summary(
                json!({"found": true, "state": "complete", "result": "WARN"})
            )),
            ("warn".to_string(), String::new())
        );
        let (status, note) = verdict(summary(
            json!({"found": true, "state": "incomplete", "result": "PASS"}),
        ));
        assert_eq!(status, "error");
        assert!(note.starts_with("beakerlib: State 'incomplete'"), "{note}");
        let (status, note) = verdict(summary(
            json!({"found": true, "state": "", "result": "PASS"}),
        ));
        assert_eq!(status, "error");
        assert!(note.contains("Result/State missing"), "{note}");
        for missing in [
            None,
            summary(json!({"found": false, "state": "", "result": ""})),
        ] {
            let (status, note) = verdict(missing);
            assert_eq!(status, "error");
            assert!(note.contains("TestResults FileError"), "{note}");
        }
    }

    #[test]
    fn reasons_say_how_an_attempt_ended() {
        let limit = Duration::from_secs(300);
        let r = |abort, lost, reported, code| end_reason(abort, lost, reported, code, limit);
        assert_eq!(r(None, false, None, Some(3)), "exit code 3");
        assert_eq!(r(None, false, None, Some(0)), "exit code 0");
        assert_eq!(
            r(None, false, None, Some(137)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(r(None, false, None, Some(170)), "killed by signal 42");
        assert_eq!(
            r(None, false, Some(&Status::Fail), Some(0)),
            "reported fail by the test"
        );
        assert_eq!(
            r(Some("test duration timeout reached"), false, None, None),
            "timed out after 5m"
        );
        assert_eq!(r(Some("cancel requested"), false, None, None), "cancelled");
        assert_eq!(
            r(
                Some("TestSetupError(E: Unable to locate package nope\n)"),
                false,
                None,
                None
            ),
            "setup failed: E: Unable to locate package nope"
        );
        assert_eq!(
            r(Some("the system went away\nmore"), true, None, None),
            "system lost: the system went away"
        );
        assert_eq!(short_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(short_duration(Duration::from_secs(125)), "2m5s");
    }
}
