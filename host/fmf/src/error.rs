//! Errors of FMF discovery: one enum for loading, adjusting, pruning and
//! reading tmt metadata.
//!
//! Every message names what the user has to look at: the file (and the line
//! where the YAML parser knows it) for loading errors, the node for merge,
//! directive and adjust errors, the test for metadata errors. Nothing in this
//! crate panics on input; it returns one of these instead.

use std::path::PathBuf;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error while discovering tests in an FMF tree.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No `.fmf` directory in the start directory or any of its parents.
    #[error("unable to find an fmf tree root (a directory with .fmf/) for '{}'", path.display())]
    Root {
        /// The directory the search started from.
        path: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// `.fmf/version` is missing or is not an integer.
    #[error("{}: {message}", path.display())]
    Version {
        /// The version file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A YAML file could not be parsed (syntax, duplicate key, several
    /// documents, invalid UTF-8, ...).
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line, where the parser knows it.
        line: Option<usize>,
        /// What went wrong.
        message: String,
    },
    /// `.fmf/config` has an invalid `explore.include`.
    #[error("{}: {message}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file holds data fmf cannot turn into nodes (a top-level list, a
    /// null or non-string key, a non-mapping child value, ...).
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An invalid `/` directive.
    #[error("{} (node '{node}'): invalid fmf directive: {message}", path.display())]
    Directive {
        /// The file that defined it.
        path: PathBuf,
        /// The node.
        node: String,
        /// What went wrong.
        message: String,
    },
    /// Incompatible values for a merge operator (`+`, `-`, `~`, `-~`).
    #[error("merge error in node '{node}', key '{key}': {message}")]
    Merge {
        /// The node.
        node: String,
        /// The key (without its suffix).
        key: String,
        /// What went wrong.
        message: String,
    },
    /// A `~` substitution value is not `<d>PATTERN<d>REPLACEMENT<d>`.
    #[error("node '{node}': invalid substitution '{value}': {message}")]
    Substitution {
        /// The node.
        node: String,
        /// The offending value.
        value: String,
        /// What went wrong.
        message: String,
    },
    /// An invalid `adjust` value or rule (not a list of mappings, `continue`
    /// not a bool, `when` not a string or bool).
    #[error("{}node '{node}': invalid adjust rule: {message}", at(files))]
    Adjust {
        /// The files the node comes from, comma-separated (may be empty).
        files: String,
        /// The node.
        node: String,
        /// What went wrong.
        message: String,
    },
    /// A `when` expression that cannot be parsed.
    #[error("{}node '{node}': invalid rule '{rule}': {message}", at(files))]
    InvalidRule {
        /// The files the node comes from, comma-separated (may be empty).
        files: String,
        /// The node.
        node: String,
        /// The rule text.
        rule: String,
        /// What went wrong.
        message: String,
    },
    /// A rule could not be decided and undecided rules were asked to raise.
    #[error("{}node '{node}': cannot decide rule '{rule}'", at(files))]
    CannotDecide {
        /// The files the node comes from, comma-separated (may be empty).
        files: String,
        /// The node.
        node: String,
        /// The rule text.
        rule: String,
    },
    /// An invalid regular expression (in a rule, merge operator, filter or
    /// name).
    #[error("invalid regular expression '{pattern}'{}: {message}", node.as_ref().map(|n| format!(" (node '{n}')")).unwrap_or_default())]
    Regex {
        /// The pattern.
        pattern: String,
        /// The node, where there is one.
        node: Option<String>,
        /// What went wrong.
        message: String,
    },
    /// A plan could not be used (missing, not a plan, bad discover section).
    #[error("plan '{plan}': {message}")]
    Plan {
        /// The plan name.
        plan: String,
        /// What went wrong.
        message: String,
    },
    /// Invalid tmt metadata of a test (a duration tmt would reject, ...).
    #[error("test '{test}' ({}): {message}", path.display())]
    Metadata {
        /// The test name.
        test: String,
        /// The last file that defined it.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A broken invariant of this crate (a bug, never the input's fault).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    /// The name of the exception python fmf 1.7.0 raises in the same
    /// situation (`FileError`, `FormatError`, `MergeError`, `InvalidRule`,
    /// ...). Python built-in crashes of the reference map to the closest
    /// fmf class; the conformance runner compares these only for errors
    /// the reference raises itself.
    pub fn reference_class(&self) -> &'static str {
        match self {
            Error::Root { .. } => "RootError",
            Error::Io { .. } | Error::Yaml { .. } => "FileError",
            Error::Version { .. } | Error::Format { .. } | Error::Directive { .. } => "FormatError",
            Error::Substitution { .. } | Error::Adjust { .. } => "FormatError",
            Error::Config { .. } => "GeneralError",
            Error::Merge { .. } => "MergeError",
            Error::InvalidRule { .. } => "InvalidRule",
            Error::CannotDecide { .. } => "CannotDecide",
            Error::Regex { .. } => "re.error",
            Error::Plan { .. } | Error::Metadata { .. } | Error::Internal(_) => "GeneralError",
        }
    }
}

/// `"FILES: "` in front of a message, or nothing when no file is known.
fn at(files: &str) -> String {
    if files.is_empty() {
        String::new()
    } else {
        format!("{files}: ")
    }
}
