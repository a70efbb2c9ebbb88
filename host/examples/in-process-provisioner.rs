//! Systems from a provisioner written in plain Rust, with no plugin
//! library: it hands out slots on this machine. Plugins are one way in,
//! not the only one.
//!
//! ```sh
//! cargo run -p atex --example in-process-provisioner -- examples/demo RESULTS_DIR
//! ```

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering::SeqCst},
    },
    time::Duration,
};

use atex::backend::{BackendError, Connection, Provisioner, Remote};
use atex::{fmf, scheduler};

struct Slot(u32, AtomicBool);

impl Remote for Slot {
    fn name(&self) -> String {
        format!("slot-{}", self.0)
    }
    fn platform(&self) -> String {
        "this-machine".into()
    }
    fn connection(&self) -> Result<Connection, BackendError> {
        Ok(Connection::Local)
    }
    fn alive(&self) -> Result<bool, BackendError> {
        Ok(!self.1.load(SeqCst))
    }
    fn release(&self) -> Result<(), BackendError> {
        self.1.store(true, SeqCst);
        Ok(())
    }
}

/// Hands out as many slots as it is asked for, three at a time.
#[derive(Default)]
struct Slots {
    asked: AtomicU32,
    made: AtomicU32,
}

impl Provisioner for Slots {
    fn name(&self) -> String {
        "slots".into()
    }
    fn provision(&self, count: u32) {
        self.asked.fetch_add(count.min(3), SeqCst);
    }
    fn get_remote(&self, _: Duration) -> Result<Option<Box<dyn Remote>>, BackendError> {
        if self
            .asked
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Ok(None);
        }
        let n = self.made.fetch_add(1, SeqCst) + 1;
        Ok(Some(Box::new(Slot(n, AtomicBool::new(false)))))
    }
    fn clear(&self) {
        self.asked.store(0, SeqCst);
    }
    fn max_remotes(&self) -> Option<u32> {
        Some(3)
    }
}

fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tree = args.next().unwrap_or_else(|| "examples/demo".into());
    let results = PathBuf::from(args.next().unwrap_or_else(|| "in-process-results".into()));
    let found = fmf::discover(tree, &fmf::Selection::default())?;
    let run = scheduler::Execution::new(&found, vec![Arc::new(Slots::default())], &results);
    let report = scheduler::execute(run)?;
    println!("results: {}", results.join("results.jsonl").display());
    Ok(std::process::ExitCode::from(report.exit_code()))
}
