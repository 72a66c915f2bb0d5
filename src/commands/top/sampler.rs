//! `top`'s sampling thread: the capture loop of `capture`, feeding the live table (and the
//! kept session) instead of only a file, until the program exits or the screen quits.

use anyhow::Result;
use std::sync::atomic::AtomicBool;

use super::sink::TopSink;
use crate::capture::spy::PythonSpy;
use crate::capture::timer::{StopReason, Ticker};
use crate::commands::capture::rounds::Rounds;
use crate::commands::capture::sink::SampleSink;
use crate::commands::capture::tally::Tally;
use crate::model::config::Config;

/// How sampling went.
pub struct Sampled {
    pub stop: StopReason,
    pub tally: Tally,
    pub skipped: u64,
    /// When sampling stopped (µs on the sink's clock).
    pub end_us: u64,
}

/// Sample `root` (and with `config.subprocesses` its Python descendants) `rate` times a
/// second into `sink` until `stop` is set or every process has exited.
pub fn sample(
    root: PythonSpy,
    config: &Config,
    sink: &mut TopSink,
    stop: &AtomicBool,
) -> Result<Sampled> {
    let mut ticker = Ticker::new(config.sampling_rate);
    let mut rounds = Rounds::start(root, sink, ticker.period())?;
    let stop_reason = ticker.run(stop, |late| rounds.tick(sink, late, config))?;
    Ok(Sampled {
        end_us: sink.elapsed_us(),
        stop: stop_reason,
        tally: rounds.tally,
        skipped: ticker.skipped,
    })
}
