//! Helpers for plugin authors: plain-Rust traits, adapters, panic guards,
//! log forwarding, configuration parsing, and the [`export_plugin!`] macro.
//!
//! Implement [`ProvisionerImpl`] + [`RemoteImpl`], or [`ReporterImpl`], with
//! ordinary Rust types. The adapters here turn them into the ABI-level
//! objects the host loads and make sure a panic inside them reaches the host
//! as an error ([`ErrorKind::PANIC`]) instead of ending the process.
//!
//! [`export_plugin!`]: crate::export_plugin

use std::{
    any::Any,
    fmt::Write as _,
    panic::{AssertUnwindSafe, catch_unwind},
    path::PathBuf,
    sync::{Once, RwLock},
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
};
use serde::de::DeserializeOwned;
use tracing::{Subscriber, field::Visit};
use tracing_subscriber::{Layer, layer::SubscriberExt};

use crate::{
    describe::{CommandCall, CommandInfo, CommandOutput, OptionInfo, PluginDetails},
    host::{HostContext, HostServicesArc},
    traits::{
        Provisioner, Provisioner_TO, ProvisionerBox, Remote, Remote_TO, RemoteBox, Reporter,
        Reporter_TO, ReporterBox,
    },
    types::{Connection, ErrorKind, LogLevel, PluginError, ProgressEvent, RunSummary, TestResult},
};
pub use crate::{
    status::Status,
    view::{ResultView, SshTargetView, SummaryView},
};

/// A provisioner written in plain Rust.
///
/// All methods take `&self` and may be called from several threads at once.
pub trait ProvisionerImpl: Send + Sync + 'static {
    /// The systems it hands out.
    type Remote: RemoteImpl;

    /// Start background work. Called once, before anything else.
    fn start(&self) -> Result<(), PluginError> {
        Ok(())
    }

    /// Ask for `count` more systems (`u32::MAX`: as many as possible).
    fn provision(&self, count: u32);

    /// Hand out a ready system, waiting at most `timeout`
    /// (`Duration::ZERO`: do not wait, `Duration::MAX`: no limit).
    ///
    /// An error answers one request: the system asked for will not come,
    /// and the host asks again (within its failure budget) if it still
    /// needs one. Do not keep the request open as well.
    fn get_remote(&self, timeout: Duration) -> Result<Option<Self::Remote>, PluginError>;

    /// Forget unfulfilled `provision` requests.
    fn clear(&self);

    /// The most systems handed out at once, when known.
    fn max_remotes(&self) -> Option<u32> {
        None
    }

    /// Release everything, cancel what is in flight, join threads.
    fn stop(&self) -> Result<(), PluginError>;
}

/// A system handed out by a [`ProvisionerImpl`].
pub trait RemoteImpl: Send + Sync + 'static {
    /// Unique name within the run.
    fn name(&self) -> String;
    /// Platform name results are filed under.
    fn platform(&self) -> String;
    /// How the host runs commands on it.
    fn connection(&self) -> Result<Connection, PluginError>;
    /// Whether it is still usable; must be `false` once released.
    fn alive(&self) -> Result<bool, PluginError>;
    /// Give it back; a second call must do nothing and succeed.
    fn release(&self) -> Result<(), PluginError>;
}

/// A reporter written in plain Rust. Called from one thread at a time.
///
/// It receives plain views of the ABI types; [`crate::report`] has the
/// pieces most reporters need (grouping attempts, log tails, escaping,
/// atomic writes).
pub trait ReporterImpl: Send + 'static {
    /// One result has landed.
    fn on_result(&mut self, result: &ResultView) -> Result<(), PluginError>;
    /// The run is over; return the paths written.
    fn finish(&mut self, summary: &SummaryView) -> Result<Vec<PathBuf>, PluginError>;
}

/// What a plugin constructor receives, in plain Rust types.
#[derive(Clone)]
pub struct PluginContext {
    services: HostServicesArc,
    config: String,
    plugin_name: String,
    run_id: String,
    work_dir: PathBuf,
}

impl PluginContext {
    /// Converts the ABI-level context.
    pub fn new(ctx: HostContext) -> Self {
        PluginContext {
            services: ctx.services,
            config: ctx.config.into_string(),
            plugin_name: ctx.plugin_name.into_string(),
            run_id: ctx.run_id.into_string(),
            work_dir: PathBuf::from(ctx.work_dir.into_string()),
        }
    }

