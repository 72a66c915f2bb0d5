//! The sampling loop's body, shared by `capture` and `top`: at each tick, one snapshot of
//! every attached process into a sink, the version of a process made exact once its
//! interpreter has set it, and (with `--subprocesses`) new Python descendants attached.

use anyhow::Result;
use std::time::Duration;

use super::children::Descendants;
use super::process::{register, Attached, Moment, Scratch};
use super::sink::SampleSink;
use super::tally::Tally;
use crate::capture::spy::PythonSpy;
use crate::capture::timer::{Flow, StopReason};
use crate::model::config::Config;
use crate::model::trace::Pid;

/// The processes being sampled, and the counts so far.
pub(crate) struct Rounds {
    procs: Vec<Attached>,
    children: Descendants,
    scratch: Scratch,
    period: Duration,
    root: Pid,
    /// The root process's Python version, exact once its interpreter has set it.
    pub root_python: String,
    pub tally: Tally,
}

impl Rounds {
    /// Start with `root`, registered in `sink`; ticks come every `period`.
    pub fn start(root: PythonSpy, sink: &mut impl SampleSink, period: Duration) -> Result<Rounds> {
        register(sink, &root, None)?;
        Ok(Rounds {
            children: Descendants::new(root.pid),
            root: root.pid,
            root_python: root.version.to_string(),
            procs: vec![Attached::new(root)],
            scratch: Scratch::default(),
            period,
            tally: Tally::default(),
        })
    }

    /// Processes attached so far, the root included.
    pub fn processes(&self) -> usize {
        self.children.attached()
    }

    /// One tick, taken `late` after its due time: a snapshot of every process. Stops when
    /// every process has exited (a tick that found none is not counted as a snapshot).
    pub fn tick(
        &mut self,
        sink: &mut impl SampleSink,
        late: Duration,
        config: &Config,
    ) -> Result<Flow> {
        let at = Moment {
            t_us: sink.elapsed_us(),
            late_us: late.as_micros().min(u32::MAX as u128) as u32,
        };
        self.tally.tick(late, self.period);
        sink.begin_snapshot(late);
        let mut alive = Vec::with_capacity(self.procs.len());
        for mut p in self.procs.drain(..) {
            if p.sample_into(sink, at, &mut self.scratch, &mut self.tally)? {
                alive.push(p);
            }
        }
        self.procs = alive;
        if self.procs.is_empty() {
            return Ok(Flow::Stop(StopReason::ProcessExited));
        }
        sink.end_snapshot();
        self.tally.snapshots += 1;
        // A version known only from a file name at attach (2.7–3.10 started by us): the
        // full one once the interpreter has set it.
        for p in &mut self.procs {
            if let Some(exact) = p.spy.refresh_version() {
                let exact = exact.to_string();
                sink.set_python(p.spy.pid, &exact)?;
                if p.spy.pid == self.root {
                    self.root_python = exact;
                }
            }
        }
        if config.subprocesses {
            self.children.scan(config, sink, &mut self.procs)?;
        }
        Ok(Flow::Continue)
    }
}
