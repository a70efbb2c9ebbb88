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
    PluginError, RunSummary, TestResult, export_plugin,
    sdk::{PluginContext, ReporterImpl},
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
    fn on_result(&mut self, r: &TestResult) -> Result<(), PluginError> {
        let name = match r.subtest.as_ref().into_option() {
            Some(sub) => format!("{}/{}", r.test, sub),
            None => r.test.to_string(),
        };
        writeln!(
            self.out,
            "{} {} {} (attempt {})",
            r.platform, r.status, name, r.attempt
        )
        .map_err(|e| PluginError::io(format!("{}: {e}", self.path.display())))
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<Vec<PathBuf>, PluginError> {
        let counts: Vec<String> = summary
            .counts
            .iter()
            .map(|c| format!("{} {}", c.count, c.status))
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
