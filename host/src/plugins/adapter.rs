//! Adapters from loaded plugin objects to the host's own traits, and the
//! host services handed to plugins.
//!
//! Only this file converts between the ABI types of `atex-plugin-api`
//! (`RString`, `RResult`, ...) and the std types of [`crate::backend`].

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RResult, RStr, RString},
};
use atex_plugin_api::{
    self as api, ConnectionKind, ErrorKind, HostContext, HostServices, HostServices_TO, LogLevel,
    ProgressEvent, ProvisionerBox, RemoteBox, ReporterBox, Status,
};

use super::load::LoadedPlugin;
use crate::backend::{
    BackendError, Connection, Provisioner, Remote, ReportedResult, Reporter, RunSummary, SshTarget,
};

/// Called with (plugin name, message, percent) for each progress event.
pub type ProgressHook = Arc<dyn Fn(&str, &str, Option<u8>) + Send + Sync>;

/// Settings shared by every plugin object the host constructs.
#[derive(Clone)]
pub struct PluginHost {
    /// Set to ask plugins to stop waiting (Ctrl-C).
    pub cancel: Arc<AtomicBool>,
    /// The run's identifier.
    pub run_id: String,
    /// The run's results directory (plugins' `work_dir`).
    pub work_dir: PathBuf,
    /// Receives progress events.
    pub progress: Option<ProgressHook>,
}

impl PluginHost {
    /// A host context with a fresh cancel flag.
    pub fn new(run_id: impl Into<String>, work_dir: impl Into<PathBuf>) -> Self {
        PluginHost {
            cancel: Arc::new(AtomicBool::new(false)),
            run_id: run_id.into(),
            work_dir: work_dir.into(),
            progress: None,
        }
    }

    /// Runs subcommand `command` of `plugin` with `args`
    /// (`atex PLUGIN COMMAND ARGS`).
    ///
    /// A plugin without commands (one built against atex-plugin-api 0.1.0,
    /// or one that lists none) and an unknown command are errors that say
    /// so; so is whatever the plugin reports as an error.
    pub fn run_command(
        &self,
        plugin: &LoadedPlugin,
        command: &str,
        args: &[String],
    ) -> Result<CommandResult, BackendError> {
        let origin = format!("{} {command}", plugin.name());
        let Some(run) = plugin.module.run_command() else {
            return Err(BackendError::new(
                &origin,
                format!(
                    "plugin `{}` has no commands (built against atex-plugin-api {}, which has no command entry point)",
                    plugin.name(),
                    plugin.description().api_version
                ),
            ));
        };
        let call = api::CommandCall {
            context: self.context(plugin.name(), ""),
            command: command.into(),
            args: args.iter().map(|a| RString::from(a.as_str())).collect(),
        };
        let out = result(&origin, run(call))?;
        Ok(CommandResult {
            stdout: out.stdout.into_string(),
            stderr: out.stderr.into_string(),
            exit_code: out.exit_code,
        })
    }

    fn context(&self, plugin: &str, config: &str) -> HostContext {
        let services = HostServicesImpl {
            plugin: plugin.to_string(),
            cancel: Arc::clone(&self.cancel),
            progress: self.progress.clone(),
        };
        HostContext {
            services: HostServices_TO::from_ptr(RArc::new(services), TD_Opaque),
            config: config.into(),
            plugin_name: plugin.into(),
            run_id: self.run_id.as_str().into(),
            work_dir: self.work_dir.to_string_lossy().as_ref().into(),
        }
    }
}

/// What a plugin's subcommand produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// Text for standard output.
    pub stdout: String,
    /// Text for standard error.
    pub stderr: String,
    /// The exit code the command asks for.
    pub exit_code: i32,
}

#[derive(Clone)]
struct HostServicesImpl {
    plugin: String,
    cancel: Arc<AtomicBool>,
    progress: Option<ProgressHook>,
}

