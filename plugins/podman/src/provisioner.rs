//! The provisioner and its remotes: containers started on background
//! threads, handed out when ready, removed on release and on stop.
//!
//! One mutex guards the counters; a condition variable wakes `get_remote`
//! callers. Every `podman run` happens on a worker thread, never in the
//! caller of `get_remote`, and at most `max` containers exist at once
//! (starting + ready + handed out). `start` checks the image and the
//! options once, so a configuration no container can start from fails
//! there with one line. A failed start is queued as an error for the next
//! `get_remote`, which answers its request (the host asks again); while
//! one is queued no new start begins, so a permanent failure gives one
//! error per request (the caller's failure budget ends it), never a spin
//! and never a wait for a container nobody is starting.

use std::{
    collections::{VecDeque, hash_map::RandomState},
    hash::{BuildHasher, Hasher},
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use atex_plugin_api::{
    Connection, ErrorKind, PluginError,
    sdk::{PluginContext, ProvisionerImpl, RemoteImpl},
};

use crate::{
    PROVISIONER_LABEL, RUN_LABEL,
    cleanup::{list_with, remove_with},
    config::PodmanConfig,
    podman::{self, PODMAN, PodmanError, Runner, args},
    prepare::Preparer,
};

/// A callback telling whether the host wants everything to stop.
pub type CancelFn = Box<dyn Fn() -> bool + Send + Sync>;

/// How often blocked waits look at the cancel flag.
const POLL: Duration = Duration::from_millis(200);

/// Hands out podman containers; see the crate documentation.
pub struct PodmanProvisioner {
    shared: Arc<Shared>,
}

struct Shared {
    config: PodmanConfig,
    /// Value of the `atex.run` label.
    run_label: String,
    /// Value of the `atex.provisioner` label: unique to this provisioner,
    /// so `stop` removes its own containers and not those of another
    /// provisioner of the same run.
    token: String,
    platform: String,
    command: Vec<String>,
    cancelled: CancelFn,
    runner: Runner,
    /// The image containers run from, once `start` pulled or built it (a
    /// prepared image's id), and whether `start` built it.
    image: Mutex<Option<(String, bool)>>,
    next_seq: AtomicU64,
    /// `podman run`s retried after a transient failure.
    retried: AtomicU64,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Requests not started yet.
    pending: u64,
    /// `provision(u32::MAX)`: keep `max` containers until `clear`.
    unlimited: bool,
    /// `podman run` in progress.
    starting: u32,
    /// Started, not handed out yet.
    ready: VecDeque<Arc<Container>>,
    /// Handed out and not released.
    handed_out: u32,
    /// Callers blocked in `get_remote`.
    waiting: u32,
    /// Failed starts, reported by the next `get_remote` calls.
    failures: VecDeque<PodmanError>,
    /// Every container made and not released, for `stop`.
    live: Vec<Arc<Container>>,
    workers: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl State {
    fn existing(&self) -> u64 {
        u64::from(self.starting) + self.ready.len() as u64 + u64::from(self.handed_out)
    }
}

struct Container {
    /// Full container id.
    id: String,
    /// The remote's name, `podman-<12 hex digits of the id>`.
    name: String,
    started_in: Duration,
    /// Set once, by `release` or `stop`.
    released: Mutex<bool>,
    /// When `alive` first saw a systemd-mode container not running.
    down_since: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it;
    // the data is still consistent (every update is a single step).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_token() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    format!("{:08x}", h.finish() as u32)
}

impl PodmanProvisioner {
    /// The plugin constructor: parses the configuration from the host.
    pub fn new(ctx: PluginContext) -> Result<Self, PluginError> {
        let config: PodmanConfig = ctx.parse_config()?;
        let run_id = ctx.run_id().to_string();
        let cancel_ctx = ctx.clone();
        Self::from_config(config, &run_id, Box::new(move || cancel_ctx.is_cancelled()))
    }

    /// A provisioner for Rust callers: `run_id` is the default value of the
    /// `atex.run` label, `cancelled` is polled during long waits.
    pub fn from_config(
        config: PodmanConfig,
        run_id: &str,
        cancelled: CancelFn,
    ) -> Result<Self, PluginError> {
        config
            .validate()
            .map_err(|e| PluginError::config(format!("podman: {e}")))?;
        let run_label = config.label.clone().unwrap_or_else(|| run_id.to_string());
        if run_label.is_empty() || run_label.contains(['=', ',', '\n']) {
            return Err(PluginError::config(format!(
                "podman: run id {run_label:?} cannot be a label value; set `label`"
            )));
        }
        let shared = Shared {
            platform: config.effective_platform(),
            command: config.effective_command(),
            run_label,
            token: random_token(),
            cancelled,
            runner: Runner {
                timeout: config.command_timeout(),
                containers_conf: config.containers_conf.clone(),
            },
            image: Mutex::new(None),
            next_seq: AtomicU64::new(1),
            retried: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            config,
        };
        tracing::debug!(
            target: "atex_podman",
            "provisioner {}: image {}, max {}, run label {}",
            shared.token, shared.config.image, shared.config.max, shared.run_label
        );
        Ok(PodmanProvisioner {
            shared: Arc::new(shared),
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &PodmanConfig {
        &self.shared.config
    }

    /// The value of the `atex.run` label on this provisioner's containers.
    pub fn run_label(&self) -> &str {
        &self.shared.run_label
    }

    /// The value of the `atex.provisioner` label, unique to this provisioner.
    pub fn provisioner_label(&self) -> &str {
        &self.shared.token
    }

    /// The image containers run from: `image`, or once `start` built one,
    /// the id of the prepared or Containerfile image.
    pub fn image(&self) -> String {
        self.shared.image()
    }

    /// Whether `start` built the image (false: pulled, present or cached).
    pub fn image_was_built(&self) -> bool {
        lock(&self.shared.image).as_ref().is_some_and(|i| i.1)
    }

    /// Containers existing right now (starting, ready, handed out).
    pub fn existing(&self) -> u64 {
        lock(&self.shared.state).existing()
    }

    /// How many `podman run`s were retried after a transient failure.
    pub fn transient_retries(&self) -> u64 {
        self.shared.retried.load(Ordering::Relaxed)
    }

    /// [`ProvisionerImpl::get_remote`] with a Rust error type.
    pub fn get(&self, timeout: Duration) -> Result<Option<PodmanRemote>, PodmanError> {
        let shared = &self.shared;
        let deadline = Instant::now().checked_add(timeout);
        let mut st = lock(&shared.state);
        st.waiting += 1;
        let result = loop {
            if let Some(e) = st.failures.pop_front() {
                // A queued failure held back new starts; now it is reported.
                shared.fill(&mut st);
                break Err(e);
            }
            if let Some(c) = st.ready.pop_front() {
                st.handed_out += 1;
                break Ok(Some(PodmanRemote {
                    c,
                    shared: Arc::clone(shared),
                }));
            }
            if st.stopped {
                break Err(PodmanError::Stopped(
                    "podman: the provisioner was stopped".into(),
                ));
            }
            if (shared.cancelled)() {
                break Err(PodmanError::Stopped("podman: cancelled".into()));
            }
            let now = Instant::now();
            let wait = match deadline {
                Some(d) if d <= now => break Ok(None),
                Some(d) => (d - now).min(POLL),
                None => POLL,
            };
            st = shared
                .changed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        st.waiting -= 1;
        result
    }

    /// Removes every container this provisioner made and joins its threads.
    pub fn shutdown(&self) -> Result<(), PodmanError> {
        let shared = &self.shared;
        {
            let mut st = lock(&shared.state);
            st.stopped = true;
            st.pending = 0;
            st.unlimited = false;
            shared.changed.notify_all();
        }
        // Workers finish their podman command (bounded by command_timeout)
        // and see `stopped`; no new worker starts once it is set.
        loop {
            let workers = std::mem::take(&mut lock(&shared.state).workers);
            if workers.is_empty() {
                break;
            }
            for w in workers {
                let _ = w.join();
            }
        }
        let live = {
            let mut st = lock(&shared.state);
            st.ready.clear();
            std::mem::take(&mut st.live)
        };
        for c in &live {
            *lock(&c.released) = true;
        }
        // Sweep by label: also catches containers of failed or interrupted
        // starts that never got as far as the list above.
        let filter = format!("{PROVISIONER_LABEL}={}", shared.token);
        let ids = list_with(&shared.runner, &filter)?;
        if !ids.is_empty() {
            tracing::info!(target: "atex_podman", "removing {} container(s)", ids.len());
            remove_with(&shared.runner, &ids)?;
        }
        Ok(())
    }
}

impl Drop for PodmanProvisioner {
    /// A provisioner dropped without `stop` (a Rust caller that panicked)
    /// still removes its containers.
    fn drop(&mut self) {
        let stopped = lock(&self.shared.state).stopped;
        if !stopped && let Err(e) = self.shutdown() {
            tracing::warn!(target: "atex_podman", "cleanup on drop: {e}");
        }
    }
}

impl Shared {
    fn image(&self) -> String {
        lock(&self.image)
            .as_ref()
            .map_or_else(|| self.config.image.clone(), |i| i.0.clone())
    }

    /// Makes the image containers run from, once: builds the
    /// `containerfile`, or pulls `image` as `pull` says; then installs the
    /// `prepare` packages into a derived image (cached).
    fn prepare_image(&self) -> Result<(), PodmanError> {
        let mut image = lock(&self.image);
        if image.is_some() {
            return Ok(());
        }
        // Several provisioners of one run (one process) pulling or building
        // the same image at once race in podman; one at a time, the later
        // ones find the image present or the prepared image cached.
        static PREPARING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = lock(&PREPARING);
        let c = &self.config;
        let cancelled = || self.is_stopping();
        let prep = Preparer {
            runner: &self.runner,
            timeout: c.prepare_timeout(),
            cancelled: &cancelled,
            token: &self.token,
        };
        let (mut current, mut built, base_name) = match &c.containerfile {
            Some(file) => (prep.containerfile(file)?, true, file.display().to_string()),
            None => {
                prep.pull(&c.image, c.pull, c.tls_verify)?;
                (c.image.clone(), false, c.image.clone())
            }
        };
        // Checked by `validate` when the provisioner was made.
        let packages = c.packages().unwrap_or_default();
        if !packages.is_empty() {
            let (id, now) = prep.prepared(&current, &base_name, &packages)?;
            current = id;
            built = now;
        }
        *image = Some((current, built));
        Ok(())
    }

    /// Starts workers while there are requests and room for them.
    fn fill(self: &Arc<Self>, st: &mut State) {
        st.workers.retain(|w| !w.is_finished());
        while !st.stopped
            && st.failures.is_empty()
            && (st.unlimited || st.pending > 0)
            && st.existing() < u64::from(self.config.max)
        {
            if !st.unlimited {
                st.pending -= 1;
            }
            st.starting += 1;
            let me = Arc::clone(self);
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            let spawned = thread::Builder::new()
                .name(format!("podman-start-{seq}"))
                .spawn(move || me.worker(seq));
            match spawned {
                Ok(handle) => st.workers.push(handle),
                Err(e) => {
                    st.starting -= 1;
                    st.failures.push_back(PodmanError::Container {
                        container: format!("#{seq}"),
                        message: format!("cannot start a thread: {e}"),
                    });
                }
            }
        }
    }

    fn worker(self: Arc<Self>, seq: u64) {
        let result = self.start_container(seq);
        let mut st = lock(&self.state);
        st.starting -= 1;
        match result {
            Ok(c) if st.stopped => {
                // stop() sweeps by label; nothing to hand out any more.
                tracing::debug!(target: "atex_podman", "{} started after stop", c.name);
            }
            Ok(c) => {
                st.live.push(Arc::clone(&c));
                st.ready.push_back(c);
            }
            Err(e) if st.stopped => {
                tracing::debug!(target: "atex_podman", "start after stop failed: {e}");
            }
            Err(e) => {
                tracing::error!(target: "atex_podman", "{e}");
                // The container never came: the error answers the request
                // it was started for (the host asks again if it still
                // needs a system), so every failed start is one error the
                // caller sees and counts, never a request silently used up
                // that leaves `get_remote` waiting for a container nobody
                // starts.
                st.failures.push_back(e);
            }
        }
        self.fill(&mut st);
        self.changed.notify_all();
    }

    fn is_stopping(&self) -> bool {
        lock(&self.state).stopped || (self.cancelled)()
    }

    fn run_args(&self, container_name: &str) -> Vec<String> {
        self.container_args(&["run", "--detach"], container_name)
    }

    /// `podman VERB...` with every option a container of this provisioner
    /// gets: `run --detach` starts one, `create` only checks the options.
    fn container_args(&self, verb: &[&str], container_name: &str) -> Vec<String> {
        let c = &self.config;
        let mut a = args(verb);
        a.extend(args([
            "--quiet",
            "--pull=never",
            "--name",
            container_name,
            "--label",
            &format!("{RUN_LABEL}={}", self.run_label),
            "--label",
            &format!("{PROVISIONER_LABEL}={}", self.token),
        ]));
        if let Some(runtime) = &c.runtime {
            a.push(format!("--runtime={runtime}"));
        }
        if c.systemd {
            a.extend(args(["--systemd=always", "--restart=always"]));
        }
        a.extend(c.run_options.iter().cloned());
        a.push(self.image());
        a.extend(self.command.iter().cloned());
        a
    }

    /// `podman run` (retrying transient failures), then in systemd mode
    /// waits for systemd to finish booting.
    fn start_container(&self, seq: u64) -> Result<Arc<Container>, PodmanError> {
        let container_name = format!("atex-{}-{seq}", self.token);
        let run_args = self.run_args(&container_name);
        let started = Instant::now();
        let mut attempt = 0;
        let id = loop {
            if self.is_stopping() {
                return Err(PodmanError::Stopped(
                    "podman: stopped while starting".into(),
                ));
            }
            attempt += 1;
            match self.runner.run(&run_args) {
                Ok(out) => match out.stdout.lines().last().map(str::trim) {
                    Some(id) if !id.is_empty() => break id.to_string(),
                    _ => {
                        self.remove_quietly(&container_name);
                        return Err(PodmanError::Container {
                            container: container_name,
                            message: "`podman run` printed no container id".into(),
                        });
                    }
                },
                Err(e) => {
                    // A failed run may leave a created container behind.
                    self.remove_quietly(&container_name);
                    if e.is_transient() && attempt <= self.config.retries {
                        self.retried.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            target: "atex_podman",
                            "transient podman failure (attempt {attempt} of {}), retrying: {e}",
                            self.config.retries + 1
                        );
                        thread::sleep(Duration::from_millis(
                            100 * u64::from(attempt) + seq % 7 * 20,
                        ));
                        continue;
                    }
                    return Err(self.explain(e));
                }
            }
        };
        let short: String = id.chars().take(12).collect();
        let container = Container {
            name: format!("podman-{short}"),
            id,
            started_in: Duration::ZERO,
            released: Mutex::new(false),
            down_since: Mutex::new(None),
        };
        if self.config.systemd
            && let Err(e) = self.wait_for_systemd(&container.id, &container.name)
        {
            self.remove_quietly(&container.id);
            return Err(e);
        }
        let container = Container {
            started_in: started.elapsed(),
            ..container
        };
        tracing::info!(
            target: "atex_podman",
            "started {} ({}) in {} ms",
            container.name,
            container_name,
            container.started_in.as_millis()
        );
        Ok(Arc::new(container))
    }

    /// Checks, before any container is asked for, what would make every
    /// `podman run` fail: the image cannot be pulled or built, or podman
    /// refuses the options (`run_options`, `runtime`). The options are
    /// checked with `podman create` of a container that is removed at once
    /// (about 0.1 s); a transient failure of the check is only logged, as
    /// the real starts retry those.
    fn check_startable(&self) -> Result<(), PodmanError> {
        self.prepare_image()?;
        let name = format!("atex-{}-check", self.token);
        let created = self.runner.run(&self.container_args(&["create"], &name));
        self.remove_quietly(&name);
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(target: "atex_podman", "checking the options: {e}");
                Ok(())
            }
            Err(e) => Err(self.explain(e)),
        }
    }

    /// A missing image gets a message naming it.
    fn explain(&self, e: PodmanError) -> PodmanError {
        match e {
            PodmanError::Failed {
                command, message, ..
            } if message.contains("image not known") || message.contains("no such image") => {
                PodmanError::ImageMissing {
                    image: self.config.image.clone(),
                    command,
                    message,
                }
            }
            other => other,
        }
    }

    fn remove_quietly(&self, container: &str) {
        let a = args(["rm", "--force", "--time=0", "--ignore", container]);
        if let Err(e) = self.runner.run(&a) {
            tracing::warn!(target: "atex_podman", "{e}");
        }
    }

    /// Polls `systemctl is-system-running` until it says `running` or
    /// `degraded` (the states upstream accepts too).
    fn wait_for_systemd(&self, id: &str, name: &str) -> Result<(), PodmanError> {
        let deadline = Instant::now() + self.config.boot_timeout();
        let probe = args([
            "exec",
            id,
            "sh",
            "-c",
            "systemctl is-system-running 2>&1; true",
        ]);
        let mut last = String::new();
        while Instant::now() < deadline {
            if self.is_stopping() {
                return Err(PodmanError::Stopped("podman: stopped while booting".into()));
            }
            match self.runner.run(&probe) {
                Ok(out) => {
                    let state = out.stdout.lines().last().unwrap_or("").trim().to_string();
                    if state == "running" || state == "degraded" {
                        return Ok(());
                    }
                    last = state;
                }
                Err(e) => last = e.to_string(),
            }
            thread::sleep(Duration::from_millis(100));
        }
        let logs = self
            .runner
            .run(&args(["logs", "--tail=5", id]))
            .map(|o| podman::one_line(&o.stdout))
            .unwrap_or_default();
        Err(PodmanError::Container {
            container: name.to_string(),
            message: format!(
                "systemd did not finish booting within {} s (last state: {last}; last log lines: {logs})",
                self.config.boot_timeout
            ),
        })
    }

    fn released(self: &Arc<Self>, c: &Arc<Container>) {
        let mut st = lock(&self.state);
        st.handed_out = st.handed_out.saturating_sub(1);
        st.live.retain(|x| !Arc::ptr_eq(x, c));
        self.fill(&mut st);
        self.changed.notify_all();
    }
}

impl ProvisionerImpl for PodmanProvisioner {
    type Remote = PodmanRemote;

    /// Fails with one line naming the image or the refused option when no
    /// container could ever start, instead of failing every start later.
    fn start(&self) -> Result<(), PluginError> {
        self.shared
            .check_startable()
            .map_err(|e| PluginError::config(e.to_string()))
    }

    fn provision(&self, count: u32) {
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        if st.stopped {
            tracing::warn!(target: "atex_podman", "provision({count}) after stop is ignored");
            return;
        }
        if count == u32::MAX {
            st.unlimited = true;
        } else {
            st.pending = st.pending.saturating_add(u64::from(count));
        }
        shared.fill(&mut st);
    }

    fn get_remote(&self, timeout: Duration) -> Result<Option<PodmanRemote>, PluginError> {
        self.get(timeout).map_err(to_plugin_error)
    }

    /// Drops pending requests, except those a caller blocked in
    /// `get_remote` is waiting for and no starting or ready container will
    /// serve: such a caller asked and is still asking.
    fn clear(&self) {
        let mut st = lock(&self.shared.state);
        let covered = st.ready.len() as u64 + u64::from(st.starting);
        let keep = u64::from(st.waiting).saturating_sub(covered);
        st.pending = if st.unlimited {
            keep
        } else {
            st.pending.min(keep)
        };
        st.unlimited = false;
    }

    fn max_remotes(&self) -> Option<u32> {
        Some(self.shared.config.max)
    }

    fn stop(&self) -> Result<(), PluginError> {
        self.shutdown().map_err(to_plugin_error)
    }
}

fn to_plugin_error(e: PodmanError) -> PluginError {
    match e {
        PodmanError::Stopped(m) => PluginError::new(ErrorKind::CANCELLED, m),
        PodmanError::Timeout { .. } => PluginError::new(ErrorKind::TIMEOUT, e.to_string()),
        other => PluginError::remote(other.to_string()),
    }
}

/// One container handed out by [`PodmanProvisioner`].
pub struct PodmanRemote {
    c: Arc<Container>,
    shared: Arc<Shared>,
}

impl PodmanRemote {
    /// The full container id.
    pub fn container_id(&self) -> &str {
        &self.c.id
    }

    /// How long the container took to start (and, in systemd mode, boot).
    pub fn start_duration(&self) -> Duration {
        self.c.started_in
    }

    /// The argv prefix that runs a command in the container; see the crate
    /// documentation for the contract.
    pub fn command_prefix(&self) -> Vec<String> {
        command_prefix(&self.c.id)
    }

    /// [`RemoteImpl::alive`] with a Rust error type.
    pub fn is_alive(&self) -> Result<bool, PodmanError> {
        if *lock(&self.c.released) {
            return Ok(false);
        }
        let a = args([
            "container",
            "inspect",
            "--format",
            "{{.State.Status}} {{.HostConfig.RestartPolicy.Name}}",
            &self.c.id,
        ]);
        let out = match self.shared.runner.run(&a) {
            Ok(out) => out.stdout,
            Err(PodmanError::Failed { message, .. })
                if message.contains("no such") || message.contains("not known") =>
            {
                tracing::info!(target: "atex_podman", "{} is gone: {message}", self.c.name);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let mut words = out.split_whitespace();
        let status = words.next().unwrap_or("");
        let restart = words.next().unwrap_or("");
        let mut down_since = lock(&self.c.down_since);
        if status == "running" {
            *down_since = None;
            return Ok(true);
        }
        if self.shared.config.systemd && restart == "always" {
            // Rebooting: systemd exited and podman is restarting the same
            // container. Alive for up to boot_timeout.
            let since = *down_since.get_or_insert_with(Instant::now);
            let alive = since.elapsed() < self.shared.config.boot_timeout();
            if !alive {
                tracing::warn!(
                    target: "atex_podman",
                    "{} has not come back within {} s (status {status})",
                    self.c.name,
                    self.shared.config.boot_timeout
                );
            }
            return Ok(alive);
        }
        tracing::info!(target: "atex_podman", "{} is not running (status {status})", self.c.name);
        Ok(false)
    }

    /// [`RemoteImpl::release`] with a Rust error type.
    pub fn remove(&self) -> Result<(), PodmanError> {
        let mut released = lock(&self.c.released);
        if *released {
            return Ok(());
        }
        *released = true;
        let a = args(["rm", "--force", "--time=0", "--ignore", &self.c.id]);
        let result = self.shared.runner.run(&a).map(|_| ());
        drop(released);
        tracing::debug!(target: "atex_podman", "released {}", self.c.name);
        self.shared.released(&self.c);
        result
    }
}

/// The connection prefix for a container: `podman exec -i <id>`.
pub fn command_prefix(container_id: &str) -> Vec<String> {
    args([PODMAN, "exec", "--interactive", container_id])
}

impl RemoteImpl for PodmanRemote {
    fn name(&self) -> String {
        self.c.name.clone()
    }

    fn platform(&self) -> String {
        self.shared.platform.clone()
    }

    fn connection(&self) -> Result<Connection, PluginError> {
        Ok(Connection::command(self.command_prefix()))
    }

    fn alive(&self) -> Result<bool, PluginError> {
        self.is_alive().map_err(to_plugin_error)
    }

    fn release(&self) -> Result<(), PluginError> {
        self.remove().map_err(to_plugin_error)
    }
}
