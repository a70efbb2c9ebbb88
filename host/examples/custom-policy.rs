//! A run with its own scheduling policy and setup step:
//!
//! - every new system gets a "build under test" before its first test
//!   (here a file written by a shell command; a real one would install a
//!   package), through [`SystemSetup`];
//! - a system is replaced after any failed attempt, not only after
//!   destructive tests, through [`SchedulePolicy::replace_system`].
//!
//! Systems come from the `local` plugin. Prints one line per system set up.
//!
//! ```sh
//! cargo run -p atex --example custom-policy -- TREE RESULTS_DIR
//! ```

use std::{
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, Mutex},
};

use atex::{
    CancelToken, ExecError, fmf,
    plugins::{PluginHost, PluginRegistry, search_path},
    scheduler::{
        self, AttemptEnd, DefaultPolicy, ExecSystem, ProgressMode, QueuedTest, SchedulePolicy,
        SystemSetup,
    },
};

/// atex's decisions, plus a fresh system after every failure.
struct FreshAfterAnyFailure;

impl SchedulePolicy for FreshAfterAnyFailure {
    fn replace_system(&self, test: &QueuedTest, end: &AttemptEnd) -> bool {
        end.failed || DefaultPolicy.replace_system(test, end)
    }
}

/// Puts the build under test on each new system.
struct InstallBuild {
    build: String,
    file: PathBuf,
    systems: Mutex<Vec<String>>,
}

impl SystemSetup for InstallBuild {
    fn setup(
        &self,
        name: &str,
        _platform: &str,
        system: &mut dyn ExecSystem,
        cancel: &CancelToken,
    ) -> Result<(), ExecError> {
        let script = format!("echo {} > {}", self.build, self.file.display());
        let out = system.run_command(&script, cancel)?;
        if out.exit_code != Some(0) {
            return Err(ExecError::Setup {
                system: name.into(),
                detail: format!("installing the build failed: {}", out.output),
            });
        }
        if let Ok(mut s) = self.systems.lock() {
            s.push(name.to_string());
        }
        println!("set up {name} with {}", self.build);
        Ok(())
    }
}

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tree = args.next().ok_or("usage: custom-policy TREE RESULTS_DIR")?;
    let results = PathBuf::from(args.next().ok_or("usage: custom-policy TREE RESULTS_DIR")?);
    let found = fmf::discover(tree, &fmf::Selection::default())?;

    let registry = PluginRegistry::discover(&search_path(&[]));
    let local = registry
        .get("local")
        .ok_or("the local plugin was not found")?;
    let host = PluginHost::new("custom-policy-example", results.clone());
    let provisioner = local.new_provisioner(&host, "max: 1")?;

    let setup = Arc::new(InstallBuild {
        build: "build-42".into(),
        file: std::env::temp_dir().join(format!("atex-build-under-test-{}", std::process::id())),
        systems: Mutex::new(Vec::new()),
    });
    let mut run = scheduler::Execution::new(&found, vec![Arc::new(provisioner)], &results);
    run.progress = ProgressMode::Quiet;
    run.decisions = Arc::new(FreshAfterAnyFailure);
    run.setup = Some(Arc::clone(&setup) as Arc<dyn SystemSetup>);
    // The tests find the build where the setup put it.
    run.tests = run
        .tests
        .iter()
        .map(|mut t| {
            t.spec
                .environment
                .push(("BUILD_FILE".into(), setup.file.display().to_string()));
            t
        })
        .collect();
    let report = scheduler::execute(run)?;
    let _ = std::fs::remove_file(&setup.file);
    let systems = setup.systems.lock().map(|s| s.len()).unwrap_or(0);
    println!("{systems} systems set up; results in {}", results.display());
    Ok(ExitCode::from(report.exit_code()))
}
