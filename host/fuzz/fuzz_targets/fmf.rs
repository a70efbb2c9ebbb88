//! Fuzz FMF tree loading, YAML, the `when` parser, filters and regexes
//! (the body is `atex::fmf::testing::fuzz_one`, shared with the plain
//! smoke test in host/fmf/tests/fuzz_smoke.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    atex::fmf::testing::fuzz_one(data);
});
