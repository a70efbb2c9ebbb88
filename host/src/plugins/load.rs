//! Finding plugin files and loading them safely.
//!
//! Loading happens in two steps. First a plain `dlopen` and a look for the
//! small C symbol every atex plugin exports ([`atex_plugin_api::PREFLIGHT_SYMBOL`]):
//! a file without it is not an atex plugin, and one built against another
//! API version is refused right there, with one line that says so. Only
//! then does abi_stable check the layout of every type and call the root
//! module. Its own errors can run to thousands of lines; they are condensed
//! to one line here (the full text goes to the debug log).

use std::{
    collections::HashMap,
    ffi::{CStr, OsStr},
    fmt,
    path::{Path, PathBuf},
};

use abi_stable::library::{LibraryError, lib_header_from_path};
use atex_plugin_api::{
    API_VERSION, PREFLIGHT_SYMBOL, PluginKinds, PluginMod_Ref, upgrade_v0_1_0, v0_1_0,
};

/// Why a file could not be used as a plugin. Its `Display` is one line
/// that names the file.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginLoadError {
    /// The file could not be opened as a shared library at all.
    #[error("{path}: cannot be loaded as a shared library: {reason}")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// A shared library without the atex marker symbol.
    #[error(
        "{path}: not an atex plugin (it does not export `{PREFLIGHT_SYMBOL}`; plugins are built with atex_plugin_api::export_plugin!)"
    )]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// Built against an interface version this host cannot load.
    #[error(
        "{path}: built against atex-plugin-api {found}, this atex needs {host}-compatible (the same 0.minor); rebuild the plugin against atex-plugin-api {host}"
    )]
    IncompatibleVersion {
        /// The file.
        path: PathBuf,
        /// The version it was built against.
        found: String,
        /// The host's version.
        host: String,
    },
    /// abi_stable refused it (type layouts differ) or its root module failed.
    #[error("{path}: refused by the ABI check: {summary}")]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The first lines of abi_stable's report, condensed.
        summary: String,
    },
    /// Another plugin with the same name came first in the search order.
    #[error("{path}: plugin `{name}` is shadowed by {first} (earlier in the search path)")]
    Shadowed {
        /// The file.
        path: PathBuf,
        /// The plugin name.
        name: String,
        /// The file that provides it.
        first: PathBuf,
    },
}

impl PluginLoadError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            PluginLoadError::NotALibrary { path, .. }
            | PluginLoadError::NotAPlugin { path }
            | PluginLoadError::IncompatibleVersion { path, .. }
            | PluginLoadError::AbiMismatch { path, .. }
            | PluginLoadError::Shadowed { path, .. } => path,
        }
    }
}

/// What a plugin says about itself, in host types.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginDescription {
    /// The name used after `-p`/`-r`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// One line about it.
    pub description: String,
    /// `provisioner`, `reporter`.
    pub kinds: Vec<String>,
    /// The atex-plugin-api version it was built against.
    pub api_version: String,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The subcommands it offers (`atex NAME COMMAND`), empty when none.
    pub commands: Vec<String>,
    /// Whether it describes its options and commands (plugins built
    /// against atex-plugin-api 0.1.0 cannot).
    pub describes: bool,
}

/// A plugin that passed every check. Plugins are never unloaded.
#[derive(Clone)]
pub struct LoadedPlugin {
    pub(crate) module: PluginMod_Ref,
    description: PluginDescription,
    kinds: PluginKinds,
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("description", &self.description)
            .finish()
    }
}

