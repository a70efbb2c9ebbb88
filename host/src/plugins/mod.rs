//! Plugins: finding them, checking them, loading them, and adapting what
//! they construct to the host's own traits in [`crate::backend`].
//!
//! - [`PluginRegistry`], [`search_path`], [`load_plugin`]: the search
//!   path, the pre-flight and ABI checks, and a registry of what was found
//!   and what was refused;
//! - [`PluginHost`] and the `Foreign*` adapters: the host services given
//!   to plugins and the adapters that hide the ABI types from the rest of
//!   the host;
//! - [`conformance`]: the checks behind `atex plugin check`;
//! - [`PluginSpec`]: `NAME[:K=V,...]` selections from the command line.

mod adapter;
pub mod conformance;
mod load;
mod spec;

pub use adapter::{CommandResult, ForeignProvisioner, ForeignRemote, ForeignReporter, PluginHost};
pub use load::{
    CommandDoc, LoadedPlugin, OptionDoc, PluginDescription, PluginDetails, PluginLoadError,
    PluginRegistry, load_plugin, search_path,
};
pub use spec::{PluginSpec, PluginSpecError};
