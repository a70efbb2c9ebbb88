//! The `atex` command: a thin front end over the `atex` library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use atex::plugins::{
    PluginRegistry,
    conformance::{CheckOptions, check_library},
    search_path,
};
use clap::{Args, Parser, Subcommand};

/// Exit code for usage, configuration and infrastructure errors.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "atex",
    version,
    about = "Ad-hoc Test EXecution: run FMF test suites on pools of systems"
)]
struct Cli {
    /// More log output (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the plugins found in the search path, and the files refused.
    Plugins(PluginsArgs),
    /// Work with one plugin library.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Args)]
struct PluginDirArgs {
    /// Also search this directory for plugins, before $ATEX_PLUGIN_PATH and
    /// the directory of the atex executable (repeatable).
    #[arg(long = "plugin-dir", value_name = "DIR")]
    plugin_dirs: Vec<PathBuf>,
}

#[derive(Args)]
struct PluginsArgs {
    #[command(flatten)]
    dirs: PluginDirArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Run the conformance suite against a plugin library.
    Check(CheckArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// The shared library to check.
    library: PathBuf,
    /// A plugin option KEY=VALUE (repeatable), e.g. `-o image=localhost/x`.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Plugin configuration from a YAML file (instead of -o).
    #[arg(long, value_name = "FILE", conflicts_with = "options")]
    config: Option<PathBuf>,
    /// Seconds to wait for each remote.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let outcome = match cli.command {
        Command::Plugins(args) => list_plugins(&args),
        Command::Plugin(PluginCommand::Check(args)) => check_plugin(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("atex: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn list_plugins(args: &PluginsArgs) -> Result<ExitCode> {
    let registry = PluginRegistry::discover(&search_path(&args.dirs.plugin_dirs));
    if args.json {
        let doc = serde_json::json!({
            "plugins": registry.plugins().iter().map(|p| p.description()).collect::<Vec<_>>(),
            "refused": registry.refused().iter().map(|e| serde_json::json!({
                "path": e.path(),
                "reason": e.to_string(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    if registry.plugins().is_empty() {
        println!(
            "no plugins found (searched: {})",
            search_path(&args.dirs.plugin_dirs)
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for p in registry.plugins() {
        let d = p.description();
        println!(
            "{:<14} {:<8} {:<22} api {:<7} {}",
            d.name,
            d.version,
            d.kinds.join("+"),
            d.api_version,
            d.path.display()
        );
    }
    for refused in registry.refused() {
        println!("refused: {refused}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_plugin(args: &CheckArgs) -> Result<ExitCode> {
    let config = match &args.config {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read plugin configuration {}", file.display()))?,
        None => {
            let spec = format!("plugin:{}", args.options.join(","));
            atex::plugins::PluginSpec::parse(&spec)?.config_text()
        }
    };
    let options = CheckOptions {
        config,
        remote_timeout: Duration::from_secs(args.timeout),
        ..Default::default()
    };
    let mut print = |o: &atex::plugins::conformance::CheckOutcome| {
        let mark = if o.passed { "ok  " } else { "FAIL" };
        if o.detail.is_empty() {
            println!("{mark} {}", o.name);
        } else {
            println!("{mark} {} ({})", o.name, o.detail);
        }
    };
    let outcomes = match check_library(&args.library, &options, &mut print) {
        Ok(o) => o,
        Err(err) => {
            eprintln!("atex: {err}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    let passed = outcomes.iter().filter(|o| o.passed).count();
    let failed = outcomes.len() - passed;
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
