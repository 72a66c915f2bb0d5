//! [`Sampler`]: samples a process at a fixed rate on a background thread and yields
//! [`Sample`]s as an iterator.
//!
//! The timer keeps the requested rate without drift: sample *n* is due at `start + n/rate`;
//! a sample taken after its due time records how late it was, and samples that fell a whole
//! period behind are skipped rather than bunched.

use anyhow::Result;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

use super::spy::PythonSpy;
use super::trace::{Pid, StackTrace};
use crate::settings::{Config, RecordDuration};

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
        let limit = match config.duration {
            RecordDuration::Unlimited => None,
            RecordDuration::Seconds(s) => Some(s * rate),
        };
        std::thread::Builder::new()
            .name("py-spy-sampler".into())
            .spawn(move || {
                let mut spy = spy;
                let period_ns = (1_000_000_000 / rate).max(1);
                let start = Instant::now();
                let mut n: u64 = 0;
                loop {
                    if limit.is_some_and(|l| n >= l) {
                        break;
                    }
                    let due = start + Duration::from_nanos(period_ns.saturating_mul(n));
                    let now = Instant::now();
                    let late = if now < due {
                        std::thread::sleep(due - now);
                        None
                    } else {
                        Some(now - due)
                    };
                    let sample = match spy.get_stack_traces() {
                        Ok(traces) => Sample {
                            traces,
                            sampling_errors: None,
                            late,
                        },
                        Err(e) => {
                            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                                break;
                            }
                            Sample {
                                traces: Vec::new(),
                                sampling_errors: Some(vec![(pid, e)]),
                                late,
                            }
                        }
                    };
                    if tx.send(sample).is_err() {
                        break;
                    }
                    n += 1;
                    // Behind by more than a period: skip the missed ticks.
                    let elapsed = start.elapsed();
                    let behind = (elapsed.as_nanos() / period_ns as u128) as u64;
                    if behind > n {
                        n = behind;
                    }
                }
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