    /// Parses the plugin's configuration (YAML or JSON) into `T`.
    ///
    /// An empty configuration parses as an empty mapping, so `T`'s
    /// `#[serde(default)]` values apply. Errors name the plugin and say
    /// what is wrong, e.g. an unknown option.
    pub fn parse_config<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        let text = if self.config.trim().is_empty() {
            "{}"
        } else {
            self.config.as_str()
        };
        serde_yaml::from_str(text).map_err(|e| PluginError::config(e.to_string()))
    }

    /// The raw configuration text.
    pub fn config_text(&self) -> &str {
        &self.config
    }
    /// The name the plugin was loaded as.
    pub fn plugin_name(&self) -> &str {
        &self.plugin_name
    }
    /// The run's identifier.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
    /// A directory the plugin may write to (the results directory).
    pub fn work_dir(&self) -> &std::path::Path {
        &self.work_dir
    }
    /// Whether the host asked to stop everything.
    pub fn is_cancelled(&self) -> bool {
        self.services.is_cancelled()
    }
    /// Sends a progress message to the host.
    pub fn progress(&self, message: impl Into<String>, percent: Option<u8>) {
        self.services.progress(&ProgressEvent {
            message: RString::from(message.into()),
            percent: percent.into(),
        });
    }
    /// The host services, e.g. to hand to threads the plugin starts.
    pub fn services(&self) -> &HostServicesArc {
        &self.services
    }
}

/// Runs `f`, turning a panic into a [`PluginError`] of kind
/// [`ErrorKind::PANIC`].
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e),
        Err(payload) => RResult::RErr(PluginError::new(ErrorKind::PANIC, panic_text(&*payload))),
    }
}

/// Runs `f` where no error can be returned; a panic is logged and `fallback`
/// returned instead.
fn guard_or<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            forward(LogLevel::ERROR, "atex_plugin", &panic_text(&*payload));
            fallback
        }
    }
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    let what = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_string()
    };
    format!("plugin panicked: {what}")
}

fn millis_to_duration(ms: u64) -> Duration {
    if ms == u64::MAX {
        Duration::MAX
    } else {
        Duration::from_millis(ms)
    }
}

/// Adapts a [`ProvisionerImpl`] to the ABI-level [`Provisioner`].
pub struct ProvisionerAdapter<P>(pub P);

impl<P: ProvisionerImpl> Provisioner for ProvisionerAdapter<P> {
    fn start(&self) -> RResult<(), PluginError> {
        guard(|| self.0.start())
    }
    fn provision(&self, count: u32) {
        guard_or((), || self.0.provision(count))
    }
    fn get_remote(&self, timeout_ms: u64) -> RResult<ROption<RemoteBox>, PluginError> {
        guard(|| {
            let remote = self.0.get_remote(millis_to_duration(timeout_ms))?;
            Ok(remote.map(remote_box).into())
        })
    }
    fn clear(&self) {
        guard_or((), || self.0.clear())
    }
    fn max_remotes(&self) -> u32 {
        guard_or(0, || self.0.max_remotes().unwrap_or(0))
    }
    fn stop(&self) -> RResult<(), PluginError> {
        guard(|| self.0.stop())
    }
}

/// Boxes a [`RemoteImpl`] as the ABI-level [`RemoteBox`].
pub fn remote_box<R: RemoteImpl>(remote: R) -> RemoteBox {
    Remote_TO::from_value(RemoteAdapter(remote), TD_Opaque)
}

/// Adapts a [`RemoteImpl`] to the ABI-level [`Remote`].
pub struct RemoteAdapter<R>(pub R);

impl<R: RemoteImpl> Remote for RemoteAdapter<R> {
    fn name(&self) -> RString {
        guard_or(RString::from("<panicked>"), || self.0.name().into())
    }
    fn platform(&self) -> RString {
        guard_or(RString::from("<panicked>"), || self.0.platform().into())
    }
    fn connection(&self) -> RResult<Connection, PluginError> {
        guard(|| self.0.connection())
    }
    fn alive(&self) -> RResult<bool, PluginError> {
        guard(|| self.0.alive())
    }
    fn release(&self) -> RResult<(), PluginError> {
        guard(|| self.0.release())
    }
}

/// Adapts a [`ReporterImpl`] to the ABI-level [`Reporter`].
pub struct ReporterAdapter<R>(pub R);

impl<R: ReporterImpl> Reporter for ReporterAdapter<R> {
    fn on_result(&mut self, result: &TestResult) -> RResult<(), PluginError> {
        guard(|| self.0.on_result(&ResultView::from(result)))
    }
    fn finish(&mut self, summary: &RunSummary) -> RResult<RVec<RString>, PluginError> {
        guard(|| {
            let paths = self.0.finish(&SummaryView::from(summary))?;
            Ok(paths
                .into_iter()
                .map(|p| RString::from(p.to_string_lossy().into_owned()))
                .collect())
        })
    }
}

