//! Fuzzes the test-control stream parser: arbitrary bytes, split into
//! arbitrary chunks, must never panic, and whatever is written stays in the
//! artifacts directory.
#![no_main]

use atex::executor::control::{ControlParser, ResultWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let Ok(outer) = tempfile::tempdir() else {
        return;
    };
    let dir = outer.path().join("artifacts");
    if std::fs::create_dir(&dir).is_err() {
        return;
    }
    let Ok(mut writer) = ResultWriter::create(&dir) else {
        return;
    };
    let mut parser = ControlParser::new();
    let chunk = usize::from(split % 64) + 1;
    for piece in stream.chunks(chunk) {
        if parser.feed(piece, &mut writer).is_err() {
            break;
        }
    }
    let _ = parser.finish();
    let _ = writer.finish(Some(0), None);
    // Nothing may appear next to the artifacts directory.
    let entries: Vec<_> = std::fs::read_dir(outer.path())
        .map(|d| d.filter_map(Result::ok).collect())
        .unwrap_or_default();
    assert_eq!(
        entries.len(),
        1,
        "something was written outside the artifacts directory"
    );
});