impl HostServices for HostServicesImpl {
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>) {
        let (plugin, target, message) = (self.plugin.as_str(), target.as_str(), message.as_str());
        match level {
            LogLevel::ERROR => tracing::error!(target: "atex::plugin", plugin, target, "{message}"),
            LogLevel::WARN => tracing::warn!(target: "atex::plugin", plugin, target, "{message}"),
            LogLevel::INFO => tracing::info!(target: "atex::plugin", plugin, target, "{message}"),
            LogLevel::DEBUG => tracing::debug!(target: "atex::plugin", plugin, target, "{message}"),
            _ => tracing::trace!(target: "atex::plugin", plugin, target, "{message}"),
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    fn progress(&self, event: &ProgressEvent) {
        let percent = match event.percent {
            ROption::RSome(p) => Some(p),
            ROption::RNone => None,
        };
        if let Some(hook) = &self.progress {
            hook(&self.plugin, event.message.as_str(), percent);
        } else {
            tracing::info!(target: "atex::plugin", plugin = %self.plugin, "{}", event.message);
        }
    }
}

fn to_backend(origin: &str, err: api::PluginError) -> BackendError {
    let message = if err.kind == ErrorKind::PANIC || err.kind == ErrorKind::OTHER {
        err.message.into_string()
    } else {
        format!("{}: {}", err.kind, err.message)
    };
    BackendError::new(origin, message).with_kind(err.kind)
}

fn result<T>(origin: &str, r: RResult<T, api::PluginError>) -> Result<T, BackendError> {
    r.into_result().map_err(|e| to_backend(origin, e))
}

impl LoadedPlugin {
    /// Constructs this plugin's provisioner with `config` (YAML or JSON).
    pub fn new_provisioner(
        &self,
        host: &PluginHost,
        config: &str,
    ) -> Result<ForeignProvisioner, BackendError> {
        let name = self.name().to_string();
        let Some(make) = self.module.new_provisioner().into_option() else {
            return Err(BackendError::new(
                &name,
                "this plugin does not provide a provisioner",
            ));
        };
        let inner = result(&name, make(host.context(&name, config)))?;
        Ok(ForeignProvisioner {
            name,
            inner: Arc::new(inner),
            platform: None,
        })
    }

    /// Constructs this plugin's reporter with `config` (YAML or JSON).
    pub fn new_reporter(
        &self,
        host: &PluginHost,
        config: &str,
    ) -> Result<ForeignReporter, BackendError> {
        let name = self.name().to_string();
        let Some(make) = self.module.new_reporter().into_option() else {
            return Err(BackendError::new(
                &name,
                "this plugin does not provide a reporter",
            ));
        };
        let inner = result(&name, make(host.context(&name, config)))?;
        Ok(ForeignReporter { name, inner })
    }
}

/// A provisioner living in a plugin.
pub struct ForeignProvisioner {
    name: String,
    inner: Arc<ProvisionerBox>,
    platform: Option<String>,
}

impl ForeignProvisioner {
    /// Files its systems under `platform` in a run's matrix (the plugins'
    /// own `platform` option; see [`Provisioner::platform`]).
    pub fn with_platform(mut self, platform: Option<String>) -> Self {
        self.platform = platform;
        self
    }
}

impl Provisioner for ForeignProvisioner {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn platform(&self) -> Option<String> {
        self.platform.clone()
    }
    fn start(&self) -> Result<(), BackendError> {
        result(&self.name, self.inner.start())
    }
    fn provision(&self, count: u32) {
        self.inner.provision(count)
    }
    fn get_remote(&self, timeout: Duration) -> Result<Option<Box<dyn Remote>>, BackendError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let remote = result(&self.name, self.inner.get_remote(ms))?;
        Ok(remote.into_option().map(|inner| {
            let name = inner.name().into_string();
            Box::new(ForeignRemote { name, inner }) as Box<dyn Remote>
        }))
    }
    fn clear(&self) {
        self.inner.clear()
    }
    fn max_remotes(&self) -> Option<u32> {
        match self.inner.max_remotes() {
            0 => None,
            n => Some(n),
        }
    }
    fn stop(&self) -> Result<(), BackendError> {
        result(&self.name, self.inner.stop())
    }
}

