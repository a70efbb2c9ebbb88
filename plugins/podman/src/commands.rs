//! `atex podman leftovers [--run ID] [--remove]`: containers atex runs
//! left behind (a run killed with SIGKILL never gets to remove them).

use std::time::Duration;

use atex_plugin_api::{
    CommandOutput, ErrorKind, PluginError,
    sdk::{CommandContext, CommandSpec},
};

use crate::{
    RUN_LABEL,
    cleanup::remove_with,
    podman::{Runner, args},
};

/// The subcommands, for `atex podman --help` and `atex plugin info`.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "leftovers",
    summary: "list (or --remove) containers labelled by atex runs",
    help: "usage: atex podman leftovers [--run ID] [--remove]

Lists the containers (running or not) that carry the atex.run label, one a
line: id, name, state, run id. A run removes its containers when it ends;
these are what runs killed with SIGKILL left behind.

  --run ID   only the containers of run ID (the id a run prints first, or
             the provisioner's `label` option)
  --remove   remove them (podman rm --force --time=0); without --run this
             removes every run's, so only do that when no run is going on",
}];

/// Runs a subcommand (the handler given to `export_plugin!`).
pub fn run(ctx: &CommandContext) -> Result<CommandOutput, PluginError> {
    if ctx.command != "leftovers" {
        return Err(PluginError::new(
            ErrorKind::UNSUPPORTED,
            format!("no command `{}`", ctx.command),
        ));
    }
    let mut run: Option<String> = None;
    let mut remove = false;
    let mut it = ctx.args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--remove" => remove = true,
            "--run" => {
                run = Some(it.next().cloned().ok_or_else(|| {
                    PluginError::config("--run needs a run id (atex podman leftovers --help)")
                })?);
            }
            a if a.starts_with("--run=") => run = Some(a["--run=".len()..].to_string()),
            other => {
                return Err(PluginError::config(format!(
                    "unexpected argument `{other}` (atex podman leftovers --help)"
                )));
            }
        }
    }
    if run.as_deref().is_some_and(str::is_empty) {
        return Err(PluginError::config("--run needs a run id"));
    }
    let filter = match &run {
        Some(r) => format!("label={RUN_LABEL}={r}"),
        None => format!("label={RUN_LABEL}"),
    };
    let runner = Runner {
        timeout: Duration::from_secs(300),
        containers_conf: None,
    };
    let format = format!(
        "{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.State}}}}\t{{{{index .Labels \"{RUN_LABEL}\"}}}}"
    );
    let out = runner
        .run(&args([
            "ps",
            "--all",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            &format,
        ]))
        .map_err(|e| PluginError::io(e.to_string()))?;
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let mut text = String::new();
    for row in &rows {
        let cell = |i: usize| row.get(i).copied().unwrap_or("-");
        let id: String = cell(0).chars().take(12).collect();
        text.push_str(&format!(
            "{id}  {}  {}  {RUN_LABEL}={}\n",
            cell(1),
            cell(2),
            cell(3)
        ));
    }
    if remove {
        let ids: Vec<String> = rows
            .iter()
            .filter_map(|r| r.first().map(|s| s.to_string()))
            .collect();
        remove_with(&runner, &ids).map_err(|e| PluginError::io(e.to_string()))?;
        text.push_str(&format!("removed {} container(s)\n", ids.len()));
    } else if rows.is_empty() {
        text.push_str("no leftover containers\n");
    }
    Ok(CommandOutput::text(text))
}
