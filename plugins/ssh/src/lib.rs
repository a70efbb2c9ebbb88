//! The `ssh` provisioner: hands out machines that already exist.
//!
//! Each host listed in `hosts` gives `max_per_host` slots. At `start` every
//! host is tried once, all at once (a login, and `sudo -n true` when
//! commands go through sudo); a host that does not answer, whose host key
//! is unknown, or whose user cannot use sudo is reported with the reason
//! and skipped, and the others carry on.
//!
//! It never destroys or resets a machine, so it never hands out a system
//! that may have been changed under the run's feet: the host releases a
//! system after a destructive test, after its system was lost, before a
//! rerun, and at the end; a released slot that ran anything (its
//! connection was asked for) is **retired** for the rest of the run. A slot
//! released untouched (the run had no test left for it) goes back to the
//! pool. Which slots were retired, and which hosts were unreachable, is
//! logged at `stop`.
//!
//! Options (see `README.md` beside this crate):
//!
//! | option            | default              | meaning                                   |
//! |-------------------|----------------------|-------------------------------------------|
//! | `hosts`           | required             | `[user@]host[:port]` entries: space-separated, a list, or `@FILE` |
//! | `user`            | `root`               | login user of entries without `user@`     |
//! | `port`            | `22`                 | port of entries without `:port`           |
//! | `key`             | ssh's default keys   | private key file                          |
//! | `sudo`            | when user is not root| run every command through `sudo -n`       |
//! | `max_per_host`    | `1`                  | systems handed out per host at once       |
//! | `platform`        | `ssh`                | platform name results are filed under     |
//! | `connect_timeout` | `10`                 | seconds ssh waits for a host              |
//! | `host_key_check`  | `true`               | check host keys against known_hosts       |
//! | `known_hosts`     | `~/.ssh/known_hosts` | the known_hosts file to check against     |

#![deny(clippy::unwrap_used)]

pub mod config;
mod probe;

use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use atex_plugin_api::{
    Connection, PluginError, SshTarget,
    abi_stable::std_types::{ROption, RString, RVec},
    export_plugin,
    sdk::{PluginContext, ProvisionerImpl, RemoteImpl},
    tracing,
};

pub use config::{HostEntry, Settings};

/// What a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    /// Its host was not reached at `start` (or `start` was not called yet).
    Unusable,
    /// Ready to hand out.
    Free,
    /// Handed out.
    InUse,
    /// Released after use: not handed out again in this run.
    Retired,
}

struct Slot {
    host: usize,
    index: u32,
    state: SlotState,
    /// The flag of the remote holding it, so `stop` can release it.
    holder: Option<Arc<AtomicBool>>,
}

#[derive(Default)]
struct State {
    pending: u32,
    slots: Vec<Slot>,
    started: bool,
    stopped: bool,
    /// Hosts skipped at start, with the reason.
    unreachable: Vec<(String, String)>,
    /// Slots retired, and whether the run went on using other systems
    /// after that (they were not handed out again while it could have
    /// used them).
    retired: Vec<(String, bool)>,
    warned_empty: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl State {
    /// The run asked for or took another system: every slot retired so
    /// far was retired while the run went on.
    fn run_goes_on(&mut self) {
        for (_, mid_run) in &mut self.retired {
            *mid_run = true;
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding
        // it; the slot table is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ssh provisioner.
pub struct SshProvisioner {
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    ctx: PluginContext,
}

fn slot_name(entry: &HostEntry, index: u32, per_host: u32) -> String {
    let host: String = entry
        .host
        .chars()
        .map(|c| if c == ':' || c == '%' { '-' } else { c })
        .collect();
    let mut name = format!("ssh-{host}");
    if entry.port != 22 {
        name.push_str(&format!("-{}", entry.port));
    }
    if per_host > 1 {
        name.push_str(&format!("-{}", index + 1));
    }
    name
}

/// A free slot on the host with the fewest slots in use, so that systems
/// spread over the hosts before doubling up on one.
fn least_busy_free_slot(slots: &[Slot]) -> Option<usize> {
    let busy = |host: usize| {
        slots
            .iter()
            .filter(|s| s.host == host && s.state == SlotState::InUse)
            .count()
    };
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.state == SlotState::Free)
        .min_by_key(|(i, s)| (busy(s.host), *i))
        .map(|(i, _)| i)
}

impl SshProvisioner {
    fn new(ctx: PluginContext) -> Result<Self, PluginError> {
        let raw: config::RawConfig = ctx.parse_config()?;
        let settings = raw
            .settings()
            .map_err(|e| PluginError::config(format!("ssh: {e}")))?;
        let mut state = State::default();
        for (h, _) in settings.hosts.iter().enumerate() {
            for index in 0..settings.max_per_host {
                state.slots.push(Slot {
                    host: h,
                    index,
                    state: SlotState::Unusable,
                    holder: None,
                });
            }
        }
        Ok(SshProvisioner {
            settings: Arc::new(settings),
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                changed: Condvar::new(),
            }),
            ctx,
        })
    }

    /// Whether commands on `entry` go through sudo.
    fn sudo_for(&self, entry: &HostEntry) -> bool {
        self.settings.sudo.unwrap_or(entry.user != "root")
    }
}

impl ProvisionerImpl for SshProvisioner {
    type Remote = SshRemote;

