//! A template for a third-party atex plugin: a reporter that writes one
//! line per result into a text file.
//!
//! Copy this directory, rename the package, and replace the reporter with
//! what you need. A provisioner is the same shape: implement
//! `sdk::ProvisionerImpl` and `sdk::RemoteImpl` (see atex's `local` plugin)
//! and name the constructor after `provisioner:` in `export_plugin!`.
//!
//! The plugin also describes its options (`atex plugin info template`) and
//! offers a command, `atex template count FILE`, the way a plugin adds
//! commands of its own (atex's `testing-farm` has `whoami`, `requests`,
//! `cancel`, ...).

#![deny(clippy::unwrap_used)]

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use atex_plugin_api::{
    CommandOutput, PluginError, export_plugin, report,
    sdk::{
        CommandContext, CommandSpec, OptionSpec, PluginContext, ReporterImpl, ResultView,
        SummaryView,
    },
};
use serde::Deserialize;

/// The plugin's options, e.g. `-r template:output=/tmp/results.txt`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    /// Where to write; `<results dir>/results.txt` by default.
    output: Option<PathBuf>,
}

struct TextReporter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl ReporterImpl for TextReporter {
    // The host's ABI types arrive as plain views: Strings, Options and a
    // parsed `Status` (`r.status.is_failure()` says whether it failed).
    fn on_result(&mut self, r: &ResultView) -> Result<(), PluginError> {
        let name = match &r.subtest {
            Some(sub) => format!("{}/{}", r.test, sub),
            None => r.test.clone(),
        };
        // Test names may hold anything; `report::clean` drops ANSI escapes
        // and control characters.
        writeln!(
            self.out,
            "{} {} {} (attempt {})",
            r.platform,
            r.status,
            report::clean(&name),
            r.attempt
        )
        .map_err(|e| PluginError::io(format!("{}: {e}", self.path.display())))
    }

    fn finish(&mut self, summary: &SummaryView) -> Result<Vec<PathBuf>, PluginError> {
        let counts: Vec<String> = summary
            .counts
            .iter()
            .map(|(status, count)| format!("{count} {status}"))
            .collect();
        writeln!(self.out, "total: {}", counts.join(", "))
            .and_then(|()| self.out.flush())
            .map_err(|e| PluginError::io(format!("{}: {e}", self.path.display())))?;
        Ok(vec![self.path.clone()])
    }
}

fn new_reporter(ctx: PluginContext) -> Result<TextReporter, PluginError> {
    let config: Config = ctx.parse_config()?;
    let path = config
        .output
        .unwrap_or_else(|| ctx.work_dir().join("results.txt"));
    let file = File::create(&path)
        .map_err(|e| PluginError::config(format!("cannot write {}: {e}", path.display())))?;
    atex_plugin_api::tracing::info!(path = %path.display(), "writing results");
    Ok(TextReporter {
        path,
        out: BufWriter::new(file),
    })
}

/// The options `atex plugin info template` shows: one entry per field of
/// `Config`.
const OPTIONS: &[OptionSpec] = &[OptionSpec::new(
    "output",
    "path",
    "<results dir>/results.txt",
    "Where to write the lines.",
)];

/// The commands: `atex template COMMAND [ARGS]`. `atex template COMMAND
/// --help` prints `help` without calling the handler.
const COMMANDS: &[CommandSpec] = &[CommandSpec {
    name: "count",
    summary: "count the results of each status in a file this reporter wrote",
    help: "usage: atex template count FILE

Reads FILE (written by -r template) and prints `STATUS COUNT` for each
status among its results, most frequent first.",
}];

/// Runs a command. What it returns is printed by atex, which exits with
/// its exit code; an error becomes `atex: template COMMAND: message`.
fn run_command(ctx: &CommandContext) -> Result<CommandOutput, PluginError> {
    match (ctx.command.as_str(), ctx.args.as_slice()) {
        ("count", [file]) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| PluginError::io(format!("{file}: {e}")))?;
            Ok(CommandOutput::text(count(&text)))
        }
        ("count", _) => Err(PluginError::config("usage: atex template count FILE")),
        (other, _) => Err(PluginError::config(format!("no command `{other}`"))),
    }
}

/// `STATUS COUNT` lines for the result lines of `text`.
fn count(text: &str) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with("total: ")) {
        let Some(status) = line.split(' ').nth(1) else {
            continue;
        };
        match counts.iter_mut().find(|(s, _)| s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status.to_string(), 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts.iter().map(|(s, n)| format!("{s} {n}\n")).collect()
}

export_plugin! {
    name: "template",
    version: env!("CARGO_PKG_VERSION"),
    description: "writes one line per result into a text file (a template for plugin authors)",
    reporter: new_reporter,
    options: OPTIONS,
    commands: COMMANDS,
    run_command: run_command,
}

// A plugin's tests construct it with a context that needs no host and feed
// it a synthetic run (`atex-plugin-api` feature `testkit`, enabled in
// `[dev-dependencies]`).
#[cfg(test)]
mod tests {
    use atex_plugin_api::testkit::{SyntheticRun, null_context};

    use super::*;

    #[test]
    fn writes_a_line_per_result_and_the_counts() {
        let run = SyntheticRun::nasty();
        let mut rep =
            new_reporter(null_context("template", "", run.results_dir())).expect("construct");
        let paths = run.feed(&mut rep);
        assert_eq!(paths, [run.results_dir().join("results.txt")]);
        let text = std::fs::read_to_string(&paths[0]).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), run.results().count() + 1);
        // Statuses are parsed: an upper-case word is the status it names.
        assert!(lines.contains(&"fedora-41 fail /nasty/status/FAIL (attempt 1)"));
        assert!(lines.contains(&"fedora-41 pass /nasty/rerun (attempt 3)"));
        assert!(!text.contains('\x1b') && !text.contains('\0'), "{text}");
        assert_eq!(
            lines.last().copied(),
            Some("total: 3 pass, 1 info, 1 skip, 1 warn, 3 fail, 1 error, 1 infra, 1 custom-word")
        );
    }

    #[test]
    fn count_adds_up_each_status() {
        let text = "a pass /x (attempt 1)\na fail /y (attempt 1)\na pass /z (attempt 1)\ntotal: 2 pass, 1 fail\n";
        assert_eq!(count(text), "pass 2\nfail 1\n");
    }

    #[test]
    fn an_unknown_option_is_a_configuration_error() {
        // Options are checked before anything is written.
        let ctx = null_context("template", "bogus: 1", &std::env::temp_dir());
        let e = match new_reporter(ctx) {
            Ok(_) => panic!("an unknown option was accepted"),
            Err(e) => e,
        };
        assert_eq!(e.kind, atex_plugin_api::ErrorKind::CONFIG);
        assert!(e.message.contains("unknown field `bogus`"), "{e}");
    }
}
