//! atex — Ad-hoc Test EXecution.
//!
//! A toolbox for running FMF (tmt) test suites on pools of systems. Each
//! step is usable on its own; the `atex` binary is a thin front end that
//! chains them.
//!
//! | step | what | entry points |
//! |---|---|---|
//! | discover | read an FMF tree exactly as python fmf does | [`fmf::discover`], [`fmf::Selection`] |
//! | provision | get systems from plugins or plain Rust | [`PluginRegistry`], [`Provisioner`], [`Remote`] |
//! | execute | run one test on one system | [`System`], [`TestSpec`], [`TestOutcome`] |
//! | schedule | run many tests on many systems, free-worker | [`execute`], [`Execution`], [`run`], [`RunConfig`] |
//! | watch | typed events of a run, to your own sink | [`RunEvent`], [`EventSink`] |
//! | store | the results directory, timing history | [`ResultsStore`], [`TimingHistory`] |
//! | report | reporters, in plain Rust or as plugins | [`Reporter`], [`ReportedResult`], [`RunSummary`] |
//!
//! A status means the same everywhere: [`Status`].
//!
//! The modules hold the rest of each step:
//!
//! - [`fmf`] reads an FMF tree and turns it into tests with their tmt
//!   metadata;
//! - [`backend`] defines what a provisioner, a remote system and a reporter
//!   are, as plain Rust traits;
//! - [`plugins`] finds and loads provisioner and reporter plugins (shared
//!   libraries built against `atex-plugin-api`) and adapts them to those
//!   traits;
//! - [`executor`] runs one test on one system;
//! - [`scheduler`] runs many tests on many systems, giving the next test to
//!   whichever system becomes free;
//! - [`results`] stores results on disk as they land;
//! - [`remote`] fetches tests and libraries from other git repositories
//!   (remote discover sections, fmf ids, BeakerLib libraries).

pub mod backend;
pub mod executor;
#[doc(inline)]
pub use atex_fmf as fmf;
pub mod plugins;
pub mod remote;
pub mod results;
pub mod scheduler;

pub use atex_plugin_api::Status;
pub use backend::{
    BackendError, Connection, Provisioner, Remote, ReportedResult, Reporter, RunSummary,
};
pub use executor::{
    CancelToken, CommandOutput, ExecError, System, SystemOptions, TestOutcome, TestSpec,
};
pub use plugins::{PluginHost, PluginRegistry, PluginSpec};
pub use results::{ResultsStore, TimingHistory};
pub use scheduler::{
    EventSink, Execution, Policy, RunConfig, RunError, RunEvent, RunReport, execute, run,
};
