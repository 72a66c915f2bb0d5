//! `dump`'s capture: one snapshot of a process (and with `subprocesses`, of every Python
//! process below it), taken through the same spy and written into a session the same way as
//! a capture's, with the details `dump` shows (entry marks, and locals when asked for).

use anyhow::{Context, Result};
use std::path::Path;

use super::launch::attach;
use super::process::{register, Attached, Moment, Scratch};
use super::tally::Tally;
use crate::capture::os::{maps, proc};
use crate::capture::spy::PythonSpy;
use crate::capture::timer::StopReason;
use crate::model::config::{Config, LineNo, LockingStrategy, RecordDuration};
use crate::model::trace::Pid;
use crate::store::{CaptureStart, SamplingOptions, SessionWriter, Started};

/// What to take.
#[derive(Debug, Clone)]
pub struct SnapshotRequest {
    pub pid: Pid,
    pub blocking: LockingStrategy,
    /// Local variables: 0 none, 1 and more as `dump --locals` (`-ll` …).
    pub locals: u64,
    /// Every Python process below `pid` too.
    pub subprocesses: bool,
    /// Native frames among the Python ones.
    pub native: bool,
}

/// What was taken.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSummary {
    /// Processes in the snapshot (the root first).
    pub processes: usize,
    /// Thread stacks stored, and those stored as errors.
    pub samples: u64,
    pub error_samples: u64,
    /// Processes whose snapshot was taken without pausing them (pausing every thread would
    /// have stopped them longer than the pause bound).
    pub unpaused: u64,
    /// Descendants that run Python but could not be attached to, with why.
    pub missed: Vec<(Pid, String)>,
}

/// Take the snapshot into a new session at `path`.
pub fn snapshot(req: &SnapshotRequest, path: &Path) -> Result<SnapshotSummary> {
    crate::store::schema::session_target(path)?;
    let config = Config {
        blocking: req.blocking,
        dump_locals: req.locals,
        include_idle: true,
        lineno: LineNo::LastInstruction,
        subprocesses: req.subprocesses,
        native: req.native,
        ..Config::default()
    };
    let root = attach(req.pid, &config)?;
    let mut summary = SnapshotSummary::default();
    let mut procs = vec![root];
    let mut parents = vec![None];
    if req.subprocesses {
        for (pid, parent) in proc::descendants(req.pid) {
            // Programs that are not Python (a shell between two Pythons) are passed over.
            match PythonSpy::new(pid, &config) {
                Ok(spy) => {
                    procs.push(spy);
                    parents.push(Some(parent));
                }
                Err(e) if looks_like_python(pid) => summary.missed.push((pid, format!("{e:#}"))),
                Err(_) => {}
            }
        }
    }
    let root = &procs[0];
    let start = CaptureStart {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: root.command_line(),
        started: Started::Attached,
        pid: root.pid,
        python: root.version.to_string(),
        host: proc::hostname(),
        options: SamplingOptions {
            rate: 1,
            duration: RecordDuration::Seconds(0),
            blocking: req.blocking,
            native: req.native,
            subprocesses: req.subprocesses,
        },
    };
    let mut writer = SessionWriter::create(path, &start)
        .with_context(|| format!("could not create session file {}", path.display()))?;
    for (spy, parent) in procs.iter().zip(&parents) {
        register(&mut writer, spy, *parent)?;
    }
    let at = Moment {
        t_us: writer.elapsed_us(),
        late_us: 0,
    };
    let mut scratch = Scratch::default();
    let mut tally = Tally::default();
    let mut taken = 0;
    for spy in procs {
        let mut p = Attached::new(spy);
        p.details = true;
        if p.sample_into(&mut writer, at, &mut scratch, &mut tally)? {
            taken += 1;
        }
    }
    if taken == 0 {
        anyhow::bail!("process {} exited before its stacks could be read", req.pid);
    }
    tally.snapshots = 1;
    writer.set_end(&tally.end(writer.elapsed_us(), 0, StopReason::Snapshot))?;
    writer.finish()?;
    summary.processes = parents.len();
    summary.samples = tally.samples;
    summary.error_samples = tally.error_samples;
    summary.unpaused = tally.unpaused;
    Ok(summary)
}

/// Whether a process we could not attach to seems to run Python (its executable's name).
fn looks_like_python(pid: Pid) -> bool {
    proc::executable(pid).is_ok_and(|exe| maps::file_name(&exe).starts_with("python"))
}