impl LoadedPlugin {
    /// Name, version, kinds, path.
    pub fn description(&self) -> &PluginDescription {
        &self.description
    }
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.description.name
    }
    /// Whether it can construct a provisioner.
    pub fn is_provisioner(&self) -> bool {
        self.kinds.contains(PluginKinds::PROVISIONER) && self.module.new_provisioner().is_some()
    }
    /// Whether it can construct a reporter.
    pub fn is_reporter(&self) -> bool {
        self.kinds.contains(PluginKinds::REPORTER) && self.module.new_reporter().is_some()
    }
    /// Its options and subcommands, as the plugin describes them; `None`
    /// for a plugin built before the entry point existed (0.1.0).
    pub fn details(&self) -> Option<PluginDetails> {
        let describe = self.module.describe()?;
        let d = describe();
        Some(PluginDetails {
            options: d
                .options
                .into_iter()
                .map(|o| OptionDoc {
                    name: o.name.into_string(),
                    kind: o.kind.into_string(),
                    value_type: o.value_type.into_string(),
                    default: Some(o.default.into_string()).filter(|d| !d.is_empty()),
                    description: o.description.into_string(),
                })
                .collect(),
            commands: d
                .commands
                .into_iter()
                .map(|c| CommandDoc {
                    name: c.name.into_string(),
                    summary: c.summary.into_string(),
                    help: c.help.into_string(),
                })
                .collect(),
        })
    }
}

/// A plugin's options and subcommands (`atex plugin info`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PluginDetails {
    /// Its configuration options.
    pub options: Vec<OptionDoc>,
    /// Its subcommands.
    pub commands: Vec<CommandDoc>,
}

/// One option of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OptionDoc {
    /// The key.
    pub name: String,
    /// `provisioner` or `reporter` for a plugin of both kinds, else empty.
    pub kind: String,
    /// Its type in words.
    pub value_type: String,
    /// Its default, when it has one.
    pub default: Option<String>,
    /// What it does.
    pub description: String,
}

/// One subcommand of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandDoc {
    /// The word after the plugin name.
    pub name: String,
    /// One line about it.
    pub summary: String,
    /// Its full help text.
    pub help: String,
}

/// Checks and loads one plugin file.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, PluginLoadError> {
    let found = preflight(path)?;
    if !versions_compatible(API_VERSION, &found) {
        return Err(PluginLoadError::IncompatibleVersion {
            path: path.to_path_buf(),
            found,
            host: API_VERSION.to_string(),
        });
    }
    // A plugin built against 0.1.0 lacks the entry points added since:
    // check it against the layout it was built with (abi_stable refuses a
    // module with fewer fields than the host's), then read it through the
    // current type, whose newer accessors then say `None`.
    let before_describe = version_before(&found, (0, 1, 1));
    let module = lib_header_from_path(path)
        .and_then(|header| {
            if before_describe {
                header
                    .init_root_module::<v0_1_0::PluginMod_Ref>()
                    .map(upgrade_v0_1_0)
            } else {
                header.init_root_module::<PluginMod_Ref>()
            }
        })
        .map_err(|err| {
            let full = err.to_string();
            tracing::debug!(path = %path.display(), "abi_stable refused the plugin:\n{full}");
            PluginLoadError::AbiMismatch {
                path: path.to_path_buf(),
                summary: condense(&err, &full),
            }
        })?;
    let info = (module.info())();
    let kinds = info.kinds;
    let details = module.describe().map(|describe| describe());
    let commands = details
        .as_ref()
        .map(|d| d.commands.iter().map(|c| c.name.to_string()).collect())
        .unwrap_or_default();
    Ok(LoadedPlugin {
        module,
        kinds,
        description: PluginDescription {
            name: info.name.into_string(),
            version: info.version.into_string(),
            description: info.description.into_string(),
            kinds: kinds.names().into_iter().map(String::from).collect(),
            api_version: found,
            path: path.to_path_buf(),
            commands,
            describes: details.is_some(),
        },
    })
}

/// Whether version `v` is older than `than` (unparsable counts as not).
fn version_before(v: &str, than: (u64, u64, u64)) -> bool {
    parse_version(v).is_some_and(|v| v < than)
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split(['.', '-', '+']).map(str::parse::<u64>);
    Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
}

