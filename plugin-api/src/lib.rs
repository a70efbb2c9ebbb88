//! The stable interface between the atex host and its plugins.
//!
//! A plugin is a `cdylib` that provides a **provisioner** (it hands out
//! systems to run tests on), a **reporter** (it receives every result as it
//! lands), or both. The host loads plugins at run time, so they must agree
//! on the memory layout of everything that crosses between them. This crate
//! fixes that layout with [`abi_stable`]: every type here is checked when a
//! plugin is loaded, and a plugin built against an incompatible version of
//! this crate is refused with a one-line message instead of crashing.
//!
//! # Writing a plugin
//!
//! Plugin authors write plain Rust. Implement [`sdk::ProvisionerImpl`]
//! (and [`sdk::RemoteImpl`] for the systems it hands out) or
//! [`sdk::ReporterImpl`], then export them with [`export_plugin!`]:
//!
//! ```ignore
//! use atex_plugin_api::{export_plugin, sdk::*, PluginError};
//!
//! struct MyReporter { /* ... */ }
//! impl ReporterImpl for MyReporter { /* on_result, finish */ }
//!
//! fn new_reporter(ctx: PluginContext) -> Result<MyReporter, PluginError> {
//!     let config: MyConfig = ctx.parse_config()?;
//!     Ok(MyReporter { /* ... */ })
//! }
//!
//! export_plugin! {
//!     name: "my-reporter",
//!     version: env!("CARGO_PKG_VERSION"),
//!     description: "what it does",
//!     reporter: new_reporter,
//! }
//! ```
//!
//! A reporter receives plain views ([`view::ResultView`],
//! [`view::SummaryView`]) and may build on [`report`], the toolkit atex's
//! own JUnit and HTML reporters are made of. The `testkit` module (cargo
//! feature `testkit`) runs a reporter through a synthetic run in its tests.
//!
//! The macro exports the root module, wraps every call in `catch_unwind`
//! (a panic becomes a [`PluginError`] with kind [`ErrorKind::PANIC`] in the
//! host), and forwards the plugin's `tracing` events to the host's log.
//!
//! # Compatibility rules
//!
//! The package version of this crate is the ABI version. Within one
//! `0.y` series only additive changes are made, appended after the fields
//! marked `#[sabi(last_prefix_field)]`. A host refuses a plugin built with a
//! different `0.y`. It loads one built with an older patch release of the
//! same series, and treats the entry points added since as absent (0.1.0
//! plugins have no `describe` and no `run_command`), and one built with a
//! newer patch release, whose additions it does not see.

#![allow(non_local_definitions)] // emitted by #[sabi_trait] on current rustc
#![allow(clippy::unnecessary_cast)] // emitted by #[sabi_trait]
#![warn(missing_docs)]
#![deny(clippy::unwrap_used)]

mod describe;
mod host;
pub mod packages;
#[cfg(feature = "report")]
pub mod report;
mod root;
pub mod sdk;
mod status;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
mod traits;
mod types;
pub mod view;

pub use abi_stable;
pub use describe::{CommandCall, CommandInfo, CommandOutput, OptionInfo, PluginDetails};
pub use host::{HostContext, HostServices, HostServices_TO, HostServicesArc};
pub use root::{PluginMod, PluginMod_Ref, upgrade_v0_1_0, v0_1_0};
pub use status::Status;
/// The `tracing` this crate forwards to the host; plugins may log through it.
pub use tracing;
pub use traits::{
    Provisioner, Provisioner_TO, ProvisionerBox, Remote, Remote_TO, RemoteBox, Reporter,
    Reporter_TO, ReporterBox,
};
pub use types::{
    Connection, ConnectionKind, ErrorKind, LogLevel, PluginError, PluginInfo, PluginKinds,
    ProgressEvent, RunSummary, SshTarget, StatusCount, TestResult,
};

/// The version of this interface, as `major.minor.patch`.
///
/// It is also exported by every plugin as a plain C symbol (see
/// [`PREFLIGHT_SYMBOL`]) so that the host can tell what a library was built
/// against before it asks abi_stable to check every type.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The same as [`API_VERSION`], NUL-terminated, for the pre-flight symbol.
#[doc(hidden)]
pub const API_VERSION_CSTR: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
) {
    Ok(s) => s,
    Err(_) => panic!("version contains a NUL byte"),
};

/// Name of the plain `extern "C" fn() -> *const c_char` every plugin exports.
///
/// It returns the NUL-terminated [`API_VERSION`] the plugin was built with.
/// Its presence marks a shared library as an atex plugin.
pub const PREFLIGHT_SYMBOL: &str = "atex_plugin_api_version";
