//! What the host hands to every plugin constructor.

use abi_stable::{
    StableAbi, sabi_trait,
    std_types::{RArc, RStr, RString},
};

use crate::types::{LogLevel, ProgressEvent};

/// Services the host offers to plugins. Cheap to clone.
#[sabi_trait]
pub trait HostServices: Send + Sync + Clone {
    /// Write a line to the host's log.
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);

    /// Whether the host wants everything to stop (Ctrl-C). Long waits in a
    /// plugin should check it.
    fn is_cancelled(&self) -> bool;

    /// Report progress a user may want to see.
    #[sabi(last_prefix_field)]
    fn progress(&self, event: &ProgressEvent);
}

/// The host services as passed to plugins.
pub type HostServicesArc = HostServices_TO<'static, RArc<()>>;

/// Everything a plugin constructor receives.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct HostContext {
    /// Log sink, cancel flag and progress events.
    pub services: HostServicesArc,
    /// The plugin's configuration as YAML (JSON is valid YAML). Empty when
    /// the user gave none.
    pub config: RString,
    /// The name the plugin was asked for by.
    pub plugin_name: RString,
    /// Identifier of the run, e.g. for labels on what the plugin creates.
    pub run_id: RString,
    /// A directory the plugin may write to: the run's results directory.
    /// Reporters put their default output here.
    pub work_dir: RString,
}