/// Runs a provisioner constructor for the host: installs log forwarding,
/// parses nothing itself, catches panics. Used by [`export_plugin!`].
///
/// [`export_plugin!`]: crate::export_plugin
pub fn construct_provisioner<P: ProvisionerImpl>(
    ctx: HostContext,
    make: impl FnOnce(PluginContext) -> Result<P, PluginError>,
) -> RResult<ProvisionerBox, PluginError> {
    install_log_forwarding(&ctx.services);
    guard(|| make(PluginContext::new(ctx)))
        .map(|p| Provisioner_TO::from_value(ProvisionerAdapter(p), TD_Opaque))
}

/// Runs a reporter constructor for the host; see [`construct_provisioner`].
pub fn construct_reporter<R: ReporterImpl>(
    ctx: HostContext,
    make: impl FnOnce(PluginContext) -> Result<R, PluginError>,
) -> RResult<ReporterBox, PluginError> {
    install_log_forwarding(&ctx.services);
    guard(|| make(PluginContext::new(ctx)))
        .map(|r| Reporter_TO::from_value(ReporterAdapter(r), TD_Opaque))
}

/// One option of a plugin, for `atex plugin info` (plain data, usually a
/// `const` table next to the plugin's configuration struct).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The key, e.g. `image`.
    pub name: &'static str,
    /// `provisioner` or `reporter` for a plugin of both kinds, else empty.
    pub kind: &'static str,
    /// The type in words: `string`, `integer`, `bool`, `duration`, ...
    pub value_type: &'static str,
    /// The default as a user writes it; empty when there is none.
    pub default: &'static str,
    /// What it does.
    pub description: &'static str,
}

impl OptionSpec {
    /// An option of type `value_type` with default `default` (may be empty).
    pub const fn new(
        name: &'static str,
        value_type: &'static str,
        default: &'static str,
        description: &'static str,
    ) -> Self {
        OptionSpec {
            name,
            kind: "",
            value_type,
            default,
            description,
        }
    }
    /// The same option, taken by the `kind` side of a plugin of two kinds.
    pub const fn of(self, kind: &'static str) -> Self {
        OptionSpec { kind, ..self }
    }
}

/// One subcommand of a plugin (`atex PLUGIN NAME [ARGS]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The word after the plugin name.
    pub name: &'static str,
    /// One line about it.
    pub summary: &'static str,
    /// Full help: a usage line first, then arguments and what it prints.
    pub help: &'static str,
}

/// What a plugin's subcommand handler receives and returns.
///
/// A handler is `fn(&CommandContext) -> Result<CommandOutput, PluginError>`;
/// an `Err` is printed by the host as `atex: PLUGIN COMMAND: message` with
/// exit code 2.
pub struct CommandContext {
    /// Log sink and cancel flag.
    pub plugin: PluginContext,
    /// The subcommand, one of the names the plugin lists.
    pub command: String,
    /// The arguments after it.
    pub args: Vec<String>,
}

/// A plugin's subcommand handler (`run_command:` in
/// [`export_plugin!`](crate::export_plugin)).
pub type CommandHandler = fn(&CommandContext) -> Result<CommandOutput, PluginError>;

impl CommandOutput {
    /// Success, with `text` on standard output.
    pub fn text(text: impl Into<String>) -> Self {
        CommandOutput {
            stdout: RString::from(text.into()),
            stderr: RString::new(),
            exit_code: 0,
        }
    }
    /// The same output, with exit code `code`.
    #[must_use]
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = code;
        self
    }
    /// The same output, with `text` on standard error.
    #[must_use]
    pub fn with_stderr(mut self, text: impl Into<String>) -> Self {
        self.stderr = RString::from(text.into());
        self
    }
}

/// Builds what the `describe` entry point returns. Used by
/// [`export_plugin!`](crate::export_plugin).
pub fn details(options: &[OptionSpec], commands: &[CommandSpec]) -> PluginDetails {
    PluginDetails {
        options: options
            .iter()
            .map(|o| OptionInfo {
                name: o.name.into(),
                kind: o.kind.into(),
                value_type: o.value_type.into(),
                default: o.default.into(),
                description: o.description.into(),
            })
            .collect(),
        commands: commands
            .iter()
            .map(|c| CommandInfo {
                name: c.name.into(),
                summary: c.summary.into(),
                help: c.help.into(),
            })
            .collect(),
    }
}

