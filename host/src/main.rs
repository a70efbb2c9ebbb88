//! The `atex` command: a thin front end over the `atex` library.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, Result};
use atex::plugins::{
    PluginRegistry,
    conformance::{CheckOptions, check_library},
    search_path,
};
use clap::{Args, Parser, Subcommand};

mod cli {
    pub(crate) mod discover;
    pub(crate) mod reserve;
}

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
    /// Run FMF tests on systems from provisioner plugins, store and report
    /// the results.
    Run(Box<RunArgs>),
    /// List the plugins found in the search path, and the files refused.
    Plugins(PluginsArgs),
    /// Work with one plugin library.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// List the tests a tree and plan select: names, one per line, or with
    /// --json an object keyed by test name with metadata and source_dir.
    Discover(cli::discover::DiscoverArgs),
    /// Get one system from a provisioner, print how to reach it, open a
    /// shell on a terminal; release it on exit, Ctrl-C, SIGTERM or --for.
    Reserve(cli::reserve::ReserveArgs),
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
        Command::Run(args) => run_tests(*args),
        Command::Discover(args) => cli::discover::discover_tests(args),
        Command::Reserve(args) => cli::reserve::reserve(args),
    };
    write_self_usage();
    match outcome {
        Ok(code) => code,
        Err(err) => {
            match err.downcast_ref::<atex::RunError>() {
                // Each provisioner's failure was shown as it happened.
                Some(atex::RunError::NoProvisioner(_)) => {
                    eprintln!("atex: no provisioner could be started")
                }
                _ => eprintln!("atex: {err:#}"),
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// With `ATEX_SELF_USAGE=FILE`, writes atex's own resource use (its
/// threads and in-process plugins, not the tests it ran) to FILE as one
/// JSON line: user and system CPU seconds and peak RSS in KiB. Benchmarks
/// read it (`tests/bench/scale.sh`).
fn write_self_usage() {
    let Some(path) = std::env::var_os("ATEX_SELF_USAGE") else {
        return;
    };
    // SAFETY: getrusage only writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0).then_some(u)
    };
    let Some(u) = usage else {
        return;
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let line = serde_json::json!({
        "user_s": secs(u.ru_utime),
        "sys_s": secs(u.ru_stime),
        "maxrss_kb": u.ru_maxrss,
    });
    if let Err(e) = std::fs::write(&path, format!("{line}\n")) {
        eprintln!(
            "atex: ATEX_SELF_USAGE {}: {e}",
            PathBuf::from(path).display()
        );
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

/// Test selection, as `atex discover` and `atex run` take it.
#[derive(Args)]
pub(crate) struct SelectionArgs {
    /// FMF tree root, or any directory inside the tree [default: .].
    root: Option<PathBuf>,
    /// Plan node whose discover sections select the tests.
    #[arg(long)]
    plan: Option<String>,
    /// Adjust context KEY=VALUE[,VALUE] (repeatable).
    #[arg(short = 'c', long = "context", value_name = "K=V")]
    context: Vec<String>,
    /// fmf filter expression (repeatable, AND-ed).
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Test name regex (repeatable, OR-ed).
    #[arg(long = "test")]
    tests: Vec<String>,
    /// Test name regex to leave out (repeatable).
    #[arg(long = "exclude")]
    excludes: Vec<String>,
}

impl SelectionArgs {
    /// The tree root, when given, and the selection these arguments make.
    fn into_selection(
        self,
    ) -> Result<(Option<PathBuf>, atex::fmf::Selection), atex::fmf::ParseContextError> {
        let selection = atex::fmf::Selection {
            plan: self.plan,
            context: atex::fmf::Context::from_args(&self.context)?,
            filters: self.filters,
            names: self.tests,
            excludes: self.excludes,
        };
        Ok((self.root, selection))
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    selection: SelectionArgs,
    /// Provisioner plugin NAME[:K=V,...] (repeatable) [default: local].
    #[arg(short = 'p', long = "provisioner", value_name = "NAME[:K=V,...]")]
    provisioners: Vec<String>,
    /// Reporter plugin NAME[:K=V,...] (repeatable).
    #[arg(short = 'r', long = "reporter", value_name = "NAME[:K=V,...]")]
    reporters: Vec<String>,
    /// Most systems in use at once [default: the provisioners' limits added up].
    #[arg(long)]
    workers: Option<usize>,
    /// Rerun a failed or errored test up to N times, on a fresh system.
    #[arg(long, value_name = "N")]
    reruns: Option<u32>,
    /// Results directory [default: atex-results/<run id>].
    #[arg(long = "results", value_name = "DIR")]
    results: Option<PathBuf>,
    /// Continue the interrupted or partial run in DIR: tests with a final
    /// result there are kept, the rest run (give the same selection and
    /// provisioners as the first time).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["results", "rerun_failed"])]
    resume: Option<PathBuf>,
    /// Run again only the tests whose final result in DIR is a failure,
    /// into DIR; their earlier results are kept as earlier attempts.
    #[arg(long, value_name = "DIR", conflicts_with = "results")]
    rerun_failed: Option<PathBuf>,
    /// Platform name to file results under, instead of each system's, for
    /// provisioners without a `platform` option of their own. Distinct
    /// platforms are the columns of a matrix: each test runs on each.
    #[arg(long)]
    platform: Option<String>,
    /// A platform's own fmf context, PLATFORM:K=V[,V] (repeatable), over
    /// the -c context: tests are discovered per platform with it.
    #[arg(long = "context-for", value_name = "PLATFORM:K=V")]
    context_for: Vec<String>,
    /// Timing history file [default: .atex-history.json beside DIR].
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
    /// Broken systems a provisioner may produce before it is dropped.
    #[arg(long, value_name = "N")]
    failure_budget: Option<u32>,
    /// Do not start a test whose duration would end after this (e.g. 2h).
    #[arg(long, value_name = "DURATION")]
    deadline: Option<String>,
    /// Everything above from a YAML file; flags given here win.
    #[arg(long, value_name = "FILE.yaml")]
    config: Option<PathBuf>,
    /// Plain progress lines even on a terminal.
    #[arg(long)]
    plain: bool,
    /// Replace a system after every failed attempt, not only after
    /// destructive tests and lost systems.
    #[arg(long)]
    fresh_after_failure: bool,
    #[command(flatten)]
    dirs: PluginDirArgs,
}

fn run_tests(args: RunArgs) -> Result<ExitCode> {
    use atex::scheduler::{self, ProgressMode, RunConfig};
    let specs = |v: &[String]| -> Result<Vec<atex::plugins::PluginSpec>> {
        v.iter()
            .map(|s| Ok(atex::plugins::PluginSpec::parse(s)?))
            .collect()
    };
    let base = match &args.config {
        Some(file) => RunConfig::from_file(file)?,
        None => RunConfig::default(),
    };
    let (root, selection) = args.selection.into_selection()?;
    let mut context_for: Vec<(String, atex::fmf::Context)> = Vec::new();
    for arg in &args.context_for {
        let (platform, pair) = arg
            .split_once(':')
            .filter(|(p, _)| !p.is_empty())
            .ok_or_else(|| anyhow::anyhow!("--context-for {arg}: expected PLATFORM:K=V"))?;
        let pair: atex::fmf::ContextPair = pair
            .parse()
            .with_context(|| format!("--context-for {arg}"))?;
        match context_for.iter_mut().find(|(p, _)| p == platform) {
            Some((_, ctx)) => ctx.extend([pair]),
            None => context_for.push((platform.to_string(), [pair].into_iter().collect())),
        }
    }
    let cli = RunConfig {
        root,
        selection,
        context_for,
        provisioners: specs(&args.provisioners)?,
        reporters: specs(&args.reporters)?,
        plugin_dirs: args.dirs.plugin_dirs,
        workers: args.workers,
        reruns: args.reruns,
        results_dir: args
            .results
            .or_else(|| args.resume.clone())
            .or_else(|| args.rerun_failed.clone()),
        platform: args.platform,
        history: args.history,
        failure_budget: args.failure_budget,
        deadline: args
            .deadline
            .as_deref()
            .map(scheduler::parse_deadline)
            .transpose()?,
        progress: if args.plain {
            ProgressMode::Plain
        } else {
            ProgressMode::Auto
        },
        signals: true,
        continue_run: if args.resume.is_some() {
            Some(scheduler::ContinueRun::Resume)
        } else if args.rerun_failed.is_some() {
            Some(scheduler::ContinueRun::RerunFailed)
        } else {
            None
        },
        decisions: if args.fresh_after_failure {
            std::sync::Arc::new(scheduler::FreshAfterFailure)
        } else {
            std::sync::Arc::new(scheduler::DefaultPolicy)
        },
    };
    let report = scheduler::run(base.overlay(cli))?;
    eprint!(
        "{}",
        report
            .stats
            .render(report.wall, report.interrupted.is_some())
    );
    eprintln!(
        "results: {} (run {})",
        report.results_dir.display(),
        report.run_id
    );
    Ok(ExitCode::from(report.exit_code()))
}
