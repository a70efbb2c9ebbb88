//! The results of a run, on disk as they land.
//!
//! - [`ResultsStore`]: `results.jsonl` in upstream's line format
//!   `[platform, status, test, subtest|null, files, note|null]`, the files
//!   under `files/<platform>/<test>/...`, and everything else about each
//!   attempt (durations, attempts, systems) in `attempts.jsonl` beside it;
//! - [`TimingHistory`]: measured test runtimes kept between runs, so the next run
//!   can start the longest tests first;
//! - [`RunStats`]: what a run did, for the end-of-run report and
//!   `summary.json`;
//! - JSON text is written exactly as Python's `json.dumps` writes it.
//!
//! Every line is written and flushed as soon as its test finishes: a crash
//! or `kill -9` loses nothing already finished.

mod history;
mod pyjson;
mod store;
mod summary;

pub use history::{HistoryError, TimingHistory};
pub use store::{AttemptInfo, Reopened, ResultsError, ResultsStore, normalize_path};
pub use summary::{
    DEFAULT_FAILURE_OUTPUT_LINES, FinalTest, RunStats, first_line, sanitize_line, sanitize_text,
    why_failed,
};
