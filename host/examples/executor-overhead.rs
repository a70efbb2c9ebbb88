//! Measures the executor's cost per test: runs N tests that do nothing, one
//! after another on one system, and prints the wall time per test.
//!
//! ```sh
//! cargo run --release -p atex --example executor-overhead -- local 100
//! cargo run --release -p atex --example executor-overhead -- podman localhost/atex-test:bookworm 100
//! ```

use std::{process::Command, time::Instant};

use atex::{
    backend::Connection,
    executor::{CancelToken, PlanSpec, System, SystemOptions, TestSpec},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (connection, count, container) = match args.first().map(String::as_str) {
        Some("local") => (Connection::Local, args.get(1), None),
        Some("podman") => {
            let image = args.get(1).ok_or("podman needs an image")?;
            let out = Command::new("podman")
                .args([
                    "run",
                    "-d",
                    "--rm",
                    "--label",
                    "atex.test=executor-overhead",
                    image,
                    "sleep",
                    "infinity",
                ])
                .output()?;
            if !out.status.success() {
                return Err(String::from_utf8_lossy(&out.stderr).into());
            }
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let prefix = vec!["podman".into(), "exec".into(), "-i".into(), id.clone()];
            (Connection::Command(prefix), args.get(2), Some(id))
        }
        _ => return Err("usage: executor-overhead local [N] | podman IMAGE [N]".into()),
    };
    let count: u32 = count.map_or(Ok(100), |c| c.parse())?;
    let tree = tempfile::tempdir()?;
    std::fs::create_dir(tree.path().join("t"))?;
    let result = (|| -> Result<f64, Box<dyn std::error::Error>> {
        let mut system = System::open("bench", connection, &SystemOptions::default())?;
        system.setup(tree.path(), &PlanSpec::default(), &CancelToken::new())?;
        let start = Instant::now();
        for i in 0..count {
            let test = TestSpec {
                name: format!("/noop-{i}"),
                rel_dir: "t".into(),
                script: "true".into(),
                duration: std::time::Duration::from_secs(60),
                environment: Vec::new(),
                require: Vec::new(),
                recommend: Vec::new(),
                tty: false,
                metadata: serde_json::json!({}),
            };
            let artifacts = tempfile::tempdir()?;
            let outcome = system.run_test(&test, artifacts.path(), &[], &CancelToken::new())?;
            if outcome.status != atex::Status::Pass {
                return Err(format!("{}: {} {:?}", test.name, outcome.status, outcome.note).into());
            }
        }
        let per_test = start.elapsed().as_secs_f64() / f64::from(count);
        system.close();
        Ok(per_test)
    })();
    if let Some(id) = container {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &id])
            .output();
    }
    let per_test = result?;
    println!(
        "atex: {count} no-op tests, {:.1} ms per test",
        per_test * 1000.0
    );
    Ok(())
}
