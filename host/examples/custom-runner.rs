//! A custom runner in a few lines of the atex library: discover a tree,
//! double every test's duration, run it on podman containers with two
//! reruns for failures, and write a JUnit report.
//!
//! ```sh
//! cargo run -p atex --example custom-runner -- examples/demo RESULTS_DIR [IMAGE]
//! ```

use std::{path::PathBuf, sync::Arc};

use atex::{
    fmf,
    plugins::{PluginHost, PluginRegistry, search_path},
    scheduler::{self, Execution},
};

fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tree = args.next().unwrap_or_else(|| "examples/demo".into());
    let results = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "custom-runner-results".into()),
    );
    let image = args
        .next()
        .unwrap_or_else(|| "localhost/atex-test:bookworm".into());

    let mut found = fmf::discover(&tree, &fmf::Selection::default())?;
    for test in &mut found.tests {
        test.duration *= 2;
    }

    std::fs::create_dir_all(&results)?;
    let registry = PluginRegistry::discover(&search_path(&[]));
    let host = PluginHost::new(scheduler::new_run_id(), &results);
    let plugin = |name: &str| registry.get(name).ok_or(format!("no plugin {name}"));
    let podman = plugin("podman")?.new_provisioner(&host, &format!("image: {image}\nmax: 2"))?;
    let junit = plugin("junit")?.new_reporter(&host, "")?;

    let mut run = Execution::new(&found, vec![Arc::new(podman)], &results);
    run.reporters.push(Box::new(junit));
    run.policy.reruns = 2;
    run.plugin_cancel = Some(Arc::clone(&host.cancel));
    run.run_id = host.run_id.clone();
    let report = scheduler::execute(run)?;
    println!("junit: {}", results.join("junit.xml").display());
    Ok(std::process::ExitCode::from(report.exit_code()))
}
