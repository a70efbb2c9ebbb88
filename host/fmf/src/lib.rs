//! FMF discovery that reads a tree exactly as python fmf 1.7.0 does, and
//! the tmt test model on top of it.
//!
//! This crate owns everything between a directory of `.fmf` files and a
//! list of [`Test`]s: YAML as the reference reads it, tree loading,
//! inheritance, directives and the merge operators ([`Tree`]), `adjust`
//! and its `when` language ([`Context`], [`Evaluator`]), selection and the
//! filter language ([`prune()`], [`filter_matches`]), tmt tests and plans
//! ([`Test`], [`Plan`]) and atex's discovery on top ([`discover()`],
//! [`discover_into`]). It does not run anything.
//!
//! Typical use:
//!
//! ```no_run
//! use atex_fmf::{self as fmf, Context, Selection};
//!
//! let selection = Selection {
//!     plan: Some("/plans/ci".into()),
//!     context: Context::new().with("distro", ["fedora-40"]),
//!     filters: vec!["tag: -slow".into()],
//!     ..Selection::default()
//! };
//! let mut found = fmf::discover("path/to/tree", &selection)?;
//! for test in &mut found.tests {
//!     test.duration *= 2; // edit metadata before running
//!     println!("{} in {} ({:?})", test.name, test.source_dir.display(), test.duration);
//! }
//! # Ok::<(), fmf::Error>(())
//! ```
//!
//! Where this implementation deliberately differs from the reference is
//! listed in `docs/fmf-compatibility.md`.

mod context;
mod corpus;
mod discover;
mod error;
mod fuzzing;
mod libraries;
mod merge;
mod prune;
mod pyre;
mod pyval;
mod tmt;
mod tree;
mod walk;
mod yaml;

pub use context::{Context, ContextPair, ContextValue, Evaluator, ParseContextError, RuleError};
pub use discover::{
    Discovery, Selection, Streamed, TestSink, discover, discover_fetching, discover_in,
    discover_into, discover_sections, discover_streamed, read_plan,
};
pub use error::{Error, Result};
pub use libraries::{LocalLibrary, local_libraries};
pub use prune::{PruneOptions, filter_matches, prune};
pub use tmt::{
    DEFAULT_DURATION, DiscoverSection, MetadataError, Plan, PrepareStep, Test, parse_duration,
};
pub use tree::{AdjustOptions, Decision, Directives, Node, NodeId, Tree};

/// Hooks for the conformance corpus runner, the fuzz targets and their
/// tests; not part of the API.
#[doc(hidden)]
pub mod testing {
    pub use crate::corpus::{DELIBERATE_DIFFERENCES, Outcome, run_case, run_corpus};
    pub use crate::fuzzing::{check_simple_map, fuzz_one};
}