    fn start(&self) -> Result<(), PluginError> {
        let settings = &self.settings;
        self.ctx.progress(
            format!("checking {} ssh host(s)", settings.hosts.len()),
            None,
        );
        let verdicts: Vec<Result<(), String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = settings
                .hosts
                .iter()
                .map(|entry| {
                    let sudo = self.sudo_for(entry);
                    scope.spawn(move || probe::probe(settings, entry, sudo))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("the check panicked".to_string()))
                })
                .collect()
        });
        let mut state = self.shared.lock();
        let mut usable = 0;
        for (h, verdict) in verdicts.into_iter().enumerate() {
            let shown = settings.hosts[h].display();
            match verdict {
                Ok(()) => {
                    usable += 1;
                    for slot in state.slots.iter_mut().filter(|s| s.host == h) {
                        slot.state = SlotState::Free;
                    }
                    tracing::info!("ssh: {shown} is ready");
                }
                Err(reason) => {
                    tracing::warn!("ssh: skipping {shown}: {reason}");
                    state.unreachable.push((shown, reason));
                }
            }
        }
        state.started = true;
        self.shared.changed.notify_all();
        if usable == 0 {
            let why: Vec<String> = state
                .unreachable
                .iter()
                .map(|(h, r)| format!("{h}: {r}"))
                .collect();
            return Err(PluginError::remote(format!(
                "ssh: no host is usable ({})",
                why.join("; ")
            )));
        }
        Ok(())
    }

    fn provision(&self, count: u32) {
        let mut state = self.shared.lock();
        state.pending = state.pending.saturating_add(count);
        state.run_goes_on();
        self.shared.changed.notify_all();
    }

    fn get_remote(&self, timeout: Duration) -> Result<Option<SshRemote>, PluginError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        let slot = loop {
            if state.stopped {
                return Err(PluginError::remote("ssh: provisioner is stopped"));
            }
            if state.started {
                if !state
                    .slots
                    .iter()
                    .any(|s| matches!(s.state, SlotState::Free | SlotState::InUse))
                {
                    // Nothing will ever come free again in this run.
                    if !state.warned_empty {
                        state.warned_empty = true;
                        tracing::warn!(
                            "ssh: no host left to hand out: {} slot(s) retired in this run, {} host(s) unreachable",
                            state.retired.len(),
                            state.unreachable.len()
                        );
                    }
                    return Err(PluginError::remote(format!(
                        "ssh: no host left ({} slot(s) retired after use in this run, {} host(s) unreachable)",
                        state.retired.len(),
                        state.unreachable.len()
                    )));
                }
                if state.pending > 0
                    && let Some(i) = least_busy_free_slot(&state.slots)
                {
                    break i;
                }
            }
            if self.ctx.is_cancelled() {
                return Ok(None);
            }
            let mut wait = Duration::from_millis(200);
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                wait = wait.min(left);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, wait)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        };
        state.pending -= 1;
        state.run_goes_on();
        let released = Arc::new(AtomicBool::new(false));
        let s = &mut state.slots[slot];
        s.state = SlotState::InUse;
        s.holder = Some(Arc::clone(&released));
        let entry = self.settings.hosts[s.host].clone();
        let name = slot_name(&entry, s.index, self.settings.max_per_host);
        tracing::debug!("ssh: handing out {name} ({})", entry.display());
        Ok(Some(SshRemote {
            name,
            sudo: self.sudo_for(&entry),
            entry,
            slot,
            settings: Arc::clone(&self.settings),
            shared: Arc::clone(&self.shared),
            released,
            used: AtomicBool::new(false),
        }))
    }

    fn clear(&self) {
        self.shared.lock().pending = 0;
    }

    fn max_remotes(&self) -> Option<u32> {
        let state = self.shared.lock();
        let n = if state.started {
            state
                .slots
                .iter()
                .filter(|s| s.state != SlotState::Unusable)
                .count()
        } else {
            state.slots.len()
        };
        u32::try_from(n).ok()
    }

    fn stop(&self) -> Result<(), PluginError> {
        let mut state = self.shared.lock();
        state.stopped = true;
        state.pending = 0;
        for slot in &mut state.slots {
            if let Some(flag) = slot.holder.take() {
                flag.store(true, Ordering::SeqCst);
            }
            if slot.state == SlotState::InUse {
                slot.state = SlotState::Retired;
            }
        }
        // Slots retired while the run went on: it had fewer systems than
        // it could have had.
        let mid_run: Vec<&str> = state
            .retired
            .iter()
            .filter(|(_, mid_run)| *mid_run)
            .map(|(n, _)| n.as_str())
            .collect();
        if !mid_run.is_empty() {
            tracing::warn!(
                "ssh: not used again in this run after a destructive test, a lost system or a rerun: {}",
                mid_run.join(", ")
            );
        }
        if !state.unreachable.is_empty() {
            let hosts: Vec<&str> = state.unreachable.iter().map(|(h, _)| h.as_str()).collect();
            tracing::warn!("ssh: unreachable, skipped: {}", hosts.join(", "));
        }
        self.shared.changed.notify_all();
        Ok(())
    }
}

