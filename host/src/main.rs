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
    pub(crate) mod plugin_cmd;
    pub(crate) mod reserve;
}

/// Exit code for usage, configuration and infrastructure errors.
const EXIT_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "atex",
    version,
    about = "Ad-hoc Test EXecution: run FMF test suites on pools of systems",
    after_help = "Plugins may offer commands of their own: atex PLUGIN COMMAND [ARGS]\n\
                  (e.g. atex testing-farm requests --mine); `atex plugins` shows which\n\
                  plugins have some, `atex PLUGIN --help` lists them."
)]
struct Cli {
    /// More log output (-v: info, -vv: debug, -vvv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Colours on stderr: auto (on a terminal, unless NO_COLOR is set),
    /// always or never. Also the log lines of -v.
    #[arg(long, value_name = "WHEN", default_value = "auto", global = true)]
    color: atex::scheduler::ColorChoice,

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
    /// `atex PLUGIN COMMAND [ARGS]`: a command a plugin offers (e.g.
    /// `atex testing-farm whoami`); `atex PLUGIN --help` lists them.
    #[command(external_subcommand)]
    External(Vec<String>),
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
    /// Show a plugin's options (type, default, description) and commands,
    /// as the plugin itself describes them.
    Info(InfoArgs),
}

#[derive(Args)]
struct InfoArgs {
    /// The plugin's name, as after -p or -r.
    name: String,
    #[command(flatten)]
    dirs: PluginDirArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
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

fn init_logging(verbose: u8, color: atex::scheduler::ColorChoice) {
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
        // Log lines go above the live display, not through it.
        .with_writer(atex::scheduler::StderrLog::default)
        // No escape sequences into a file, a pipe or a NO_COLOR terminal.
        .with_ansi(color.stderr())
        .init();
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_logging(cli.verbose, cli.color);
    let outcome = match cli.command {
        Command::Plugins(args) => list_plugins(&args),
        Command::Plugin(PluginCommand::Check(args)) => check_plugin(&args),
        Command::Plugin(PluginCommand::Info(args)) => cli::plugin_cmd::plugin_info(&args),
        Command::External(args) => cli::plugin_cmd::run_plugin_command(&args),
        Command::Run(args) => run_tests(*args, cli.color),
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
            "{:<14} {:<8} {:<22} api {:<7} {}{}",
            d.name,
            d.version,
            d.kinds.join("+"),
            d.api_version,
            d.path.display(),
            cli::plugin_cmd::commands_note(d)
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

/// A command line clap refused: help and version as clap prints them, an
/// error as one line naming the option (and where to read more).
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.use_stderr() {
            ExitCode::from(EXIT_ERROR)
        } else {
            ExitCode::SUCCESS
        };
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("bad command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("atex: {first} (see `atex help`)");
    ExitCode::from(EXIT_ERROR)
}

/// Test selection, as `atex discover` and `atex run` take it.
#[derive(Args)]
pub(crate) struct SelectionArgs {
    /// FMF tree root, or any directory inside the tree [default: .].
    root: Option<PathBuf>,
    /// Take the tree from this git repository instead of ROOT (an fmf id
    /// with --ref and --path; fetched once into ~/.cache/atex/git).
    #[arg(long, value_name = "URL", conflicts_with = "root")]
    url: Option<String>,
    /// Branch, tag or commit of --url [default: its default branch].
    #[arg(long = "ref", value_name = "REF", requires = "url")]
    git_ref: Option<String>,
    /// The fmf root inside the --url repository.
    #[arg(long, value_name = "PATH", requires = "url")]
    path: Option<String>,
    /// URL template of `library(repo/lib)` requirements, `{repository}`
    /// standing for `repo` [default: https://github.com/beakerlib/{repository}].
    #[arg(long, value_name = "TEMPLATE")]
    library_url: Option<String>,
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
    /// The fmf id of `--url`, `--ref`, `--path`.
    fn fmf_id(&self) -> Option<atex::remote::FmfId> {
        self.url.as_ref().map(|url| atex::remote::FmfId {
            url: url.clone(),
            git_ref: self.git_ref.clone(),
            path: self.path.clone(),
        })
    }

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
    /// Provisioner plugin NAME[:K=V,...] (repeatable) [default: local];
    /// `atex plugin info NAME` lists its options.
    #[arg(short = 'p', long = "provisioner", value_name = "NAME[:K=V,...]")]
    provisioners: Vec<String>,
    /// Reporter plugin NAME[:K=V,...] (repeatable); `atex plugin info NAME`
    /// lists its options.
    #[arg(short = 'r', long = "reporter", value_name = "NAME[:K=V,...]")]
    reporters: Vec<String>,
    /// Most systems in use at once [default: the provisioners' limits added up].
    #[arg(long, allow_negative_numbers = true)]
    workers: Option<usize>,
    /// Rerun a failed or errored test up to N times, on a fresh system.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
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
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
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
    /// Only failures as they land (no running tests, no heartbeat), then
    /// the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Which finished tests get a line: none, fail (failures only), retry
    /// (and attempts that run again), pass (every test) or all (and, when
    /// not on a terminal, a line as each test starts).
    #[arg(long, value_name = "LEVEL", default_value = "all")]
    status_level: atex::scheduler::StatusLevel,
    /// Start no more tests once N tests failed (fail, error, warn, infra);
    /// running tests finish, the others are reported as not run.
    #[arg(long, value_name = "N")]
    max_fail: Option<u32>,
    /// When not on a terminal, a line saying what runs this often
    /// (e.g. 30s, 2m; 0 for never).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    heartbeat: String,
    /// Lines of output shown for each failed test at the end of the run
    /// (0: none).
    #[arg(
        long,
        value_name = "N",
        default_value_t = atex::results::DEFAULT_FAILURE_OUTPUT_LINES,
        allow_negative_numbers = true
    )]
    failure_output_lines: usize,
    /// Replace a system after every failed attempt, not only after
    /// destructive tests and lost systems.
    #[arg(long)]
    fresh_after_failure: bool,
    #[command(flatten)]
    dirs: PluginDirArgs,
}

fn run_tests(args: RunArgs, color: atex::scheduler::ColorChoice) -> Result<ExitCode> {
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
    let fmf_id = args.selection.fmf_id();
    let library_url = args.selection.library_url.clone();
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
        max_fail: args.max_fail,
        progress: if args.plain {
            ProgressMode::Plain
        } else {
            ProgressMode::Auto
        },
        display: scheduler::DisplayOptions {
            color,
            status_level: args.status_level,
            quiet: args.quiet,
            heartbeat: scheduler::parse_deadline(&args.heartbeat)
                .with_context(|| format!("--heartbeat {}", args.heartbeat))?,
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
        fmf_id,
        library_url,
    };
    let report = scheduler::run(base.overlay(cli))?;
    eprint!(
        "{}",
        report.stats.render_with(
            report.wall,
            report.interrupted.is_some(),
            args.failure_output_lines
        )
    );
    eprintln!(
        "results: {} (run {})",
        report.results_dir.display(),
        report.run_id
    );
    Ok(ExitCode::from(report.exit_code()))
}
