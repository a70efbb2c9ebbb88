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
    describe::{CommandCall, CommandOutput, PluginDetails},
    host::HostContext,
    traits::{ProvisionerBox, ReporterBox},
    types::{PluginError, PluginInfo},
};

/// The table of entry points a plugin exports (an abi_stable prefix type).
///
/// Fields after `new_reporter` are added in later patch releases. A plugin
/// built against an older release lacks them: their accessors return
/// `None` for it, and the host treats the entry point as absent. A release
/// that appends fields keeps the layout of the release before it as a
/// module here (see [`v0_1_0`]), so that the host can check older plugins
/// against the layout they were built with.
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

    /// The plugin's options and subcommands (since 0.1.1).
    #[sabi(missing_field(option))]
    pub describe: extern "C" fn() -> PluginDetails,

    /// Runs one of the subcommands `describe` lists (since 0.1.1).
    #[sabi(missing_field(option))]
    pub run_command: extern "C" fn(CommandCall) -> RResult<CommandOutput, PluginError>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "atex_plugin";
    const NAME: &'static str = "atex plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The root module as release 0.1.0 laid it out, for loading plugins built
/// against it.
///
/// abi_stable's layout check refuses a library whose prefix type has fewer
/// fields than the host's, even though the fields after
/// `#[sabi(last_prefix_field)]` are optional by design. The host therefore
/// checks an older plugin against the layout of the release it was built
/// with, and then reads the module through [`PluginMod_Ref`] by
/// [`upgrade_v0_1_0`]: the library's own metadata says which fields it has,
/// so the newer entry points read as `None`.
pub mod v0_1_0 {
    #![allow(missing_docs)]

    use abi_stable::{
        StableAbi, declare_root_module_statics,
        library::RootModule,
        sabi_types::VersionStrings,
        std_types::{ROption, RResult},
    };

    use crate::{
        host::HostContext,
        traits::{ProvisionerBox, ReporterBox},
        types::{PluginError, PluginInfo},
    };

    /// Release 0.1.0's `PluginMod`, field for field.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        pub info: extern "C" fn() -> PluginInfo,
        pub new_provisioner:
            ROption<extern "C" fn(HostContext) -> RResult<ProvisionerBox, PluginError>>,
        #[sabi(last_prefix_field)]
        pub new_reporter: ROption<extern "C" fn(HostContext) -> RResult<ReporterBox, PluginError>>,
    }

    impl RootModule for PluginMod_Ref {
        declare_root_module_statics! {PluginMod_Ref}
        const BASE_NAME: &'static str = "atex_plugin";
        const NAME: &'static str = "atex plugin";
        const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.1.0");
    }
}

/// Reads a module checked against the 0.1.0 layout through the current
/// [`PluginMod_Ref`]; the entry points 0.1.0 did not have read as `None`.
pub fn upgrade_v0_1_0(module: v0_1_0::PluginMod_Ref) -> PluginMod_Ref {
    // SAFETY: the layout check passed for v0_1_0::PluginMod, whose fields
    // are the first fields of PluginMod, in the same order and with the
    // same types. Accessors of the later fields consult the library's own
    // field accessibility (stored beside the fields), which marks them
    // absent, so they are never read.
    PluginMod_Ref(unsafe { module.0.cast() })
}
