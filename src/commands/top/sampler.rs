//! `top`'s sampling thread: the capture loop of `capture`, feeding the live table (and the
//! kept session) instead of only a file, until the program exits or the screen quits.

use anyhow::Result;
use std::sync::atomic::AtomicBool;

use super::sink::TopSink;
use crate::capture::spy::PythonSpy;
use crate::capture::timer::{Flow, StopReason, Ticker};
use crate::commands::capture::children::Descendants;
use crate::commands::capture::process::{Attached, Moment, Scratch};
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
    let root_pid = root.pid;
    let python = root.version.to_string();
    sink.add_process(root_pid, None, &root.command_line(), Some(&python))?;
    sink.set_executable(root_pid, root.exe())?;
    let mut procs = vec![Attached::new(root)];
    let mut children = Descendants::new(root_pid);
    let mut ticker = Ticker::new(config.sampling_rate);
    let period = ticker.period();
    let mut scratch = Scratch::default();
    let mut tally = Tally::default();
    let stop_reason = ticker.run(stop, |late| {
        let at = Moment {
            t_us: sink.elapsed_us(),
            late_us: late.as_micros().min(u32::MAX as u128) as u32,
        };
        tally.tick(late, period);
        sink.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .begin_snapshot(late);
        let mut alive = Vec::with_capacity(procs.len());
        for mut p in procs.drain(..) {
            if p.sample_into(sink, at, &mut scratch, &mut tally)? {
                alive.push(p);
            }
        }
        procs = alive;
        if procs.is_empty() {
            return Ok(Flow::Stop(StopReason::ProcessExited));
        }
        sink.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .end_snapshot();
        tally.snapshots += 1;
        for p in &mut procs {
            if let Some(exact) = p.spy.refresh_version() {
                sink.set_python(p.spy.pid, &exact.to_string())?;
            }
        }
        if config.subprocesses {
            children.scan(config, sink, &mut procs)?;
        }
        Ok(Flow::Continue)
    })?;
    Ok(Sampled {
        end_us: sink.elapsed_us(),
        stop: stop_reason,
        tally,
        skipped: ticker.skipped,
    })
}
