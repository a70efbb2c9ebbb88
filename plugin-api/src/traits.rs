//! The three object interfaces a plugin implements: provisioner, remote,
//! reporter.
//!
//! These are the ABI-level traits (`#[sabi_trait]`). Plugin authors do not
//! implement them directly: they implement the plain-Rust traits in
//! [`crate::sdk`], whose adapters implement these and catch panics.
//!
//! Every trait marks its last original method with
//! `#[sabi(last_prefix_field)]`; methods added later go after it, with a
//! default body, so that older plugins keep loading.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RString, RVec},
};

use crate::types::{Connection, PluginError, RunSummary, TestResult};

/// A source of systems (containers, machines, the local host).
///
/// Every method takes `&self` and may be called from any thread at any time
/// after construction; implementations synchronise internally.
#[sabi_trait]
pub trait Provisioner: Send + Sync {
    /// Start background work (reservations, pools). Called once, first.
    fn start(&self) -> RResult<(), PluginError>;

    /// Ask politely for `count` more systems. `u32::MAX` means as many as
    /// the provisioner can give. It may give fewer.
    fn provision(&self, count: u32);

    /// Hand out a ready system. Waits at most `timeout_ms` milliseconds
    /// (0: do not wait; `u64::MAX`: wait as long as it takes). `RNone`
    /// means none was ready in time.
    fn get_remote(&self, timeout_ms: u64) -> RResult<ROption<RemoteBox>, PluginError>;

    /// Forget requests made with `provision` that are not fulfilled yet.
    fn clear(&self);

    /// The most systems this provisioner hands out at once; 0 if unknown.
    fn max_remotes(&self) -> u32;

    /// Release every system it made, cancel reservations in flight and join
    /// its threads. Called once, last.
    #[sabi(last_prefix_field)]
    fn stop(&self) -> RResult<(), PluginError>;
}

/// A provisioner as the host holds it.
pub type ProvisionerBox = Provisioner_TO<'static, RBox<()>>;

/// One system handed out by a provisioner.
#[sabi_trait]
pub trait Remote: Send + Sync {
    /// A name unique within the run, e.g. `podman-3f2a`.
    fn name(&self) -> RString;

    /// The platform tests on it report, e.g. `debian-12`.
    fn platform(&self) -> RString;

    /// How to run commands on it.
    fn connection(&self) -> RResult<Connection, PluginError>;

    /// Whether the system is still usable (`false` after release, or when a
    /// container died).
    fn alive(&self) -> RResult<bool, PluginError>;

    /// Give the system back. Idempotent: a second call does nothing.
    #[sabi(last_prefix_field)]
    fn release(&self) -> RResult<(), PluginError>;
}

/// A remote as the host holds it.
pub type RemoteBox = Remote_TO<'static, RBox<()>>;

/// A consumer of results (JUnit file, HTML report, an upload).
///
/// The host calls it from one thread at a time.
#[sabi_trait]
pub trait Reporter: Send {
    /// One result has landed on disk.
    fn on_result(&mut self, result: &TestResult) -> RResult<(), PluginError>;

    /// The run is over. Returns the paths of what it wrote, if anything.
    #[sabi(last_prefix_field)]
    fn finish(&mut self, summary: &RunSummary) -> RResult<RVec<RString>, PluginError>;
}

/// A reporter as the host holds it.
pub type ReporterBox = Reporter_TO<'static, RBox<()>>;
