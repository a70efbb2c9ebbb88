//! What a run tells the world while it happens: typed [`RunEvent`]s sent to
//! [`EventSink`]s.
//!
//! The driver never formats text for people. It emits events; the terminal
//! display ([`super::display`]), the reporters (through [`ReporterSink`])
//! and any sink a library caller passes in [`super::Execution::sinks`] turn
//! them into whatever they like. Every sink sees every event, in the order
//! the run produced them, on one thread (the run's results thread), so a
//! slow sink delays other sinks but never the scheduling.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use crate::{
    Status,
    backend::{BackendError, ReportedResult, Reporter, RunSummary},
};

/// Counters of a run in progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Tests with a final result.
    pub done: u64,
    /// Tests running.
    pub running: u64,
    /// Tests waiting.
    pub queued: u64,
    /// Final results that are neither failures nor skipped (`pass`,
    /// `info`).
    pub passed: u64,
    /// Final failures other than `infra` (`warn`, `fail`, `error`, unknown
    /// statuses).
    pub failed: u64,
    /// Final `skip` results.
    pub skipped: u64,
    /// Final `infra` results.
    pub infra: u64,
    /// Tests that will not run (an interrupt, `--max-fail`); they have no
    /// result.
    pub not_run: u64,
    /// Expected time left: from the runtimes of earlier runs and the ones
    /// measured so far, never from declared durations; `None` without
    /// either.
    #[serde(rename = "eta_seconds", serialize_with = "secs_opt")]
    pub eta: Option<Duration>,
}

impl Counts {
    /// Counts one final result of `status`: in the summary's terms, `skip`
    /// is not a pass and `infra` not a plain failure.
    pub fn add(&mut self, status: &Status) {
        self.done += 1;
        match status {
            Status::Skip => self.skipped += 1,
            Status::Infra => self.infra += 1,
            s if s.is_failure() => self.failed += 1,
            _ => self.passed += 1,
        }
    }
}

