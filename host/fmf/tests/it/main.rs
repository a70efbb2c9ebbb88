//! Integration tests of the fmf crate, one binary with a module per concern.

mod corpus;
mod fuzz_smoke;
