//! A template for a third-party atex plugin: a reporter that writes one
//! line per result into a text file.
//!
//! Copy this directory, rename the package, and replace the reporter with
//! what you need. A provisioner is the same shape: implement
//! `sdk::ProvisionerImpl` and `sdk::RemoteImpl` (see atex's `local` plugin)
//! and name the constructor after `provisioner:` in `export_plugin!`.

#![deny(clippy::unwrap_used)]

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use atex_plugin_api::{
    PluginError, export_plugin, report,
    sdk::{PluginContext, ReporterImpl, ResultView, SummaryView},
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

export_plugin! {
    name: "template",
    version: env!("CARGO_PKG_VERSION"),
    description: "writes one line per result into a text file (a template for plugin authors)",
    reporter: new_reporter,
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
