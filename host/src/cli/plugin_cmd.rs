//! `atex plugin info NAME` and `atex PLUGIN COMMAND [ARGS]`: what a plugin
//! says about its options, and the commands it offers, both through the
//! plugin's own entry points.

use std::{fmt::Write as _, io::Write as _, process::ExitCode};

use anyhow::{Result, anyhow, bail};
use atex::plugins::{LoadedPlugin, PluginDescription, PluginHost, PluginRegistry, search_path};

use crate::{EXIT_ERROR, InfoArgs};

/// `  commands: a, b` for the `atex plugins` table; empty without commands.
pub(crate) fn commands_note(d: &PluginDescription) -> String {
    if d.commands.is_empty() {
        String::new()
    } else {
        format!("  commands: {}", d.commands.join(", "))
    }
}

fn find(
    registry: &PluginRegistry,
    name: &str,
    searched: &[std::path::PathBuf],
) -> Result<LoadedPlugin> {
    registry.get(name).cloned().ok_or_else(|| {
        anyhow!(
            "no plugin `{name}` found (searched: {}; `atex plugins` lists what is there)",
            searched
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// `atex plugin info NAME`.
pub(crate) fn plugin_info(args: &InfoArgs) -> Result<ExitCode> {
    let dirs = search_path(&args.dirs.plugin_dirs);
    let registry = PluginRegistry::discover(&dirs);
    let plugin = find(&registry, &args.name, &dirs)?;
    let d = plugin.description();
    let details = plugin.details();
    if args.json {
        let doc = serde_json::json!({
            "plugin": d,
            "options": details.as_ref().map(|x| &x.options),
            "commands": details.as_ref().map(|x| &x.commands),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} ({}), atex-plugin-api {}, {}",
        d.name,
        d.version,
        d.kinds.join("+"),
        d.api_version,
        d.path.display()
    );
    let _ = writeln!(out, "{}", d.description);
    match &details {
        None => {
            let _ = writeln!(
                out,
                "\nThis plugin does not describe its options or commands: it was built against atex-plugin-api {}, before plugins could (0.1.1).",
                d.api_version
            );
        }
        Some(details) => {
            if details.options.is_empty() {
                let _ = writeln!(out, "\noptions: none described");
            } else {
                let flag = match (
                    d.kinds.iter().any(|k| k == "provisioner"),
                    d.kinds.iter().any(|k| k == "reporter"),
                ) {
                    (true, false) => "-p",
                    (false, true) => "-r",
                    _ => "-p/-r",
                };
                let _ = writeln!(out, "\noptions ({flag} {}:KEY=VALUE,...):", d.name);
                for o in &details.options {
                    let mut head = format!("  {}  {}", o.name, o.value_type);
                    if let Some(default) = &o.default {
                        let _ = write!(head, ", default {default}");
                    }
                    if !o.kind.is_empty() {
                        let _ = write!(head, " ({})", o.kind);
                    }
                    let _ = writeln!(out, "{head}");
                    for line in wrap(&o.description, 72) {
                        let _ = writeln!(out, "      {line}");
                    }
                }
            }
            write_commands(&mut out, &d.name, &details.commands);
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn write_commands(out: &mut String, plugin: &str, commands: &[atex::plugins::CommandDoc]) {
    if commands.is_empty() {
        let _ = writeln!(out, "\ncommands: none");
        return;
    }
    let _ = writeln!(out, "\ncommands (atex {plugin} COMMAND --help for more):");
    let width = commands.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in commands {
        let _ = writeln!(out, "  {:<width$}  {}", c.name, c.summary);
    }
}

/// Words of `text` in lines of at most `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `atex PLUGIN COMMAND [ARGS]` (`args[0]` is the plugin's name).
pub(crate) fn run_plugin_command(args: &[String]) -> Result<ExitCode> {
    let Some((name, rest)) = args.split_first() else {
        bail!("no command given");
    };
    let dirs = search_path(&[]);
    let registry = PluginRegistry::discover(&dirs);
    let plugin = registry.get(name).cloned().ok_or_else(|| {
        anyhow!("`{name}` is neither an atex command nor a plugin found in the search path (`atex --help`, `atex plugins`)")
    })?;
    let d = plugin.description();
    let Some((command, command_args)) = rest
        .split_first()
        .filter(|(c, _)| !matches!(c.as_str(), "--help" | "-h" | "help"))
    else {
        // `atex PLUGIN`, `atex PLUGIN --help`: the plugin's command list.
        let mut out = format!("{}: {}\n", d.name, d.description);
        match plugin.details() {
            Some(details) => write_commands(&mut out, &d.name, &details.commands),
            None => {
                let _ = writeln!(
                    out,
                    "\ncommands: none (built against atex-plugin-api {}, before plugins could offer commands)",
                    d.api_version
                );
            }
        }
        let _ = writeln!(out, "options: atex plugin info {}", d.name);
        print!("{out}");
        return Ok(if rest.is_empty() {
            ExitCode::from(EXIT_ERROR)
        } else {
            ExitCode::SUCCESS
        });
    };
    let host = PluginHost::new(
        atex::scheduler::new_run_id(),
        std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()),
    );
    let result = host
        .run_command(&plugin, command, command_args)
        .map_err(|e| anyhow!("{e}"))?;
    print!("{}", result.stdout);
    eprint!("{}", result.stderr);
    let _ = std::io::stdout().flush();
    Ok(ExitCode::from(
        u8::try_from(result.exit_code).unwrap_or(EXIT_ERROR),
    ))
}
