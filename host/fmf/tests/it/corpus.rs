//! The FMF conformance corpus (tests/fmf-corpus/, produced by python fmf
//! 1.7.0) as a data-driven test: every case must match the reference,
//! except reference-dependent cases and documented deliberate differences.

use std::path::Path;

use atex_fmf::testing::{Outcome, run_corpus};

#[test]
fn fmf_corpus_matches_reference() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fmf-corpus");
    let results = run_corpus(&corpus).expect("corpus directory is readable");
    assert!(
        results.len() > 100,
        "corpus not found or incomplete at {}",
        corpus.display()
    );
    let mut failures = String::new();
    let (mut passed, mut skipped) = (0, 0);
    for (name, outcome) in &results {
        match outcome {
            Outcome::Passed => passed += 1,
            Outcome::Skipped(_) => skipped += 1,
            Outcome::Failed(why) => failures.push_str(&format!("FAIL {name}: {why}\n")),
        }
    }
    eprintln!("fmf corpus: {passed} passed, {skipped} skipped");
    assert!(failures.is_empty(), "{failures}");
}