/// Runs a subcommand for the host: log forwarding, the `--help` of each
/// listed command, unknown commands, panics. Used by
/// [`export_plugin!`](crate::export_plugin).
pub fn run_command(
    call: CommandCall,
    commands: &[CommandSpec],
    handler: Option<CommandHandler>,
) -> RResult<CommandOutput, PluginError> {
    install_log_forwarding(&call.context.services);
    guard(|| {
        let name = call.command.as_str();
        let Some(spec) = commands.iter().find(|c| c.name == name) else {
            return Err(PluginError::new(
                ErrorKind::UNSUPPORTED,
                format!("no command `{name}`"),
            ));
        };
        let args: Vec<String> = call.args.iter().map(|a| a.to_string()).collect();
        if args.iter().any(|a| a == "--help" || a == "-h") {
            return Ok(CommandOutput::text(format!("{}\n", spec.help.trim_end())));
        }
        let Some(handler) = handler else {
            return Err(PluginError::new(
                ErrorKind::UNSUPPORTED,
                format!("command `{name}` has no handler"),
            ));
        };
        handler(&CommandContext {
            plugin: PluginContext::new(call.context),
            command: call.command.into_string(),
            args,
        })
    })
}

// Each plugin links its own copy of `tracing`, with its own global
// dispatcher: without forwarding, a plugin's log events would vanish.
static HOST: RwLock<Option<HostServicesArc>> = RwLock::new(None);

fn forward(level: LogLevel, target: &str, message: &str) {
    if let Ok(guard) = HOST.read()
        && let Some(host) = guard.as_ref()
    {
        host.log(level, RStr::from(target), RStr::from(message));
    }
}

/// Sends this plugin's `tracing` events (and panic messages) to the host.
///
/// Called by the constructors; safe to call more than once.
pub fn install_log_forwarding(services: &HostServicesArc) {
    if let Ok(mut slot) = HOST.write() {
        *slot = Some(services.clone());
    }
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(HostLayer);
        // Fails only if the plugin set its own subscriber first; keep theirs.
        let _ = tracing::subscriber::set_global_default(subscriber);
        // Panics are caught and reported as errors; print them through the
        // host's log instead of straight onto the user's terminal.
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()));
            forward(
                LogLevel::DEBUG,
                "atex_plugin::panic",
                &format!("panic{}", location.unwrap_or_default()),
            );
        }));
    });
}

struct HostLayer;

impl<S: Subscriber> Layer<S> for HostLayer {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => LogLevel::ERROR,
            tracing::Level::WARN => LogLevel::WARN,
            tracing::Level::INFO => LogLevel::INFO,
            tracing::Level::DEBUG => LogLevel::DEBUG,
            tracing::Level::TRACE => LogLevel::TRACE,
        };
        let mut text = FieldText(String::new());
        event.record(&mut text);
        forward(level, meta.target(), &text.0);
    }
}

struct FieldText(String);

impl Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}

