//! The `local` provisioner: hands out the machine atex runs on.
//!
//! Each remote is a slot on the local host; commands run as local processes
//! of the current user. It is the default provisioner of `atex run`, the
//! reference the conformance suite is developed against, and the template
//! a third-party plugin author can copy: one config struct, one provisioner,
//! one remote, and the `export_plugin!` call at the bottom.
//!
//! Options:
//!
//! | option     | default      | meaning                                   |
//! |------------|--------------|-------------------------------------------|
//! | `max`      | no limit     | slots handed out at once                  |
//! | `platform` | `local`      | platform name results are filed under     |

#![deny(clippy::unwrap_used)]

use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use atex_plugin_api::{
    Connection, PluginError, export_plugin,
    sdk::{PluginContext, ProvisionerImpl, RemoteImpl},
};
use serde::Deserialize;

/// Options of the local provisioner.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    max: Option<u32>,
    platform: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max: None,
            platform: "local".to_string(),
        }
    }
}

#[derive(Default)]
struct State {
    /// Requested with `provision` and not handed out yet.
    pending: u32,
    /// Handed out and not released.
    active: u32,
    /// Serial number of the next remote.
    next_id: u64,
    stopped: bool,
    /// Every remote handed out, so `stop` can release them.
    handed_out: Vec<Arc<AtomicBool>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding
        // it; the counters are still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The local provisioner.
pub struct LocalProvisioner {
    config: Config,
    shared: Arc<Shared>,
    ctx: PluginContext,
}

impl LocalProvisioner {
    fn new(ctx: PluginContext) -> Result<Self, PluginError> {
        let config: Config = ctx.parse_config()?;
        if config.max == Some(0) {
            return Err(PluginError::config("local: `max` must be at least 1"));
        }
        Ok(LocalProvisioner {
            config,
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                changed: Condvar::new(),
            }),
            ctx,
        })
    }

    fn can_hand_out(&self, state: &State) -> bool {
        state.pending > 0 && self.config.max.is_none_or(|max| state.active < max)
    }
}

impl ProvisionerImpl for LocalProvisioner {
    type Remote = LocalRemote;

    fn provision(&self, count: u32) {
        let mut state = self.shared.lock();
        state.pending = state.pending.saturating_add(count);
        self.shared.changed.notify_all();
    }

    fn get_remote(&self, timeout: Duration) -> Result<Option<LocalRemote>, PluginError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        loop {
            if state.stopped {
                return Err(PluginError::remote("local: provisioner is stopped"));
            }
            if self.can_hand_out(&state) {
                break;
            }
            if self.ctx.is_cancelled() {
                return Ok(None);
            }
            // Wake up now and then to notice a cancel from the host.
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
        }
        state.pending -= 1;
        state.active += 1;
        state.next_id += 1;
        let released = Arc::new(AtomicBool::new(false));
        state.handed_out.push(Arc::clone(&released));
        atex_plugin_api::tracing::debug!(id = state.next_id, "handing out a local slot");
        Ok(Some(LocalRemote {
            name: format!("local-{}", state.next_id),
            platform: self.config.platform.clone(),
            released,
            shared: Arc::clone(&self.shared),
        }))
    }

    fn clear(&self) {
        self.shared.lock().pending = 0;
    }

    fn max_remotes(&self) -> Option<u32> {
        self.config.max
    }

    fn stop(&self) -> Result<(), PluginError> {
        let mut state = self.shared.lock();
        state.stopped = true;
        state.pending = 0;
        let handed_out = std::mem::take(&mut state.handed_out);
        for flag in handed_out {
            if !flag.swap(true, Ordering::SeqCst) {
                state.active = state.active.saturating_sub(1);
            }
        }
        self.shared.changed.notify_all();
        Ok(())
    }
}

/// A slot on the local host.
pub struct LocalRemote {
    name: String,
    platform: String,
    released: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl RemoteImpl for LocalRemote {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn platform(&self) -> String {
        self.platform.clone()
    }

    fn connection(&self) -> Result<Connection, PluginError> {
        Ok(Connection::local())
    }

    fn alive(&self) -> Result<bool, PluginError> {
        Ok(!self.released.load(Ordering::SeqCst))
    }

    fn release(&self) -> Result<(), PluginError> {
        if !self.released.swap(true, Ordering::SeqCst) {
            let mut state = self.shared.lock();
            state.active = state.active.saturating_sub(1);
            state
                .handed_out
                .retain(|flag| !Arc::ptr_eq(flag, &self.released));
            self.shared.changed.notify_all();
        }
        Ok(())
    }
}

/// The options above, for `atex plugin info` (keep the two in step: a
/// workspace test compares them).
const OPTIONS: &[atex_plugin_api::sdk::OptionSpec] = {
    use atex_plugin_api::sdk::OptionSpec;
    &[
        OptionSpec::new("max", "integer", "no limit", "Slots handed out at once."),
        OptionSpec::new(
            "platform",
            "string",
            "local",
            "Platform name results are filed under.",
        ),
    ]
};

export_plugin! {
    name: "local",
    version: env!("CARGO_PKG_VERSION"),
    description: "hands out the local host (commands run as local processes)",
    provisioner: LocalProvisioner::new,
    options: OPTIONS,
}
