//! Fuzz FMF tree loading, YAML, the `when` parser, filters and regexes
//! (the body is `atex::fmf::fuzzing::fuzz_one`, shared with the plain
//! smoke test in host/fmf/tests/fuzz_smoke.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    atex::fmf::fuzzing::fuzz_one(data);
});
