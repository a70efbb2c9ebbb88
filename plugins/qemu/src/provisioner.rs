//! The provisioner and its remotes: VMs booted or restored on background
//! threads, handed out when ssh works, killed on release and on stop.
//!
//! One mutex guards the counters; a condition variable wakes `get_remote`
//! callers. At most `max` VMs exist at once (starting + ready + handed
//! out); the snapshot template is made inside one of the starting slots, so
//! it counts too. A failed start is queued as an error for the next
//! `get_remote`; while one is queued no new start begins.

use std::{
    collections::{VecDeque, hash_map::RandomState},
    hash::{BuildHasher, Hasher},
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use atex_plugin_api::{
    Connection, ErrorKind, PluginError, SshTarget,
    abi_stable::std_types::{ROption, RString, RVec},
    packages::PackageSet,
    sdk::{PluginContext, ProvisionerImpl, RemoteImpl},
};

use crate::{
    QemuError,
    cleanup::{kill_pids, list_processes},
    config::{Accel, QemuConfig, default_state_root, valid_label},
    vm::{
        Files, KeyPair, Machine, Process, Resolved, create_overlay, free_port, kvm_openable,
        kvm_works, ssh_probe, ssh_run,
    },
};

/// A callback telling whether the host wants everything to stop.
pub type CancelFn = Box<dyn Fn() -> bool + Send + Sync>;

/// How often blocked waits look at the cancel flag.
const POLL: Duration = Duration::from_millis(200);

/// How long the KVM probe guest may take to boot its kernel.
const KVM_PROBE_LIMIT: Duration = Duration::from_secs(10);

/// Hands out QEMU VMs; see the crate documentation.
pub struct QemuProvisioner {
    shared: Arc<Shared>,
}

struct Shared {
    config: QemuConfig,
    run_label: String,
    token: String,
    platform: String,
    /// The provisioner's own directory: key, overlays, states, pid files.
    dir: PathBuf,
    base: PathBuf,
    key: KeyPair,
    machine: Machine,
    cancelled: CancelFn,
    next_seq: AtomicU64,
    /// The accelerator, once decided (the first start decides).
    accel: Mutex<Option<Resolved>>,
    /// The disk VMs start from: `base`, or the prepared disk once made.
    /// Its lock is held while the disk is being prepared.
    disk: Mutex<Option<PathBuf>>,
    /// The snapshot template, once saved. Its lock is held while it is
    /// being made: other starts wait for it.
    template: Mutex<Option<Arc<Template>>>,
    /// Every QEMU process running, booting ones included, for `stop`.
    procs: Mutex<Vec<Arc<Process>>>,
    state: Mutex<State>,
    changed: Condvar,
}

struct Template {
    /// The template's disk: the backing file of every restored VM.
    disk: PathBuf,
    /// Its saved running state.
    state: PathBuf,
}

#[derive(Default)]
struct State {
    pending: u64,
    unlimited: bool,
    starting: u32,
    ready: VecDeque<Arc<Vm>>,
    handed_out: u32,
    waiting: u32,
    failures: VecDeque<QemuError>,
    workers: Vec<JoinHandle<()>>,
    stopped: bool,
}

impl State {
    fn existing(&self) -> u64 {
        u64::from(self.starting) + self.ready.len() as u64 + u64::from(self.handed_out)
    }
}

struct Vm {
    proc: Arc<Process>,
    started_in: Duration,
    restored: bool,
    released: Mutex<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it.
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

impl QemuProvisioner {
    /// The plugin constructor: parses the configuration from the host.
    pub fn new(ctx: PluginContext) -> Result<Self, PluginError> {
        let config: QemuConfig = ctx.parse_config()?;
        let run_id = ctx.run_id().to_string();
        let cancel_ctx = ctx.clone();
        Self::from_config(config, &run_id, Box::new(move || cancel_ctx.is_cancelled()))
    }

    /// A provisioner for Rust callers: `run_id` is the default run marker,
    /// `cancelled` is polled during long waits.
    pub fn from_config(
        config: QemuConfig,
        run_id: &str,
        cancelled: CancelFn,
    ) -> Result<Self, PluginError> {
        config
            .validate()
            .map_err(|e| PluginError::config(format!("qemu: {e}")))?;
        let run_label = config.label.clone().unwrap_or_else(|| run_id.to_string());
        if !valid_label(&run_label) {
            return Err(PluginError::config(format!(
                "qemu: run id {run_label:?} cannot be a marker; set `label`"
            )));
        }
        let base = config.effective_image();
        let kernel = config.effective_kernel();
        for (what, path) in [("image", &base), ("kernel", &kernel)] {
            if !path.is_file() {
                return Err(PluginError::config(format!(
                    "qemu: {what} {} does not exist (tests/images/build-vm.sh builds the default one)",
                    path.display()
                )));
            }
        }
        let initrd = config.effective_initrd();
        let token = random_token();
        let root = config.state_dir.clone().unwrap_or_else(default_state_root);
        let dir = root.join(format!("{run_label}.{token}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| PluginError::io(format!("qemu: creating {}: {e}", dir.display())))?;
        let key = KeyPair::generate(&dir).map_err(|e| PluginError::io(format!("qemu: {e}")))?;
        let mut append = format!("root=/dev/vda rw console=ttyS0 {}", key.kernel_arg());
        if let Some(extra) = &config.append {
            append.push(' ');
            append.push_str(extra);
        }
        let machine = Machine {
            qemu: config.qemu.clone(),
            kernel,
            initrd,
            append,
            memory: config.memory,
            cpus: config.cpus,
            extra: config.qemu_options.clone(),
            run_label: run_label.clone(),
            token: token.clone(),
        };
        let accel = match config.accel {
            Accel::Tcg => Some(Resolved::Tcg {
                tb_size: config.tb_size,
            }),
            Accel::Kvm => Some(Resolved::Kvm),
            Accel::Auto => None,
        };
        tracing::debug!(
            target: "atex_qemu",
            "provisioner {token}: image {}, max {}, snapshot {}, state {}",
            base.display(), config.max, config.snapshot, dir.display()
        );
        let shared = Shared {
            platform: config.effective_platform(),
            run_label,
            token,
            dir,
            base,
            key,
            machine,
            cancelled,
            next_seq: AtomicU64::new(1),
            accel: Mutex::new(accel),
            disk: Mutex::new(None),
            template: Mutex::new(None),
            procs: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            config,
        };
        Ok(QemuProvisioner {
            shared: Arc::new(shared),
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &QemuConfig {
        &self.shared.config
    }

    /// The run marker on this provisioner's QEMU command lines.
    pub fn run_label(&self) -> &str {
        &self.shared.run_label
    }

    /// The provisioner marker, unique to this provisioner.
    pub fn provisioner_label(&self) -> &str {
        &self.shared.token
    }

    /// The provisioner's state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        &self.shared.dir
    }

    /// The accelerator in use (`kvm` or `tcg`), once decided.
    pub fn accel(&self) -> Option<&'static str> {
        lock(&self.shared.accel).as_ref().map(|a| match a {
            Resolved::Kvm => "kvm",
            Resolved::Tcg { .. } => "tcg",
        })
    }

    /// VMs existing right now (starting, ready, handed out).
    pub fn existing(&self) -> u64 {
        lock(&self.shared.state).existing()
    }

    /// [`ProvisionerImpl::get_remote`] with a Rust error type.
    pub fn get(&self, timeout: Duration) -> Result<Option<QemuRemote>, QemuError> {
        let shared = &self.shared;
        let deadline = Instant::now().checked_add(timeout);
        let mut st = lock(&shared.state);
        st.waiting += 1;
        let result = loop {
            if let Some(e) = st.failures.pop_front() {
                shared.fill(&mut st);
                break Err(e);
            }
            if let Some(vm) = st.ready.pop_front() {
                st.handed_out += 1;
                break Ok(Some(QemuRemote {
                    vm,
                    shared: Arc::clone(shared),
                }));
            }
            if st.stopped {
                break Err(QemuError::Stopped(
                    "qemu: the provisioner was stopped".into(),
                ));
            }
            if (shared.cancelled)() {
                break Err(QemuError::Stopped("qemu: cancelled".into()));
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

    /// Kills every VM of this provisioner (booting ones too), joins its
    /// threads and removes its state directory.
    pub fn shutdown(&self) {
        let shared = &self.shared;
        {
            let mut st = lock(&shared.state);
            st.stopped = true;
            st.pending = 0;
            st.unlimited = false;
            shared.changed.notify_all();
        }
        // Kill first: a worker waiting for a boot sees its QEMU gone and
        // returns at once.
        shared.kill_all();
        loop {
            let workers = std::mem::take(&mut lock(&shared.state).workers);
            if workers.is_empty() {
                break;
            }
            for w in workers {
                let _ = w.join();
            }
            shared.kill_all();
        }
        lock(&shared.state).ready.clear();
        // Anything with our marker that escaped the list above.
        if let Ok(procs) = list_processes(Some(&shared.run_label)) {
            let pids: Vec<u32> = procs
                .iter()
                .filter(|p| p.provisioner.as_deref() == Some(shared.token.as_str()))
                .map(|p| p.pid)
                .collect();
            if !pids.is_empty() {
                tracing::info!(target: "atex_qemu", "killing {} stray QEMU process(es)", pids.len());
                kill_pids(&pids);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&shared.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(target: "atex_qemu", "removing {}: {e}", shared.dir.display());
        }
    }
}

impl Drop for QemuProvisioner {
    /// A provisioner dropped without `stop` still kills its VMs.
    fn drop(&mut self) {
        let stopped = lock(&self.shared.state).stopped;
        if !stopped {
            self.shutdown();
        }
    }
}

impl Shared {
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
                .name(format!("qemu-start-{seq}"))
                .spawn(move || me.worker(seq));
            match spawned {
                Ok(handle) => st.workers.push(handle),
                Err(e) => {
                    st.starting -= 1;
                    st.failures
                        .push_back(QemuError::Io(format!("cannot start a thread: {e}")));
                }
            }
        }
    }

    fn worker(self: Arc<Self>, seq: u64) {
        let result = self.start_vm(seq);
        let mut st = lock(&self.state);
        st.starting -= 1;
        match result {
            Ok(vm) if st.stopped => {
                drop(st);
                self.discard(&vm.proc);
                st = lock(&self.state);
            }
            Ok(vm) => st.ready.push_back(vm),
            Err(e) if st.stopped => {
                tracing::debug!(target: "atex_qemu", "start after stop failed: {e}");
            }
            Err(e) => {
                tracing::error!(target: "atex_qemu", "{e}");
                st.failures.push_back(e);
            }
        }
        self.fill(&mut st);
        self.changed.notify_all();
    }

    fn is_stopping(&self) -> bool {
        lock(&self.state).stopped || (self.cancelled)()
    }

    fn kill_all(&self) {
        let procs = std::mem::take(&mut *lock(&self.procs));
        for p in &procs {
            p.kill();
        }
    }

    /// Kills a VM, forgets it and removes its files.
    fn discard(&self, p: &Arc<Process>) {
        p.kill();
        lock(&self.procs).retain(|x| !Arc::ptr_eq(x, p));
        p.files.remove(false);
    }

    /// The accelerator, deciding it on first use.
    fn accel(&self) -> Result<Resolved, QemuError> {
        let mut slot = lock(&self.accel);
        if let Some(a) = slot.as_ref() {
            return Ok(a.clone());
        }
        let tcg = Resolved::Tcg {
            tb_size: self.config.tb_size,
        };
        let decided = if !kvm_openable() {
            tracing::info!(target: "atex_qemu", "/dev/kvm cannot be opened: using TCG");
            tcg
        } else if kvm_works(&self.machine, &self.dir, KVM_PROBE_LIMIT, &|| {
            self.is_stopping()
        })? {
            tracing::info!(target: "atex_qemu", "KVM works: using it");
            Resolved::Kvm
        } else {
            tracing::warn!(
                target: "atex_qemu",
                "/dev/kvm exists but a guest made no progress under it within {} s: using TCG",
                KVM_PROBE_LIMIT.as_secs()
            );
            tcg
        };
        *slot = Some(decided.clone());
        Ok(decided)
    }

    /// The disk every VM starts from: the base image, or with `prepare`
    /// the prepared disk, taken from the cache or made on first use.
    fn disk(&self, accel: &Resolved) -> Result<PathBuf, QemuError> {
        let mut slot = lock(&self.disk);
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        // Checked by `validate` when the provisioner was made.
        let packages = self.config.packages().unwrap_or_default();
        let disk = if packages.is_empty() {
            self.base.clone()
        } else {
            self.prepared(accel, &packages)?
        };
        *slot = Some(disk.clone());
        Ok(disk)
    }

    /// The prepared disk for `packages` on the base image: the cached one,
    /// or a new one made by a VM that installs them and powers off.
    fn prepared(&self, accel: &Resolved, packages: &PackageSet) -> Result<PathBuf, QemuError> {
        let io = |what: &str, p: &std::path::Path, e: std::io::Error| {
            QemuError::Io(format!("qemu: {what} {}: {e}", p.display()))
        };
        let base = std::fs::canonicalize(&self.base).map_err(|e| io("reading", &self.base, e))?;
        let meta = std::fs::metadata(&base).map_err(|e| io("reading", &base, e))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = packages.key(&format!("{}\0{}\0{modified}", base.display(), meta.len()));
        let dir = self.config.effective_prepare_dir();
        let cached = dir.join(format!("{key}.qcow2"));
        let count = packages.packages().len() + packages.recommended().len();
        if cached.is_file() {
            tracing::info!(
                target: "atex_qemu",
                "prepared disk {} ({count} package(s)) is cached",
                cached.display()
            );
            return Ok(cached);
        }
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        let started = Instant::now();
        tracing::info!(
            target: "atex_qemu",
            "preparing a disk with {count} package(s): booting {}",
            base.display()
        );
        let files = Files::new(&self.dir, "prepare");
        let _ = std::fs::remove_file(&files.overlay);
        create_overlay(&base, &files.overlay)?;
        let proc = self.launch("prepare", files, accel, None)?;
        let script = format!("{}\nsync\n", packages.install_script());
        let cancelled = || self.is_stopping();
        let ran = ssh_run(
            &self.key.private,
            &self.config.user,
            proc.port,
            &script,
            Duration::from_secs(self.config.prepare_timeout),
            &cancelled,
        );
        let installed = match ran {
            Ok((true, _)) => {
                // A clean power-off leaves a consistent file system.
                let _ = ssh_probe(
                    &self.key.private,
                    &self.config.user,
                    proc.port,
                    "systemctl poweroff",
                    Duration::from_secs(30),
                );
                proc.wait_exit(Duration::from_secs(120));
                Ok(())
            }
            Ok((false, tail)) => Err(QemuError::Failed {
                what: format!("cannot prepare a disk from {}", base.display()),
                message: format!("installing {count} package(s) failed (last output: {tail})"),
            }),
            Err(e) => Err(e),
        };
        lock(&self.procs).retain(|x| !Arc::ptr_eq(x, &proc));
        proc.kill();
        let made = installed.and_then(|()| {
            // Under a temporary name first: a half-copied disk is never
            // taken for a cached one.
            let part = dir.join(format!("{key}.qcow2.part-{}", self.token));
            std::fs::rename(&proc.files.overlay, &part)
                .or_else(|_| std::fs::copy(&proc.files.overlay, &part).map(|_| ()))
                .and_then(|()| std::fs::rename(&part, &cached))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&part);
                    io("storing", &cached, e)
                })
        });
        proc.files.remove(false);
        made?;
        tracing::info!(
            target: "atex_qemu",
            "prepared disk {} made in {} ms",
            cached.display(),
            started.elapsed().as_millis()
        );
        Ok(cached)
    }

    /// The snapshot template, making it on first use.
    fn template(&self, accel: &Resolved) -> Result<Arc<Template>, QemuError> {
        let mut slot = lock(&self.template);
        if let Some(t) = slot.as_ref() {
            return Ok(Arc::clone(t));
        }
        let started = Instant::now();
        let disk = self.disk(accel)?;
        let files = Files::new(&self.dir, "template");
        let _ = std::fs::remove_file(&files.overlay);
        create_overlay(&disk, &files.overlay)?;
        let proc = self.launch("template", files, accel, None)?;
        // Let the boot finish (units still starting when ssh first works)
        // before saving: otherwise every restored VM finishes it again.
        let settled = ssh_probe(
            &self.key.private,
            &self.config.user,
            proc.port,
            "timeout 120 systemctl is-system-running --wait >/dev/null 2>&1",
            Duration::from_secs(150),
        );
        tracing::debug!(
            target: "atex_qemu",
            "template settled ({settled}) after {} ms",
            started.elapsed().as_millis()
        );
        let state = self.dir.join("template.state");
        let saved = proc.save_and_quit(&state);
        lock(&self.procs).retain(|x| !Arc::ptr_eq(x, &proc));
        proc.kill();
        proc.files.remove(true);
        saved?;
        tracing::info!(
            target: "atex_qemu",
            "template booted and saved in {} ms",
            started.elapsed().as_millis()
        );
        let t = Arc::new(Template {
            disk: proc.files.overlay.clone(),
            state,
        });
        *slot = Some(Arc::clone(&t));
        Ok(t)
    }

    /// Starts QEMU on an existing overlay (retrying a port lost to a race)
    /// and waits until ssh works.
    fn launch(
        &self,
        name: &str,
        files: Files,
        accel: &Resolved,
        incoming: Option<&std::path::Path>,
    ) -> Result<Arc<Process>, QemuError> {
        let mut files = Some(files);
        for attempt in 1..=3 {
            if self.is_stopping() {
                if let Some(f) = &files {
                    f.remove(false);
                }
                return Err(QemuError::Stopped("qemu: stopped while starting".into()));
            }
            let f = files
                .take()
                .ok_or_else(|| QemuError::Io("internal: no files".into()))?;
            let port = free_port()?;
            let argv = self.machine.argv(name, &f, accel, port, incoming);
            let child = self.machine.spawn(&argv, &f.stderr)?;
            let proc = Arc::new(Process::new(name.to_string(), port, f, child));
            {
                // Registered before anything can block, so stop finds it.
                let mut procs = lock(&self.procs);
                if lock(&self.state).stopped {
                    drop(procs);
                    proc.kill();
                    proc.files.remove(false);
                    return Err(QemuError::Stopped("qemu: stopped while starting".into()));
                }
                procs.push(Arc::clone(&proc));
            }
            let resumed = match incoming {
                // A QEMU that exited (a port lost to a race) says why.
                Some(_) => proc
                    .resume_after_restore(self.config.boot_timeout())
                    .map_err(|e| match proc.exited() {
                        Some(why) => QemuError::Failed {
                            what: name.to_string(),
                            message: why,
                        },
                        None => e,
                    }),
                None => Ok(()),
            };
            match resumed.and_then(|()| self.wait_for_ssh(&proc)) {
                Ok(()) => return Ok(proc),
                Err(QemuError::Failed { message, .. })
                    if attempt < 3 && message.contains("host forwarding") =>
                {
                    tracing::info!(target: "atex_qemu", "{name}: port {port} was taken, retrying");
                    lock(&self.procs).retain(|x| !Arc::ptr_eq(x, &proc));
                    proc.kill();
                    // Everything but the overlay, which the next try reuses.
                    proc.files.remove(true);
                    files = Some(Files::new(&self.dir, name));
                }
                Err(e) => {
                    self.discard(&proc);
                    return Err(e);
                }
            }
        }
        Err(QemuError::Failed {
            what: name.to_string(),
            message: "no free port for ssh forwarding".into(),
        })
    }

    /// Polls ssh until it works, QEMU exits, the boot times out or the
    /// provisioner stops.
    fn wait_for_ssh(&self, proc: &Process) -> Result<(), QemuError> {
        let deadline = Instant::now() + self.config.boot_timeout();
        loop {
            if self.is_stopping() {
                return Err(QemuError::Stopped("qemu: stopped while booting".into()));
            }
            if let Some(why) = proc.exited() {
                return Err(QemuError::Failed {
                    what: proc.name.clone(),
                    message: format!("{why} (console: {})", proc.console_tail()),
                });
            }
            if proc.guest_panicked() {
                return Err(QemuError::Failed {
                    what: proc.name.clone(),
                    message: format!("the guest kernel panicked ({})", proc.console_tail()),
                });
            }
            if ssh_probe(
                &self.key.private,
                &self.config.user,
                proc.port,
                "true",
                Duration::from_secs(30),
            ) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(QemuError::Timeout {
                    vm: proc.name.clone(),
                    message: format!(
                        "ssh did not work within {} s (last console lines: {})",
                        self.config.boot_timeout,
                        proc.console_tail()
                    ),
                });
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Boots (or restores) one VM and waits for ssh.
    fn start_vm(&self, seq: u64) -> Result<Arc<Vm>, QemuError> {
        let started = Instant::now();
        let accel = self.accel()?;
        let template = if self.config.snapshot {
            Some(self.template(&accel)?)
        } else {
            None
        };
        if self.is_stopping() {
            return Err(QemuError::Stopped("qemu: stopped while starting".into()));
        }
        let name = format!("vm-{seq}");
        let files = Files::new(&self.dir, &name);
        let backing = match &template {
            Some(t) => t.disk.clone(),
            None => self.disk(&accel)?,
        };
        create_overlay(&backing, &files.overlay)?;
        let ready_from = Instant::now();
        let proc = self.launch(
            &name,
            files,
            &accel,
            template.as_ref().map(|t| t.state.as_path()),
        )?;
        let vm = Vm {
            proc,
            started_in: started.elapsed(),
            restored: template.is_some(),
            released: Mutex::new(false),
        };
        tracing::info!(
            target: "atex_qemu",
            "{} {} in {} ms (port {}, pid {})",
            vm.proc.name,
            if vm.restored { "restored" } else { "booted" },
            ready_from.elapsed().as_millis(),
            vm.proc.port,
            vm.proc.pid
        );
        Ok(Arc::new(vm))
    }

    fn released(self: &Arc<Self>) {
        let mut st = lock(&self.state);
        st.handed_out = st.handed_out.saturating_sub(1);
        self.fill(&mut st);
        self.changed.notify_all();
    }
}

impl ProvisionerImpl for QemuProvisioner {
    type Remote = QemuRemote;

    fn provision(&self, count: u32) {
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        if st.stopped {
            tracing::warn!(target: "atex_qemu", "provision({count}) after stop is ignored");
            return;
        }
        if count == u32::MAX {
            st.unlimited = true;
        } else {
            st.pending = st.pending.saturating_add(u64::from(count));
        }
        shared.fill(&mut st);
    }

    fn get_remote(&self, timeout: Duration) -> Result<Option<QemuRemote>, PluginError> {
        self.get(timeout).map_err(to_plugin_error)
    }

    /// Drops pending requests, except those a caller blocked in
    /// `get_remote` is waiting for and no starting or ready VM will serve.
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
        self.shutdown();
        Ok(())
    }
}

fn to_plugin_error(e: QemuError) -> PluginError {
    match e {
        QemuError::Stopped(m) => PluginError::new(ErrorKind::CANCELLED, m),
        QemuError::Timeout { .. } => PluginError::new(ErrorKind::TIMEOUT, e.to_string()),
        other => PluginError::remote(other.to_string()),
    }
}

/// One VM handed out by [`QemuProvisioner`].
pub struct QemuRemote {
    vm: Arc<Vm>,
    shared: Arc<Shared>,
}

impl QemuRemote {
    /// The forwarded ssh port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.vm.proc.port
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.vm.proc.pid
    }

    /// Whether the VM was restored from the template's saved state (rather
    /// than booted).
    pub fn restored(&self) -> bool {
        self.vm.restored
    }

    /// From the start request to working ssh (a template boot included for
    /// the first VMs).
    pub fn start_duration(&self) -> Duration {
        self.vm.started_in
    }

    /// The private key that logs in.
    pub fn identity_file(&self) -> &std::path::Path {
        &self.shared.key.private
    }

    /// [`RemoteImpl::release`] with a Rust error type: kills the VM.
    pub fn remove(&self) {
        let mut released = lock(&self.vm.released);
        if *released {
            return;
        }
        *released = true;
        drop(released);
        self.shared.discard(&self.vm.proc);
        tracing::debug!(target: "atex_qemu", "released {}", self.vm.proc.name);
        self.shared.released();
    }
}

impl RemoteImpl for QemuRemote {
    fn name(&self) -> String {
        format!("qemu-{}-{}", self.shared.token, self.vm.proc.name)
    }

    fn platform(&self) -> String {
        self.shared.platform.clone()
    }

    fn connection(&self) -> Result<Connection, PluginError> {
        Ok(Connection::ssh(SshTarget {
            host: RString::from("127.0.0.1"),
            port: self.vm.proc.port,
            user: RString::from(self.shared.config.user.as_str()),
            identity_file: ROption::RSome(RString::from(
                self.shared.key.private.to_string_lossy().as_ref(),
            )),
            // The guest's sshd answers slowly under emulation.
            options: RVec::from(vec![RString::from("ConnectTimeout=30")]),
        }))
    }

    fn alive(&self) -> Result<bool, PluginError> {
        if *lock(&self.vm.released) || lock(&self.shared.state).stopped {
            return Ok(false);
        }
        match self.vm.proc.exited() {
            None if self.vm.proc.guest_panicked() => {
                tracing::warn!(
                    target: "atex_qemu",
                    "{}: the guest kernel panicked ({})",
                    self.vm.proc.name,
                    self.vm.proc.console_tail()
                );
                Ok(false)
            }
            None => Ok(true),
            Some(why) => {
                tracing::info!(target: "atex_qemu", "{} is gone: {why}", self.vm.proc.name);
                Ok(false)
            }
        }
    }

    fn release(&self) -> Result<(), PluginError> {
        self.remove();
        Ok(())
    }
}

impl std::fmt::Debug for QemuRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QemuRemote")
            .field("name", &self.vm.proc.name)
            .field("port", &self.vm.proc.port)
            .finish()
    }
}
