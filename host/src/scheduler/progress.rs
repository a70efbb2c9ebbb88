//! Live progress: a bar (done/running/queued, pass/fail, ETA) when stderr
//! is a terminal, one plain line per finished test otherwise.

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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

/// Counters shown by the progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Tests with a final result.
    pub done: u64,
    /// Tests running.
    pub running: u64,
    /// Tests waiting.
    pub queued: u64,
    /// Final results that are not failures.
    pub passed: u64,
    /// Final failures.
    pub failed: u64,
    /// Expected time left.
    pub eta: Option<Duration>,
}

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: u64,
    start: Instant,
}

impl Progress {
    pub(crate) fn new(mode: ProgressMode, total: u64) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Quiet => (None, false),
            ProgressMode::Plain => (None, true),
            ProgressMode::Auto if !terminal => (None, true),
            ProgressMode::Auto => {
                let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
                let style =
                    ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> ");
                bar.set_style(style);
                bar.enable_steady_tick(Duration::from_millis(250));
                (Some(bar), false)
            }
        };
        Progress {
            bar,
            plain,
            total,
            start: Instant::now(),
        }
    }

    /// A message line (above the bar).
    pub(crate) fn line(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.println(msg);
        } else if self.plain {
            eprintln!("{msg}");
        }
    }

    /// A test got its final result.
    pub(crate) fn finished(
        &self,
        counts: &Counts,
        status: &str,
        test: &str,
        took: Duration,
        remote: &str,
        note: Option<&str>,
    ) {
        if self.plain || self.bar.is_some() {
            let note = note
                .filter(|n| !n.is_empty())
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            self.line(&format!(
                "[{}/{}] {status:<5} {test} {:.1}s on {remote}{note}",
                counts.done,
                self.total,
                took.as_secs_f64()
            ));
        }
        self.update(counts);
    }

    pub(crate) fn update(&self, c: &Counts) {
        if let Some(bar) = &self.bar {
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

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let _ = self.start;
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
