//! The root module every plugin exports.

#![allow(non_camel_case_types)] // `PluginMod_Ref` is the name abi_stable generates

use abi_stable::{
    StableAbi, declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{ROption, RResult},
};

use crate::{
    host::HostContext,
    traits::{ProvisionerBox, ReporterBox},
    types::{PluginError, PluginInfo},
};

/// The table of entry points a plugin exports (an abi_stable prefix type).
///
/// Fields after `new_reporter` may be added in later patch releases; the
/// host then sees them as optional.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// Name, version, description and kinds of the plugin.
    pub info: extern "C" fn() -> PluginInfo,

    /// Constructs a provisioner, if the plugin provides one.
    pub new_provisioner:
        ROption<extern "C" fn(HostContext) -> RResult<ProvisionerBox, PluginError>>,

    /// Constructs a reporter, if the plugin provides one.
    #[sabi(last_prefix_field)]
    pub new_reporter: ROption<extern "C" fn(HostContext) -> RResult<ReporterBox, PluginError>>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "atex_plugin";
    const NAME: &'static str = "atex plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