/// Opens the library and reads the API version from the marker symbol.
fn preflight(path: &Path) -> Result<String, PluginLoadError> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a shared library runs its initialisers. That is the
    // contract of a plugin system: the user asked for this file to be loaded.
    let lib = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|e| {
        // libloading keeps dlerror()'s text in the source, not the message.
        let reason = match std::error::Error::source(&e) {
            Some(detail) => detail.to_string(),
            None => e.to_string(),
        };
        PluginLoadError::NotALibrary {
            path: path.to_path_buf(),
            reason: one_line(&reason),
        }
    })?;
    let version = {
        // SAFETY: the symbol, when present, is the `extern "C" fn() -> *const
        // c_char` that export_plugin! defines.
        let symbol = unsafe {
            lib.get::<extern "C" fn() -> *const std::os::raw::c_char>(PREFLIGHT_SYMBOL.as_bytes())
        };
        let Ok(func) = symbol else {
            return Err(PluginLoadError::NotAPlugin {
                path: path.to_path_buf(),
            });
        };
        let ptr = func();
        if ptr.is_null() {
            return Err(PluginLoadError::NotAPlugin {
                path: path.to_path_buf(),
            });
        }
        // SAFETY: export_plugin! returns a pointer to a static NUL-terminated
        // string.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    };
    // Plugins are never unloaded (objects they create live until exit), so
    // keep this handle open too; abi_stable's own dlopen shares it.
    std::mem::forget(lib);
    Ok(version)
}

/// Whether a host built with `host` can load a plugin built with `plugin`:
/// the same `0.minor` (or major from 1.0). Patch releases only add entry
/// points: an older plugin lacks them (the host treats them as absent), a
/// newer one has some the host does not see. From 1.0, a plugin built
/// against an older minor loads the same way.
pub fn versions_compatible(host: &str, plugin: &str) -> bool {
    match (parse_version(host), parse_version(plugin)) {
        (Some((hm, hn, _)), Some((pm, pn, _))) => hm == pm && (hm > 0 || hn == pn),
        _ => false,
    }
}

/// Turns abi_stable's multi-page report into one line.
fn condense(err: &LibraryError, full: &str) -> String {
    if let LibraryError::RootModule { err, .. } = err {
        return one_line(&format!("the plugin's root module failed: {err}"));
    }
    // Layout reports contain lines such as "Error:too many fields" followed
    // by "Expected:" and "Found:" lines; the first such triple says it all.
    let mut lines = full.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("incompatible library");
    let mut parts = vec![first.to_string()];
    let mut rest = full.lines().map(str::trim);
    if let Some(pos) = rest.position(|l| l.starts_with("Error:")) {
        let tail: Vec<&str> = full.lines().map(str::trim).skip(pos).take(6).collect();
        let mut detail = String::new();
        for l in tail {
            if l.starts_with("Error:") || l.starts_with("Expected:") || l.starts_with("Found:") {
                if !detail.is_empty() {
                    detail.push_str("; ");
                }
                detail.push_str(l);
            }
        }
        if !detail.is_empty() {
            parts.push(detail);
        }
    }
    let text = one_line(&parts.join(" — "));
    const MAX: usize = 300;
    if text.len() > MAX {
        let mut cut = MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        format!(
            "{}… (run with RUST_LOG=debug for the full report)",
            &text[..cut]
        )
    } else {
        text
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The directories searched for plugins, in order: `extra` (from
/// `--plugin-dir`), then `$ATEX_PLUGIN_PATH` (colon-separated), then the
/// directory of the running executable.
pub fn search_path(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = extra.to_vec();
    if let Some(var) = std::env::var_os("ATEX_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&var).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_path_buf());
    }
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let key = d.canonicalize().unwrap_or_else(|_| d.clone());
        if seen.contains(&key) {
            false
        } else {
            seen.push(key);
            true
        }
    });
    dirs
}

/// Shared-library files in `dir` that look like plugins (`lib*.so`), sorted.
pub fn candidate_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(OsStr::to_str).unwrap_or("");
            name.starts_with(std::env::consts::DLL_PREFIX)
                && name.ends_with(std::env::consts::DLL_SUFFIX)
                && p.is_file()
        })
        .collect();
    files.sort();
    files
}

