//! What a plugin says about its options and commands (since 0.1.1).
//!
//! These types cross the boundary through the two entry points added to
//! [`crate::PluginMod`] in 0.1.1, `describe` and `run_command`. A plugin
//! built against 0.1.0 has neither; the host then treats it as a plugin
//! that describes nothing and offers no commands.

use abi_stable::{
    StableAbi,
    std_types::{RString, RVec},
};

use crate::host::HostContext;

/// One configuration option of a plugin.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct OptionInfo {
    /// The key after `-p NAME:` or `-r NAME:`, e.g. `image`.
    pub name: RString,
    /// Which side of the plugin takes it: `provisioner`, `reporter`, or
    /// empty when the plugin is only one kind.
    pub kind: RString,
    /// The type in words, e.g. `string`, `integer`, `bool`, `list of strings`.
    pub value_type: RString,
    /// The default, as a user would write it; empty when there is none.
    pub default: RString,
    /// What it does, in one or a few sentences.
    pub description: RString,
}

/// One subcommand a plugin offers (`atex PLUGIN COMMAND [ARGS]`).
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    /// The word after the plugin name, e.g. `requests`.
    pub name: RString,
    /// One line about it.
    pub summary: RString,
    /// Its full help: usage line, arguments, what it prints.
    pub help: RString,
}

/// Everything [`crate::PluginMod`]'s `describe` entry point returns.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default)]
pub struct PluginDetails {
    /// The plugin's configuration options.
    pub options: RVec<OptionInfo>,
    /// Its subcommands.
    pub commands: RVec<CommandInfo>,
}

/// A subcommand call from the host.
#[repr(C)]
#[derive(StableAbi, Clone)]
pub struct CommandCall {
    /// Log sink and cancel flag (Ctrl-C); `config` is empty, `run_id` names
    /// this command invocation.
    pub context: HostContext,
    /// The subcommand, one of the names in [`PluginDetails::commands`].
    pub command: RString,
    /// The arguments after it, as typed.
    pub args: RVec<RString>,
}

/// What a subcommand produced. The host prints `stdout` and `stderr` and
/// exits with `exit_code`; a plugin never prints by itself.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Text for standard output.
    pub stdout: RString,
    /// Text for standard error (warnings, hints).
    pub stderr: RString,
    /// The exit code of `atex` for this command (0 success, 1 a negative
    /// answer, 2 bad usage).
    pub exit_code: i32,
}
