//! `atex reserve`: one system from any provisioner plugin, for a person.
//!
//! It goes through the same plugin ABI a run uses, so it works for every
//! provisioner, ours and third parties'. It prints how to reach the system
//! (the command line of [`shell_argv`]), opens that shell when run on a
//! terminal, and releases the system when the shell exits, on Ctrl-C or
//! SIGTERM, or when `--for` runs out. Without a terminal (or with
//! `--no-shell`) it holds the system until one of the latter.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use atex::{
    backend::{Provisioner, Remote},
    executor::{shell_argv, shell_join},
    plugins::{PluginHost, PluginRegistry, PluginSpec, search_path},
};
use clap::Args;

use crate::PluginDirArgs;

#[derive(Args)]
pub(crate) struct ReserveArgs {
    /// Provisioner plugin NAME[:K=V,...] to get the system from.
    #[arg(short = 'p', long = "provisioner", value_name = "NAME[:K=V,...]")]
    provisioner: String,
    /// Release after this long (e.g. 30m, 2h), even if the shell is open.
    #[arg(long = "for", value_name = "DURATION")]
    hold_for: Option<String>,
    /// Seconds to wait for the system.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Print how to reach the system and hold it, without opening a shell,
    /// even on a terminal.
    #[arg(long)]
    no_shell: bool,
    #[command(flatten)]
    dirs: PluginDirArgs,
}

/// SIGINT and SIGTERM as flags; a second Ctrl-C while the first is being
/// handled exits at once (status 130).
struct Signals {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Signals> {
        use signal_hook::{
            consts::{SIGINT, SIGTERM},
            flag,
        };
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&int))
            .context("cannot handle SIGINT")?;
        flag::register(SIGINT, Arc::clone(&int)).context("cannot handle SIGINT")?;
        flag::register_conditional_shutdown(SIGTERM, 143, Arc::clone(&term))
            .context("cannot handle SIGTERM")?;
        flag::register(SIGTERM, Arc::clone(&term)).context("cannot handle SIGTERM")?;
        Ok(Signals { int, term })
    }

    fn any(&self) -> bool {
        self.int.load(Ordering::SeqCst) || self.term.load(Ordering::SeqCst)
    }
}

/// Why the reservation ended.
enum End {
    ShellExited,
    TimeUp,
    Signal,
    Gone,
}

pub(crate) fn reserve(args: ReserveArgs) -> Result<ExitCode> {
    let signals = Signals::register()?;
    let hold_for = args
        .hold_for
        .as_deref()
        .map(atex::scheduler::parse_deadline)
        .transpose()?;
    let spec = PluginSpec::parse(&args.provisioner)?;
    let registry = PluginRegistry::discover(&search_path(&args.dirs.plugin_dirs));
    let plugin = registry.get(&spec.name).ok_or_else(|| {
        let known: Vec<&str> = registry
            .plugins()
            .iter()
            .filter(|p| p.is_provisioner())
            .map(|p| p.name())
            .collect();
        anyhow!(
            "no provisioner plugin named `{}` (found: {})",
            spec.name,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )
    })?;
    if !plugin.is_provisioner() {
        bail!("plugin `{}` is not a provisioner", spec.name);
    }
    let work = tempfile::Builder::new()
        .prefix("atex-reserve-")
        .tempdir()
        .context("cannot create a work directory")?;
    let run_id = format!("reserve-{}", atex::scheduler::new_run_id());
    let host = PluginHost::new(run_id, PathBuf::from(work.path()));
    let prov = plugin
        .new_provisioner(&host, &spec.config_text())
        .map_err(|e| anyhow!("{e}"))?;
    prov.start()
        .map_err(|e| anyhow!("provisioner {} failed to start: {e}", spec.name))?;

    let Some(remote) = wait_for_remote(&prov, &signals, Duration::from_secs(args.timeout))? else {
        let _ = prov.stop();
        eprintln!("atex: interrupted before a system was ready; nothing is reserved");
        return Ok(ExitCode::from(130));
    };
    let end = hold(
        remote.as_ref(),
        &spec.name,
        &signals,
        hold_for,
        args.no_shell,
    );
    let name = remote.name();
    let released = remote.release();
    let stopped = prov.stop();
    match &end {
        Ok(End::ShellExited) => eprintln!("atex: the shell exited; released {name}"),
        Ok(End::TimeUp) => eprintln!("atex: time is up; released {name}"),
        Ok(End::Signal) => eprintln!("atex: released {name}"),
        Ok(End::Gone) => eprintln!("atex: {name} is no longer alive; released it"),
        Err(_) => {}
    }
    end?;
    released.map_err(|e| anyhow!("cannot release {name}: {e}"))?;
    stopped.map_err(|e| anyhow!("cannot stop provisioner {}: {e}", spec.name))?;
    Ok(ExitCode::SUCCESS)
}

