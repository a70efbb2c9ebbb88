//! A run watched through its events: every [`RunEvent`] is printed as one
//! JSON line on standard output, while the results land in the results
//! directory as usual. The terminal display is off; this sink is the only
//! view of the run.
//!
//! ```sh
//! cargo run -p atex --example event-sink -- examples/demo RESULTS_DIR
//! ```

use std::{
    io::Write,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

use atex::{
    BackendError, fmf,
    plugins::{PluginHost, PluginRegistry, search_path},
    scheduler::{self, EventSink, ProgressMode, RunEvent},
};

/// Writes each event as a JSON line; progress ticks are left out.
struct JsonLines<W: Write + Send>(W);

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn name(&self) -> String {
        "json lines".into()
    }
    fn on_event(&mut self, event: &RunEvent) -> Result<(), BackendError> {
        if matches!(event, RunEvent::Progress { .. }) {
            return Ok(());
        }
        let line = serde_json::to_string(event)
            .map_err(|e| BackendError::new("json lines", e.to_string()))?;
        writeln!(self.0, "{line}").map_err(|e| BackendError::new("json lines", e.to_string()))
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tree = args.next().unwrap_or_else(|| "examples/demo".into());
    let results = PathBuf::from(args.next().unwrap_or_else(|| "event-sink-results".into()));
    let found = fmf::discover(tree, &fmf::Selection::default())?;

    // Systems from the `local` plugin, found beside this program or in
    // $ATEX_PLUGIN_PATH, like `atex run` finds it.
    let registry = PluginRegistry::discover(&search_path(&[]));
    let local = registry
        .get("local")
        .ok_or("the local plugin was not found")?;
    let host = PluginHost::new("event-sink-example", results.clone());
    let provisioner = local.new_provisioner(&host, "max: 2")?;

    let mut run = scheduler::Execution::new(&found, vec![Arc::new(provisioner)], &results);
    run.progress = ProgressMode::Quiet;
    let finished = Arc::new(Mutex::new(0u32));
    let count = Arc::clone(&finished);
    run.sinks.push(Box::new(JsonLines(std::io::stdout())));
    // A closure is a sink too.
    run.sinks.push(Box::new(move |event: &RunEvent| {
        if let RunEvent::TestFinished { .. } | RunEvent::TestNotRun { .. } = event
            && let Ok(mut n) = count.lock()
        {
            *n += 1;
        }
    }));
    let report = scheduler::execute(run)?;
    let n = finished.lock().map(|n| *n).unwrap_or(0);
    eprintln!("{n} tests finished; results in {}", results.display());
    Ok(ExitCode::from(report.exit_code()))
}
