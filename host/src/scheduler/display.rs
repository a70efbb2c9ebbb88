//! The terminal display of a run, as an [`EventSink`]: a live bar
//! (done/running/queued, pass/fail, ETA) when stderr is a terminal, one
//! plain line per finished test otherwise.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::events::{Counts, EventSink, RunEvent};
use crate::backend::BackendError;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines on stderr.
    Plain,
    /// Nothing (library use, tests).
    Quiet,
}

/// Shows a run on stderr.
pub struct TerminalDisplay {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    done: u64,
    counts: Counts,
    /// More than one platform: names carry theirs.
    matrix: bool,
}

impl TerminalDisplay {
    /// A display in `mode`; the total comes with [`RunEvent::RunStarted`].
    pub fn new(mode: ProgressMode) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Quiet => (None, false),
            ProgressMode::Plain => (None, true),
            ProgressMode::Auto if !terminal => (None, true),
            ProgressMode::Auto => {
                let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
                let style =
                    ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                bar.set_style(style);
                bar.enable_steady_tick(Duration::from_millis(250));
                (Some(bar), false)
            }
        };
        TerminalDisplay {
            bar,
            plain,
            total: 0,
            done: 0,
            counts: Counts::default(),
            matrix: false,
        }
    }

    fn line(&self, msg: &str) {
        // Errors and notes carry text from tests and systems.
        let msg = &crate::results::sanitize_text(msg);
        if let Some(bar) = &self.bar {
            bar.println(msg);
        } else if self.plain {
            eprintln!("{msg}");
        }
    }

    /// The test's name, with its platform in a matrix run.
    fn label(&self, test: &str, platform: &str) -> String {
        if self.matrix {
            format!("{test} [{platform}]")
        } else {
            test.to_string()
        }
    }

    fn finished(&mut self, status: &str, test: &str, took: Duration, system: &str, note: &str) {
        self.done += 1;
        let note = if note.is_empty() {
            String::new()
        } else {
            format!(" ({note})")
        };
        self.line(&format!(
            "[{}/{}] {status:<5} {test} {:.1}s on {system}{note}",
            self.done,
            self.total,
            took.as_secs_f64()
        ));
    }

    fn update(&self) {
        if let Some(bar) = &self.bar {
            let c = &self.counts;
            bar.set_position(c.done);
            let eta = c
                .eta
                .map(|e| format!(" · ETA {}", fmt_secs(e)))
                .unwrap_or_default();
            bar.set_message(format!(
                "running {} · queued {} · pass {} · fail {}{eta}",
                c.running, c.queued, c.passed, c.failed
            ));
        }
    }
}

impl EventSink for TerminalDisplay {
    fn name(&self) -> String {
        "terminal display".into()
    }

    fn on_event(&mut self, event: &RunEvent) -> Result<(), BackendError> {
        match event {
            RunEvent::RunStarted {
                run_id,
                results_dir,
                tests,
                platforms,
            } => {
                self.total = *tests as u64;
                self.matrix = platforms.len() > 1;
                // The run id labels what the run allocates: the cleanup of
                // a run killed with SIGKILL needs it.
                self.line(&format!(
                    "atex: run {run_id}: {tests} tests, results in {}",
                    results_dir.display()
                ));
                if let Some(bar) = &self.bar {
                    bar.set_length(self.total);
                }
            }
            RunEvent::ProvisionerFailedToStart { provisioner, error } => {
                self.line(&format!(
                    "error: provisioner {provisioner} failed to start: {error}"
                ));
            }
            RunEvent::ProvisionerError { error, .. } => self.line(&format!("warning: {error}")),
            RunEvent::ProvisionerDropped { reason, .. } => self.line(&format!("error: {reason}")),
            RunEvent::ProvisionerStopFailed { provisioner, error } => {
                self.line(&format!(
                    "warning: stopping provisioner {provisioner}: {error}"
                ));
            }
            RunEvent::SystemSetupFailed { error, .. } => self.line(&format!("warning: {error}")),
            RunEvent::SystemLost { system, test } => {
                self.line(&format!("warning: {system} was lost during {test}"));
            }
            RunEvent::SystemBroke {
                system,
                test,
                error,
            } => self.line(&format!("warning: {system} broke during {test}: {error}")),
            RunEvent::SystemReleaseFailed { system, error } => {
                self.line(&format!("warning: releasing {system}: {error}"));
            }
            RunEvent::TestRerun {
                test,
                platform,
                attempt,
                status,
                note,
                reason,
            } => self.line(&format!(
                "{} {} (attempt {attempt}{}), will rerun on a fresh system",
                safe(status.as_str()),
                safe(&self.label(test, platform)),
                shown_why(note.as_deref(), reason.as_deref())
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            )),
            RunEvent::TestFinished {
                test,
                platform,
                system,
                status,
                note,
                reason,
                duration,
                ..
            } => {
                let why = if status.is_failure() {
                    shown_why(note.as_deref(), reason.as_deref())
                } else {
                    note.as_deref().map(safe)
                };
                let test = safe(&self.label(test, platform));
                let status = safe(status.as_str());
                self.finished(&status, &test, *duration, &safe(system), &why.unwrap_or_default());
            }
            RunEvent::TestNotRun {
                test,
                platform,
                status,
                note,
            } => {
                let test = safe(&self.label(test, platform));
                let status = safe(status.as_str());
                self.finished(&status, &test, Duration::ZERO, "-", &safe(note));
            }
            RunEvent::ResultsLost { test, error } => {
                self.line(&format!("error: results of {test} are lost: {error}"));
            }
            RunEvent::Progress { counts } => {
                self.counts = *counts;
                self.update();
            }
            RunEvent::Interrupted { signal } => self.line(&format!(
                "atex: {} received: cancelling running tests and releasing every system (again to exit at once)",
                signal_name(*signal)
            )),
            RunEvent::ForcedExit { signal } => self.line(&format!(
                "atex: second signal ({signal}): releasing what can be released and exiting"
            )),
            RunEvent::RunFinished { .. } => {
                if let Some(bar) = &self.bar {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Text a test controls (names, notes, statuses) as one safe line: no
/// escape sequences or control characters, a multi-line note cut to its
/// first line and `…`.
fn safe(text: &str) -> String {
    crate::results::sanitize_line(&crate::results::first_line(text))
}

/// What a failure line says after the test: why it ended (`exit code 3`,
/// `timed out after 5m`), with the note when the test reported its result.
fn shown_why(note: Option<&str>, reason: Option<&str>) -> Option<String> {
    crate::results::why_failed(note, reason)
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "signal",
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
