//! Run an FMF conformance corpus (the format of `tests/fmf-corpus/`) and
//! print one block per failing case with a diff, then
//! `N passed, N failed, N skipped`. Exits 0 only when nothing failed.
//!
//! `cargo run --release -p atex-fmf --example fmf-corpus -- DIR [-v]`

use std::{path::PathBuf, process::ExitCode};

use atex_fmf::testing::{Outcome, run_corpus};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: fmf-corpus DIR [-v]");
        return ExitCode::from(2);
    };
    let verbose = args.any(|a| a == "-v" || a == "--verbose");
    let results = match run_corpus(&PathBuf::from(&dir)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot read {dir}: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, outcome) in &results {
        match outcome {
            Outcome::Passed => passed += 1,
            Outcome::Failed(why) => {
                failed += 1;
                println!("FAIL {name}: {}", why.trim_end());
            }
            Outcome::Skipped(why) => {
                skipped += 1;
                if verbose {
                    println!("SKIP {name}: {why}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