/// Something that happened during a run.
///
/// As JSON (`serde_json::to_string(&event)`), an object with the event's
/// name in `event` (`"test_finished"`, ...) and its fields beside it;
/// durations are seconds.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    /// The run began: provisioners were started, nothing ran yet.
    RunStarted {
        /// The run identifier (containers and reservations are labelled
        /// with it).
        run_id: String,
        /// Where results go.
        results_dir: PathBuf,
        /// Jobs (test × platform) to run.
        tests: usize,
        /// The platforms of the run's matrix, when they have names.
        platforms: Vec<String>,
    },
    /// A provisioner's `start` failed; it takes no part in the run.
    ProvisionerFailedToStart {
        /// Its name.
        provisioner: String,
        /// What it said.
        error: String,
    },
    /// A provisioner could not hand out a system this time (it counts
    /// against its failure budget).
    ProvisionerError {
        /// Its name.
        provisioner: String,
        /// What it said.
        error: String,
    },
    /// A provisioner is dropped for good; the others carry on.
    ProvisionerDropped {
        /// Its name.
        provisioner: String,
        /// Why.
        reason: String,
    },
    /// Stopping a provisioner at the end of the run failed.
    ProvisionerStopFailed {
        /// Its name.
        provisioner: String,
        /// What it said.
        error: String,
    },
    /// A system arrived from a provisioner.
    SystemReady {
        /// The system's name.
        system: String,
        /// The provisioner that made it.
        provisioner: String,
        /// The platform its results are filed under.
        platform: String,
    },
    /// Setting a system up (connecting, uploading the tree, prepare steps)
    /// failed; it is released.
    SystemSetupFailed {
        /// The system.
        system: String,
        /// What happened.
        error: String,
    },
    /// A system was lost while a test ran on it; the test has a result.
    SystemLost {
        /// The system.
        system: String,
        /// The test that was running.
        test: String,
    },
    /// A system broke under a test without a result; the test goes back
    /// in the queue.
    SystemBroke {
        /// The system.
        system: String,
        /// The test that was running.
        test: String,
        /// What happened.
        error: String,
    },
    /// Giving a system back failed.
    SystemReleaseFailed {
        /// The system.
        system: String,
        /// What happened.
        error: String,
    },
    /// A test started on a system.
    TestStarted {
        /// The test.
        test: String,
        /// The platform it ran on (or was meant for).
        platform: String,
        /// The system.
        system: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// An attempt failed and the test will run again on a fresh system.
    TestRerun {
        /// The test.
        test: String,
        /// The platform it ran on (or was meant for).
        platform: String,
        /// The attempt that failed.
        attempt: u32,
        /// Its status.
        status: Status,
        /// Its note.
        note: Option<String>,
        /// Why it ended (`exit code 3`, `timed out after 5m`, ...), when
        /// known.
        reason: Option<String>,
    },
    /// A test has its final result.
    TestFinished {
        /// The test.
        test: String,
        /// The platform it ran on (or was meant for).
        platform: String,
        /// The system it ran on.
        system: String,
        /// Attempts made.
        attempt: u32,
        /// Status of its own result.
        status: Status,
        /// Note of its own result.
        note: Option<String>,
        /// Why the last attempt ended (`exit code 3`, `timed out after
        /// 5m`, `reported fail by the test`, ...), when known.
        reason: Option<String>,
        /// Wall time of the last attempt.
        #[serde(rename = "duration_seconds", serialize_with = "secs")]
        duration: Duration,
    },
    /// A test will not run (its systems kept breaking, no provisioner is
    /// left, the deadline); it gets a result saying why.
    TestNotRun {
        /// The test.
        test: String,
        /// The platform it ran on (or was meant for).
        platform: String,
        /// Status of that result.
        status: Status,
        /// Why.
        note: String,
    },
    /// Results were written to the results directory. At the end of a
    /// run that stopped early (an interrupt, `--max-fail`), also one
    /// result per test that never ran, which is not written anywhere:
    /// status `skip`, attempt 0, and in `extra` `"not_run": true` and
    /// `"reason": "not run: <why>"`.
    ResultsStored {
        /// The results, as reporters get them.
        results: Vec<ReportedResult>,
    },
    /// Results of a test could not be stored (a full disk, ...).
    ResultsLost {
        /// The test.
        test: String,
        /// What failed.
        error: String,
    },
    /// The counters changed, or time passed.
    Progress {
        /// The counters now.
        counts: Counts,
    },
    /// SIGINT or SIGTERM (or the caller's interrupt): no more tests start,
    /// running ones are cancelled, every system is released.
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// A second signal: the run ends at once after a best-effort release.
    ForcedExit {
        /// The signal number.
        signal: i32,
    },
    /// The run is over; reporters write their files now.
    RunFinished {
        /// What reporters get.
        summary: RunSummary,
    },
}

/// Receives the events of a run.
///
/// An error returned for [`RunEvent::RunFinished`] is added to the run's
/// errors (and its `summary.json`); errors for other events are logged.
pub trait EventSink: Send {
    /// A name for error messages.
    fn name(&self) -> String {
        "event sink".into()
    }
    /// Called once per event, in order, from one thread.
    fn on_event(&mut self, event: &RunEvent) -> Result<(), BackendError>;
}

/// A closure is a sink.
impl<F> EventSink for F
where
    F: FnMut(&RunEvent) + Send,
{
    fn on_event(&mut self, event: &RunEvent) -> Result<(), BackendError> {
        self(event);
        Ok(())
    }
}

/// A [`Reporter`] as an event sink: every stored result to `on_result`,
/// the end of the run to `finish`.
pub struct ReporterSink {
    reporter: Box<dyn Reporter>,
}

impl ReporterSink {
    /// Wraps a reporter.
    pub fn new(reporter: Box<dyn Reporter>) -> Self {
        ReporterSink { reporter }
    }
}

impl EventSink for ReporterSink {
    fn name(&self) -> String {
        format!("reporter {}", self.reporter.name())
    }

    fn on_event(&mut self, event: &RunEvent) -> Result<(), BackendError> {
        match event {
            RunEvent::ResultsStored { results } => {
                for r in results {
                    self.reporter.on_result(r)?;
                }
                Ok(())
            }
            RunEvent::RunFinished { summary } => {
                let t0 = Instant::now();
                for f in self.reporter.finish(summary)? {
                    tracing::info!(
                        "{} wrote {} in {:.2}s",
                        self.reporter.name(),
                        f.display(),
                        t0.elapsed().as_secs_f64()
                    );
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn secs_opt<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}
