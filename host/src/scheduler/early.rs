//! Provisioners started before the run's tests are known: while remote
//! trees and libraries are fetched, each provisioner starts and brings
//! up its first system, so the fetching and the provisioning overlap.
//!
//! [`EarlyStart`] wraps a provisioner: it calls `start` and asks for one
//! system on a thread of its own at once; the driver's later `start`
//! waits for that and gives its result, and the scheduler's first
//! requests are counted against the system already asked for, so the
//! provisioner is never asked for more than the scheduler wants (only
//! the one system comes early, whatever the test count turns out to be).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::backend::{BackendError, Provisioner, Remote};

/// A provisioner started (and asked for one system) ahead of the run.
pub(crate) struct EarlyStart {
    inner: Arc<dyn Provisioner>,
    starting: Mutex<Option<JoinHandle<Result<(), BackendError>>>>,
    /// Systems asked for ahead of the scheduler and not yet counted
    /// against its requests.
    ahead: Arc<AtomicU32>,
}

impl EarlyStart {
    /// Starts `inner` and asks it for one system, on a thread.
    pub(crate) fn begin(inner: Arc<dyn Provisioner>) -> Arc<EarlyStart> {
        let ahead = Arc::new(AtomicU32::new(0));
        let starting = {
            let inner = Arc::clone(&inner);
            let ahead = Arc::clone(&ahead);
            std::thread::Builder::new()
                .name("atex-early-start".into())
                .spawn(move || {
                    inner.start()?;
                    ahead.store(1, Ordering::SeqCst);
                    inner.provision(1);
                    Ok(())
                })
                .ok()
        };
        if starting.is_none() {
            tracing::debug!(
                "cannot start a thread: {} starts with the run",
                inner.name()
            );
        }
        Arc::new(EarlyStart {
            inner,
            starting: Mutex::new(starting),
            ahead,
        })
    }

    /// Waits for the early start; its result (`Ok` when it was not made
    /// early: then `start` does it).
    fn wait(&self) -> Option<Result<(), BackendError>> {
        let handle = self.starting.lock().ok()?.take()?;
        Some(handle.join().unwrap_or_else(|_| {
            Err(BackendError::new(
                self.inner.name(),
                "starting the provisioner panicked",
            ))
        }))
    }
}

impl Provisioner for EarlyStart {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn start(&self) -> Result<(), BackendError> {
        match self.wait() {
            Some(result) => result,
            None => self.inner.start(),
        }
    }

    fn provision(&self, count: u32) {
        // The first requests are answered by the system asked for early.
        let taken = self
            .ahead
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                Some(a.saturating_sub(count))
            })
            .unwrap_or(0);
        let rest = count.saturating_sub(taken);
        if rest > 0 {
            self.inner.provision(rest);
        }
    }

    fn get_remote(&self, timeout: Duration) -> Result<Option<Box<dyn Remote>>, BackendError> {
        self.inner.get_remote(timeout)
    }

    fn clear(&self) {
        self.ahead.store(0, Ordering::SeqCst);
        self.inner.clear();
    }

    fn max_remotes(&self) -> Option<u32> {
        self.inner.max_remotes()
    }

    fn platform(&self) -> Option<String> {
        self.inner.platform()
    }

    fn stop(&self) -> Result<(), BackendError> {
        // A start still running is waited for, so nothing it brings up
        // is missed by the release.
        let _ = self.wait();
        self.inner.stop()
    }
}

/// Provisioners started early, stopped (their early systems released)
/// when the run does not get to execute them: discovery failed, a
/// reporter could not be made.
pub(crate) struct StopUnlessRun(pub(crate) Vec<Arc<dyn Provisioner>>);

impl StopUnlessRun {
    /// The run took them over.
    pub(crate) fn disarm(mut self) {
        self.0.clear();
    }
}

impl Drop for StopUnlessRun {
    fn drop(&mut self) {
        for p in &self.0 {
            if let Err(e) = p.stop() {
                tracing::warn!("stopping {}: {e}", p.name());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is asked, and blocks `start` until told.
    #[derive(Default)]
    struct Recorder {
        log: Mutex<Vec<String>>,
        gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    }

    impl Provisioner for Recorder {
        fn name(&self) -> String {
            "recorder".into()
        }
        fn start(&self) -> Result<(), BackendError> {
            if let Some(rx) = self.gate.lock().expect("gate").take() {
                let _ = rx.recv();
            }
            self.log.lock().expect("log").push("start".into());
            Ok(())
        }
        fn provision(&self, count: u32) {
            self.log
                .lock()
                .expect("log")
                .push(format!("provision {count}"));
        }
        fn get_remote(&self, _: Duration) -> Result<Option<Box<dyn Remote>>, BackendError> {
            Ok(None)
        }
        fn stop(&self) -> Result<(), BackendError> {
            self.log.lock().expect("log").push("stop".into());
            Ok(())
        }
    }

    fn log(r: &Recorder) -> Vec<String> {
        r.log.lock().expect("log").clone()
    }

    /// The first system is asked for before the run starts the
    /// provisioner; the scheduler's requests then count it, so the total
    /// asked is what the scheduler asked.
    #[test]
    fn one_system_ahead_and_no_more() {
        let inner = Arc::new(Recorder::default());
        let (tx, rx) = std::sync::mpsc::channel();
        *inner.gate.lock().expect("gate") = Some(rx);
        let early = EarlyStart::begin(inner.clone());
        // Still starting: the driver's start waits for it.
        assert!(log(&inner).is_empty());
        tx.send(()).expect("open the gate");
        early.start().expect("start");
        assert_eq!(log(&inner), ["start", "provision 1"]);
        early.provision(3);
        early.provision(2);
        assert_eq!(
            log(&inner),
            ["start", "provision 1", "provision 2", "provision 2"]
        );
    }

    #[test]
    fn a_request_of_one_is_the_early_system() {
        let inner = Arc::new(Recorder::default());
        let early = EarlyStart::begin(inner.clone());
        early.start().expect("start");
        early.provision(1);
        assert_eq!(log(&inner), ["start", "provision 1"]);
        early.provision(1);
        assert_eq!(log(&inner), ["start", "provision 1", "provision 1"]);
    }

    /// A run that does not get to execute stops what was started early.
    #[test]
    fn stopped_unless_the_run_takes_them() {
        let inner = Arc::new(Recorder::default());
        let early: Arc<dyn Provisioner> = EarlyStart::begin(inner.clone());
        drop(StopUnlessRun(vec![early]));
        assert_eq!(log(&inner), ["start", "provision 1", "stop"]);
        let inner = Arc::new(Recorder::default());
        let early: Arc<dyn Provisioner> = EarlyStart::begin(inner.clone());
        StopUnlessRun(vec![early.clone()]).disarm();
        early.start().expect("start");
        assert!(!log(&inner).contains(&"stop".to_string()));
    }
}