/// One slot on an existing machine.
pub struct SshRemote {
    name: String,
    entry: HostEntry,
    sudo: bool,
    slot: usize,
    settings: Arc<Settings>,
    shared: Arc<Shared>,
    released: Arc<AtomicBool>,
    /// Whether the host asked how to reach it (and so may have run
    /// something on it).
    used: AtomicBool,
}

impl SshRemote {
    /// The host this slot is on.
    pub fn host(&self) -> &HostEntry {
        &self.entry
    }
}

/// The ssh target of `entry`, with the host-key options of `settings`.
pub fn target_for(settings: &Settings, entry: &HostEntry) -> SshTarget {
    SshTarget {
        host: RString::from(entry.host.as_str()),
        port: entry.port,
        user: RString::from(entry.user.as_str()),
        identity_file: match &settings.key {
            Some(k) => ROption::RSome(RString::from(k.to_string_lossy().as_ref())),
            None => ROption::RNone,
        },
        options: probe::ssh_options(settings)
            .into_iter()
            .map(RString::from)
            .collect::<RVec<_>>(),
    }
}

impl RemoteImpl for SshRemote {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn platform(&self) -> String {
        self.settings.platform.clone()
    }

    fn connection(&self) -> Result<Connection, PluginError> {
        if self.released.load(Ordering::SeqCst) {
            return Err(PluginError::remote(format!(
                "ssh: {} was released",
                self.name
            )));
        }
        self.used.store(true, Ordering::SeqCst);
        let target = target_for(&self.settings, &self.entry);
        Ok(if self.sudo {
            Connection::ssh_sudo(target)
        } else {
            Connection::ssh(target)
        })
    }

    fn alive(&self) -> Result<bool, PluginError> {
        Ok(!self.released.load(Ordering::SeqCst))
    }

    fn release(&self) -> Result<(), PluginError> {
        if self.released.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let mut state = self.shared.lock();
        let retire = self.used.load(Ordering::SeqCst);
        if let Some(slot) = state.slots.get_mut(self.slot) {
            // After `stop` the slot was already taken back.
            if slot.state == SlotState::InUse {
                slot.holder = None;
                slot.state = if retire {
                    SlotState::Retired
                } else {
                    SlotState::Free
                };
            }
        }
        if retire {
            tracing::info!(
                "ssh: {} ({}) retired for the rest of the run",
                self.name,
                self.entry.display()
            );
            let others_busy = state.pending > 0
                || state
                    .slots
                    .iter()
                    .enumerate()
                    .any(|(i, s)| i != self.slot && s.state == SlotState::InUse);
            state.retired.push((self.name.clone(), others_busy));
        }
        self.shared.changed.notify_all();
        Ok(())
    }
}

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new(
            "hosts",
            "list of strings, or a string",
            "",
            "Required. [user@]host[:port] entries: space-separated, a list, or @FILE.",
        ),
        OptionSpec::new(
            "user",
            "string",
            "root",
            "Login user of entries without user@.",
        ),
        OptionSpec::new("port", "integer", "22", "Port of entries without :port."),
        OptionSpec::new("key", "path", "ssh's default keys", "Private key file."),
        OptionSpec::new(
            "sudo",
            "bool",
            "when user is not root",
            "Run every command through sudo -n.",
        ),
        OptionSpec::new(
            "max_per_host",
            "integer",
            "1",
            "Systems handed out per host at once.",
        ),
        OptionSpec::new(
            "platform",
            "string",
            "ssh",
            "Platform name results are filed under.",
        ),
        OptionSpec::new(
            "connect_timeout",
            "seconds",
            "10",
            "Seconds ssh waits for a host.",
        ),
        OptionSpec::new(
            "host_key_check",
            "bool",
            "true",
            "Check host keys against known_hosts.",
        ),
        OptionSpec::new(
            "known_hosts",
            "path",
            "~/.ssh/known_hosts",
            "The known_hosts file to check against.",
        ),
    ]
};

export_plugin! {
    name: "ssh",
    version: env!("CARGO_PKG_VERSION"),
    description: "hands out existing machines over ssh (never destroys them; a used one is retired)",
    provisioner: SshProvisioner::new,
    options: OPTIONS,
}