/// Exports a plugin: the root module abi_stable loads, and the pre-flight
/// symbol carrying the API version.
///
/// `provisioner` and `reporter` name constructor functions of the form
/// `fn(PluginContext) -> Result<T, PluginError>` where `T` implements
/// [`ProvisionerImpl`] or [`ReporterImpl`]; give either or both.
///
/// Optionally, `options` is a `&[OptionSpec]` shown by `atex plugin info`,
/// and `commands` (a `&[CommandSpec]`) with `run_command` (a
/// `fn(&CommandContext) -> Result<CommandOutput, PluginError>`) are the
/// plugin's subcommands, `atex NAME COMMAND [ARGS]`; `COMMAND --help` prints
/// the command's `help` without calling the handler.
///
/// ```ignore
/// atex_plugin_api::export_plugin! {
///     name: "local",
///     version: env!("CARGO_PKG_VERSION"),
///     description: "hands out the local host",
///     provisioner: LocalProvisioner::new,
///     options: &[OptionSpec::new("max", "integer", "no limit", "slots handed out at once")],
///     commands: &[CommandSpec { name: "hello", summary: "say hello", help: "usage: atex local hello" }],
///     run_command: |_ctx: &CommandContext| Ok(CommandOutput::text("hello\n")),
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        description: $description:expr
        $(, provisioner: $provisioner:expr)?
        $(, reporter: $reporter:expr)?
        $(, options: $options:expr)?
        $(, commands: $commands:expr, run_command: $run_command:expr)?
        $(,)?
    ) => {
        /// The interface version this plugin was built against.
        #[unsafe(no_mangle)]
        pub extern "C" fn atex_plugin_api_version() -> *const ::std::os::raw::c_char {
            $crate::API_VERSION_CSTR.as_ptr()
        }

        const _: () = {
            use $crate::abi_stable::{
                prefix_type::PrefixTypeTrait,
                std_types::{ROption, RResult},
            };

            extern "C" fn __atex_info() -> $crate::PluginInfo {
                #[allow(unused_mut)]
                let mut kinds = $crate::PluginKinds::default();
                $( let _ = stringify!($provisioner); kinds = kinds.with($crate::PluginKinds::PROVISIONER); )?
                $( let _ = stringify!($reporter); kinds = kinds.with($crate::PluginKinds::REPORTER); )?
                $crate::PluginInfo {
                    name: ($name).into(),
                    version: ($version).into(),
                    description: ($description).into(),
                    kinds,
                }
            }

            $(
                extern "C" fn __atex_new_provisioner(
                    ctx: $crate::HostContext,
                ) -> RResult<$crate::ProvisionerBox, $crate::PluginError> {
                    $crate::sdk::construct_provisioner(ctx, $provisioner)
                }
            )?
            $(
                extern "C" fn __atex_new_reporter(
                    ctx: $crate::HostContext,
                ) -> RResult<$crate::ReporterBox, $crate::PluginError> {
                    $crate::sdk::construct_reporter(ctx, $reporter)
                }
            )?

            const __ATEX_OPTIONS: &[$crate::sdk::OptionSpec] = $crate::__atex_or!(&[] $(, $options)?);
            const __ATEX_COMMANDS: &[$crate::sdk::CommandSpec] = $crate::__atex_or!(&[] $(, $commands)?);
            const __ATEX_RUN_COMMAND: Option<$crate::sdk::CommandHandler> =
                $crate::__atex_or!(None $(, Some($run_command))?);

            extern "C" fn __atex_describe() -> $crate::PluginDetails {
                $crate::sdk::details(__ATEX_OPTIONS, __ATEX_COMMANDS)
            }

            extern "C" fn __atex_run_command(
                call: $crate::CommandCall,
            ) -> RResult<$crate::CommandOutput, $crate::PluginError> {
                $crate::sdk::run_command(call, __ATEX_COMMANDS, __ATEX_RUN_COMMAND)
            }

            fn __atex_root_module() -> $crate::PluginMod_Ref {
                $crate::PluginMod {
                    info: __atex_info,
                    new_provisioner: $crate::__atex_optional!($( __atex_new_provisioner, $provisioner )?),
                    new_reporter: $crate::__atex_optional!($( __atex_new_reporter, $reporter )?),
                    describe: __atex_describe,
                    run_command: __atex_run_command,
                }
                .leak_into_prefix()
            }

            // What abi_stable's #[export_root_module] generates, spelled out
            // so that plugins need no direct dependency on abi_stable.
            #[unsafe(no_mangle)]
            pub static _1as_0lib_1header_0root_bmodule_bloader:
                $crate::abi_stable::library::LibHeader = {
                extern "C" fn __atex_erased() -> $crate::abi_stable::library::RootModuleResult {
                    $crate::abi_stable::library::__call_root_module_loader(__atex_root_module)
                }
                unsafe {
                    $crate::abi_stable::library::LibHeader::from_constructor::<$crate::PluginMod_Ref>(
                        __atex_erased,
                        $crate::abi_stable::library::CheckTypeLayout::Yes,
                    )
                }
            };
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __atex_or {
    ($default:expr) => {
        $default
    };
    ($default:expr, $given:expr) => {
        $given
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __atex_optional {
    () => {
        ROption::RNone
    };
    ($f:ident, $($rest:tt)*) => {
        ROption::RSome($f)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_header_name_matches_abi_stable() {
        // export_plugin! hard-codes the symbol name abi_stable looks up.
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn guard_turns_panic_into_error() {
        let r: RResult<(), PluginError> = guard(|| panic!("boom"));
        match r {
            RResult::RErr(e) => {
                assert_eq!(e.kind, ErrorKind::PANIC);
                assert!(e.message.contains("boom"), "{}", e.message);
            }
            RResult::ROk(()) => panic!("a panic must become an error"),
        }
    }

    #[test]
    fn timeout_conversion_keeps_forever() {
        assert_eq!(millis_to_duration(u64::MAX), Duration::MAX);
        assert_eq!(millis_to_duration(1500), Duration::from_millis(1500));
    }
}