fn wait_for_remote(
    prov: &dyn Provisioner,
    signals: &Signals,
    timeout: Duration,
) -> Result<Option<Box<dyn Remote>>> {
    prov.provision(1);
    let start = Instant::now();
    loop {
        if signals.any() {
            return Ok(None);
        }
        match prov.get_remote(Duration::from_millis(250)) {
            Ok(Some(r)) => return Ok(Some(r)),
            Ok(None) if start.elapsed() < timeout => {}
            Ok(None) => {
                let _ = prov.stop();
                bail!("no system within {} s", timeout.as_secs());
            }
            Err(e) => {
                let _ = prov.stop();
                bail!("cannot get a system: {e}");
            }
        }
    }
}

fn hold(
    remote: &dyn Remote,
    provisioner: &str,
    signals: &Signals,
    hold_for: Option<Duration>,
    no_shell: bool,
) -> Result<End> {
    let conn = remote
        .connection()
        .map_err(|e| anyhow!("cannot get the connection of {}: {e}", remote.name()))?;
    let argv = shell_argv(&conn);
    let deadline = hold_for.map(|d| Instant::now() + d);
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "reserved {} (platform {}) from {provisioner}, reached by {conn}",
            remote.name(),
            remote.platform()
        )?;
        writeln!(out, "connect: {}", shell_join(&argv))?;
        out.flush()?;
    }
    let time_up = || deadline.is_some_and(|d| Instant::now() >= d);
    let interactive =
        !no_shell && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if interactive {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| anyhow!("no shell command for {conn}"))?;
        loop {
            let mut child = std::process::Command::new(program)
                .args(rest)
                .spawn()
                .with_context(|| format!("cannot run {program}"))?;
            let status = loop {
                // Ctrl-C belongs to the shell here; only SIGTERM and the
                // time limit end the reservation from outside.
                signals.int.store(false, Ordering::SeqCst);
                if let Some(status) = child.try_wait()? {
                    break status;
                }
                let end = if signals.term.load(Ordering::SeqCst) {
                    Some(End::Signal)
                } else if time_up() {
                    Some(End::TimeUp)
                } else {
                    None
                };
                if let Some(end) = end {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(end);
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            // ssh itself failed (255): the connection dropped, e.g. the
            // system rebooted. Reconnect while it is still ours.
            let lost = matches!(conn, atex::Connection::Ssh(_)) && status.code() == Some(255);
            if !lost || !matches!(remote.alive(), Ok(true)) {
                return Ok(End::ShellExited);
            }
            eprintln!(
                "atex: the connection to {} was lost; reconnecting in 3 s (Ctrl-C to release it)",
                remote.name()
            );
            let retry_at = Instant::now() + Duration::from_secs(3);
            while Instant::now() < retry_at {
                if signals.any() {
                    return Ok(End::Signal);
                }
                if time_up() {
                    return Ok(End::TimeUp);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    eprintln!(
        "atex: holding {} until Ctrl-C or SIGTERM{}",
        remote.name(),
        hold_for.map_or(String::new(), |d| format!(", at most {}", humanize(d)))
    );
    let mut last_check = Instant::now();
    loop {
        if signals.any() {
            return Ok(End::Signal);
        }
        if time_up() {
            return Ok(End::TimeUp);
        }
        if last_check.elapsed() >= Duration::from_secs(5) {
            last_check = Instant::now();
            if matches!(remote.alive(), Ok(false)) {
                return Ok(End::Gone);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 && s > 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
