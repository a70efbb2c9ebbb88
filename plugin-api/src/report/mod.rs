//! A toolkit for reporter plugins: what a report needs besides its format.
//!
//! atex's own JUnit and HTML reporters are built from these pieces, and a
//! third-party reporter can use them the same way. None of it crosses the
//! ABI: it is plain Rust, compiled into the plugin (cargo feature `report`,
//! on by default).
//!
//! - **Collecting** ([`Collector`]): results arrive one at a time, the
//!   test's own result after its sub-results, every attempt of a rerun
//!   test. The collector groups them per (platform, test) into
//!   [`CollectedTest`]s of [`Attempt`]s with their [`SubResult`]s, and keeps
//!   the log tail of an attempt that will be rerun before the rerun
//!   overwrites the file.
//! - **Statuses**: everything is a [`Status`](crate::Status);
//!   [`Attempt::effective_status`] is the worst of the sub-results when the
//!   test itself reported nothing.
//! - **Text** ([`clean`], [`xml_text`], [`xml_attr`], [`html_text`],
//!   [`truncate_chars`]): ANSI escapes and characters XML 1.0 forbids are
//!   removed, then the markup characters escaped. [`natural_cmp`] orders
//!   names as people count (`/t2` before `/t10`).
//! - **Why a test ended**: [`ResultView::reason`](crate::view::ResultView::reason),
//!   [`ResultView::not_run`](crate::view::ResultView::not_run) and
//!   [`ResultView::exit_code`](crate::view::ResultView::exit_code) read the
//!   keys atex puts in a result's `extra_json`.
//! - **Logs** ([`read_tail`], [`pick_log`]): the last bytes of a log file,
//!   cut at a line and a character boundary.
//! - **Files** ([`ReportFile`], or its parts [`output_path`],
//!   [`check_writable`], [`finish_report`], [`write_atomically`],
//!   [`relative_path`]): where the report goes, a check at construction
//!   that it can be written, and an atomic write (temporary file and
//!   rename) at finish.
//! - **Options** ([`parse_options`]): a plugin's options as a mapping, with
//!   errors that say what is wrong.
//!
//! A minimal reporter, one line per test:
//!
//! ```
//! use std::path::PathBuf;
//! use atex_plugin_api::{
//!     PluginError, report,
//!     sdk::{PluginContext, ReporterImpl, ResultView, SummaryView},
//! };
//!
//! struct Lines(report::ReportFile);
//!
//! impl ReporterImpl for Lines {
//!     fn on_result(&mut self, r: &ResultView) -> Result<(), PluginError> {
//!         Ok(self.0.add(r)?)
//!     }
//!     fn finish(&mut self, _: &SummaryView) -> Result<Vec<PathBuf>, PluginError> {
//!         Ok(self.0.write(|tests, _dir, w| {
//!             for t in tests.sorted() {
//!                 let status = t.last().map(|a| a.effective_status());
//!                 let word = status.as_ref().map_or("-", |s| s.as_str());
//!                 writeln!(w, "{} {} {}", t.platform, word, report::clean(&t.name))?;
//!             }
//!             Ok(())
//!         })?)
//!     }
//! }
//!
//! fn new(ctx: PluginContext) -> Result<Lines, PluginError> {
//!     #[derive(serde::Deserialize, Default)]
//!     #[serde(default, deny_unknown_fields)]
//!     struct Options { output: Option<PathBuf> }
//!     let o: Options = report::parse_options(&ctx)?;
//!     let file = report::ReportFile::new(o.output.as_deref(), ctx.work_dir(), "lines.txt", 0)?;
//!     Ok(Lines(file))
//! }
//! # let _ = new;
//! ```

mod collect;
mod files;
mod text;

use std::{io, path::PathBuf};

pub use collect::{Attempt, CollectedTest, Collector, LogReader, MAX_NOTE_BYTES, SubResult};
pub use files::{
    ReportFile, Spool, SpoolRef, Tail, check_writable, finish_report, output_path, parse_options,
    pick_log, read_tail, relative_path, write_atomically,
};
pub use text::{
    clean, html_text, iso_utc, natural_cmp, seconds, truncate_chars, xml_allowed, xml_attr,
    xml_text,
};

use crate::PluginError;

/// What went wrong while collecting results or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The report cannot be written where it should go.
    #[error("cannot write the report to {}: {source}", path.display())]
    Unwritable {
        /// Where it should go.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// The temporary spool of log tails failed.
    #[error("cannot keep log tails in a temporary file: {source}")]
    Spool {
        /// Why.
        source: io::Error,
    },
}

impl From<Error> for PluginError {
    fn from(e: Error) -> Self {
        PluginError::io(e.to_string())
    }
}
