//! FMF discovery that reads a tree exactly as python fmf 1.7.0 does, and
//! the tmt test model on top of it.
//!
//! This module owns everything between a directory of `.fmf` files and a
//! list of [`Test`]s: YAML as the reference reads it ([`yaml`]), tree
//! loading, inheritance and directives ([`tree`]), the merge operators
//! ([`merge`]), `adjust` and its `when` language ([`context`]), selection
//! and the filter language ([`mod@prune`]), tmt tests and plans ([`tmt`]) and
//! atex's discovery on top ([`discover()`]). It does not run anything.
//!
//! Typical use:
//!
//! ```no_run
//! use atex::fmf::{self, Context, Selection};
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
//! listed in `docs/fmf-compatibility.md` and in [`corpus::DELIBERATE_DIFFERENCES`].

pub mod context;
pub mod corpus;
mod discover;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod libraries;
pub mod merge;
pub mod prune;
pub mod pyre;
pub mod pyval;
pub mod tmt;
pub mod tree;
mod walk;
pub mod yaml;

pub use context::{Context, ContextValue};
pub use discover::{
    DiscoverArgs, DiscoverOutput, Discovery, Selection, cli_discover, discover, discover_in,
    parse_context_args,
};
pub use error::{Error, Result};
pub use prune::{PruneOptions, prune};
pub use tmt::{DiscoverSection, Plan, PrepareStep, Test, parse_duration};
pub use tree::{AdjustOptions, Decision, Node, NodeId, Tree};