/// Every plugin found in the search path, and every file refused.
#[derive(Debug, Default, Clone)]
pub struct PluginRegistry {
    plugins: Vec<LoadedPlugin>,
    refused: Vec<PluginLoadError>,
}

impl PluginRegistry {
    /// Scans `dirs` in order. The first plugin of a name wins; later ones
    /// are listed as shadowed. Files that are not atex plugins at all are
    /// skipped with a debug log line (directories may hold other libraries).
    pub fn discover(dirs: &[PathBuf]) -> PluginRegistry {
        let mut registry = PluginRegistry::default();
        let mut by_name: HashMap<String, PathBuf> = HashMap::new();
        for dir in dirs {
            for file in candidate_files(dir) {
                match load_plugin(&file) {
                    Ok(plugin) => {
                        if let Some(first) = by_name.get(plugin.name()) {
                            registry.refused.push(PluginLoadError::Shadowed {
                                path: file,
                                name: plugin.name().to_string(),
                                first: first.clone(),
                            });
                        } else {
                            by_name.insert(plugin.name().to_string(), file);
                            registry.plugins.push(plugin);
                        }
                    }
                    Err(PluginLoadError::NotAPlugin { path }) => {
                        tracing::debug!(path = %path.display(), "skipping a library that is not an atex plugin");
                    }
                    Err(err) => registry.refused.push(err),
                }
            }
        }
        registry
    }

    /// The loaded plugins, in search order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Files that were refused, each with its one-line reason.
    pub fn refused(&self) -> &[PluginLoadError] {
        &self.refused
    }

    /// The plugin called `name`.
    pub fn get(&self, name: &str) -> Option<&LoadedPlugin> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    /// Adds a plugin loaded by other means (e.g. an explicit path).
    pub fn add(&mut self, plugin: LoadedPlugin) {
        self.plugins.retain(|p| p.name() != plugin.name());
        self.plugins.push(plugin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rules_follow_abi_stable() {
        assert!(versions_compatible("0.1.0", "0.1.0"));
        // A plugin built against a newer additive release loads.
        assert!(versions_compatible("0.1.0", "0.1.3"));
        // An older patch release lacks entry points; they read as absent.
        assert!(versions_compatible("0.1.2", "0.1.1"));
        assert!(versions_compatible("0.1.1", "0.1.0"));
        assert!(!versions_compatible("0.1.0", "0.2.0"));
        assert!(!versions_compatible("0.2.0", "0.1.0"));
        assert!(versions_compatible("1.2.0", "1.3.0"));
        assert!(versions_compatible("1.3.0", "1.2.9"));
        assert!(!versions_compatible("1.0.0", "2.0.0"));
        assert!(!versions_compatible("0.1.0", "garbage"));
    }

    #[test]
    fn a_system_library_is_refused_in_one_line() {
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/libc.so.6",
        ]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists());
        let Some(libc) = libc else { return };
        let err = load_plugin(libc).expect_err("libc is not a plugin");
        assert!(matches!(err, PluginLoadError::NotAPlugin { .. }), "{err}");
        let text = err.to_string();
        assert!(!text.contains('\n'));
        assert!(
            text.contains("libc.so.6") && text.contains("not an atex plugin"),
            "{text}"
        );
    }

    #[test]
    fn a_text_file_is_not_a_library() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("libfake.so");
        std::fs::write(&path, "not an ELF file").expect("write");
        let err = load_plugin(&path).expect_err("must fail");
        assert!(matches!(err, PluginLoadError::NotALibrary { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }
}
