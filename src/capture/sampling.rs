//! [`Sampler`]: samples a process at a fixed rate on a background thread and yields
//! [`Sample`]s as an iterator.
//!
//! The clock is `Ticker`: no drift, lateness recorded, missed ticks skipped.

use anyhow::Result;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::Duration;

use super::os::proc;
use super::spy::PythonSpy;
use super::timer::{Flow, StopReason, Ticker};
use crate::model::config::Config;
use crate::model::trace::{Pid, StackTrace};

/// One snapshot of every thread.
pub struct Sample {
    pub traces: Vec<StackTrace>,
    /// Errors taken while sampling (process id, error), if any.
    pub sampling_errors: Option<Vec<(Pid, anyhow::Error)>>,
    /// How far behind its due time this sample was taken, when it was late.
    pub late: Option<Duration>,
}

/// Samples a process until it exits, the duration runs out, or the sampler is dropped.
pub struct Sampler {
    pub version: Option<String>,
    rx: Receiver<Sample>,
}

impl Sampler {
    pub fn new(pid: Pid, config: &Config) -> Result<Sampler> {
        let spy = PythonSpy::retry_new(pid, config, 20)?;
        let version = Some(spy.version.to_string());
        let (tx, rx) = sync_channel(1024);
        let rate = config.sampling_rate.max(1);
        let duration = config.duration.clone();
        std::thread::Builder::new()
            .name("py-spy-sampler".into())
            .spawn(move || {
                let mut spy = spy;
                let never = AtomicBool::new(false);
                let mut ticker = Ticker::for_duration(rate, &duration);
                let _ = ticker.run(&never, |late| {
                    let late = Some(late).filter(|l| !l.is_zero());
                    let sample = match spy.get_stack_traces() {
                        Ok(traces) => Sample {
                            traces,
                            sampling_errors: None,
                            late,
                        },
                        Err(_) if !proc::alive(pid) => {
                            return Ok(Flow::Stop(StopReason::ProcessExited));
                        }
                        Err(e) => Sample {
                            traces: Vec::new(),
                            sampling_errors: Some(vec![(pid, e)]),
                            late,
                        },
                    };
                    // The receiver went away: the Sampler was dropped.
                    Ok(match tx.send(sample) {
                        Ok(()) => Flow::Continue,
                        Err(_) => Flow::Stop(StopReason::Interrupted),
                    })
                });
            })?;
        Ok(Sampler { version, rx })
    }
}

impl Iterator for Sampler {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        self.rx.recv().ok()
    }
}
