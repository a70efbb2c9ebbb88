//! atex — Ad-hoc Test EXecution.
//!
//! A toolbox for running FMF (tmt) test suites on pools of systems:
//!
//! - [`fmf`] reads an FMF tree exactly as the reference implementation does
//!   and turns it into tests with their tmt metadata;
//! - [`backend`] defines what a provisioner, a remote system and a reporter
//!   are, as plain Rust traits;
//! - [`plugins`] finds and loads provisioner and reporter plugins (shared
//!   libraries built against `atex-plugin-api`) and adapts them to those
//!   traits;
//! - [`executor`] runs one test on one system;
//! - [`scheduler`] runs many tests on many systems, giving the next test to
//!   whichever system becomes free;
//! - [`results`] stores results on disk as they land.
//!
//! The `atex` binary is a thin front end over these modules.

pub mod backend;
pub mod executor;
#[doc(inline)]
pub use atex_fmf as fmf;
pub mod plugins;
pub mod results;
pub mod scheduler;