/// A remote handed out by a plugin.
pub struct ForeignRemote {
    name: String,
    inner: RemoteBox,
}

impl Remote for ForeignRemote {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn platform(&self) -> String {
        self.inner.platform().into_string()
    }
    fn connection(&self) -> Result<Connection, BackendError> {
        let c = result(&self.name, self.inner.connection())?;
        match c.kind {
            ConnectionKind::LOCAL => Ok(Connection::Local),
            ConnectionKind::SSH | ConnectionKind::SSH_SUDO => match c.ssh {
                ROption::RSome(t) => Ok(Connection::Ssh(SshTarget {
                    host: t.host.into_string(),
                    port: t.port,
                    user: t.user.into_string(),
                    identity_file: t
                        .identity_file
                        .into_option()
                        .map(|p| PathBuf::from(p.into_string())),
                    options: t.options.into_iter().map(RString::into_string).collect(),
                    sudo: c.kind == ConnectionKind::SSH_SUDO,
                })),
                ROption::RNone => Err(BackendError::new(
                    &self.name,
                    "ssh connection without a target",
                )),
            },
            ConnectionKind::COMMAND if !c.command_prefix.is_empty() => Ok(Connection::Command(
                c.command_prefix
                    .into_iter()
                    .map(RString::into_string)
                    .collect(),
            )),
            ConnectionKind::COMMAND => Err(BackendError::new(
                &self.name,
                "command connection with an empty prefix",
            )),
            other => Err(BackendError::new(
                &self.name,
                format!(
                    "unknown connection kind {} (plugin newer than this atex?)",
                    other.0
                ),
            )),
        }
    }
    fn alive(&self) -> Result<bool, BackendError> {
        result(&self.name, self.inner.alive())
    }
    fn release(&self) -> Result<(), BackendError> {
        result(&self.name, self.inner.release())
    }
}

/// A reporter living in a plugin.
pub struct ForeignReporter {
    name: String,
    inner: ReporterBox,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Reporter for ForeignReporter {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn on_result(&mut self, r: &ReportedResult) -> Result<(), BackendError> {
        let abi = api::TestResult {
            platform: r.platform.as_str().into(),
            test: r.test.as_str().into(),
            subtest: r.subtest.as_deref().map(RString::from).into(),
            status: r.status.as_ref().map_or("", Status::as_str).into(),
            note: r.note.as_deref().map(RString::from).into(),
            files: r.files.iter().map(|f| RString::from(f.as_str())).collect(),
            results_dir: r.results_dir.to_string_lossy().as_ref().into(),
            started_unix_ms: r.started_unix_ms,
            duration_ms: millis(r.duration),
            attempt: r.attempt,
            final_attempt: r.final_attempt,
            remote: r.remote.as_str().into(),
            extra_json: serde_json::Value::Object(r.extra.clone())
                .to_string()
                .into(),
        };
        result(&self.name, self.inner.on_result(&abi))
    }
    fn finish(&mut self, s: &RunSummary) -> Result<Vec<PathBuf>, BackendError> {
        let abi = api::RunSummary {
            run_id: s.run_id.as_str().into(),
            results_dir: s.results_dir.to_string_lossy().as_ref().into(),
            started_unix_ms: s.started_unix_ms,
            duration_ms: millis(s.duration),
            tests_total: s.tests_total,
            counts: s
                .counts
                .iter()
                .map(|(status, count)| api::StatusCount {
                    status: status.as_str().into(),
                    count: *count,
                })
                .collect(),
            interrupted: s.interrupted,
            extra_json: serde_json::Value::Object(s.extra.clone())
                .to_string()
                .into(),
        };
        let paths = result(&self.name, self.inner.finish(&abi))?;
        Ok(paths
            .into_iter()
            .map(|p| PathBuf::from(p.into_string()))
            .collect())
    }
}
