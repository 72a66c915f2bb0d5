//! `py-spy dump`: one snapshot of every thread (capture, with the details a dump shows) into
//! a session file (temporary unless `--session` keeps it), printed from that file by the
//! renderer `analyze --dump` uses, so a kept dump prints again exactly as it was printed.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;

use super::capture::{core_session, snapshot, CoreRequest, SnapshotRequest};
use super::SessionPath;
use crate::analyze::snapshot::snapshot_at;
use crate::capture::spy::MAX_PAUSE;
use crate::model::config::Config;
use crate::model::trace::Pid;
use crate::render::dump::write_snapshot;
use crate::store::Session;

/// What `dump` is asked to do.
pub struct Dump {
    pub pid: Pid,
    /// py-spy 0.4's options: `blocking`, `dump_locals`, `dump_json`, `full_filenames`,
    /// `subprocesses`.
    pub config: Config,
    /// Keep the snapshot in this session file.
    pub session: Option<PathBuf>,
    /// Width of the rule printed between processes.
    pub rule_width: usize,
    /// A parent to name in the header (py-spy 0.4's `write_traces(…, parent)`).
    pub parent: Option<Pid>,
    /// Read the process from this core file instead (`pid` is then not used).
    pub core: Option<CoreRequest>,
}

/// Take the snapshot and print it to `out`; notes go to standard error.
pub fn dump(req: &Dump, out: &mut dyn Write) -> Result<()> {
    let kept = SessionPath::new(req.session.as_deref())?;
    if let Some(core) = &req.core {
        let snap = core_session(core, &kept.path)?;
        return print_session(req, &kept.path, snap.pid, out);
    }
    let request = SnapshotRequest {
        pid: req.pid,
        blocking: req.config.blocking,
        locals: req.config.dump_locals,
        subprocesses: req.config.subprocesses,
        native: req.config.native,
    };
    let summary = snapshot(&request, &kept.path)?;
    for (pid, why) in &summary.missed {
        eprintln!("Note: process {pid} was left out: {why}");
    }
    if summary.unpaused > 0 {
        eprintln!(
            "Note: read without pausing the program: pausing all its threads would have \
             stopped it for more than {} ms",
            MAX_PAUSE.as_millis()
        );
    }
    print_session(req, &kept.path, req.pid, out)
}

/// Print the snapshot in the session at `path` (of process `pid`) as `dump` does.
fn print_session(req: &Dump, path: &std::path::Path, pid: Pid, out: &mut dyn Write) -> Result<()> {
    let session = Session::open(path)?;
    let Some(snap) = snapshot_at(&session, None, req.config.full_filenames)? else {
        bail!("process {pid} has no Python threads to show");
    };
    let python = session.meta.start.as_ref().map(|s| s.python.clone());
    let parent = req
        .parent
        .map(|p| (p, crate::capture::os::proc::command_line(p)));
    write_snapshot(
        out,
        &snap,
        python.as_deref(),
        req.config.dump_json,
        req.rule_width,
        parent.as_ref().map(|(p, c)| (*p, c.as_str())),
    )
    .context("could not print the dump")?;
    out.flush()?;
    if let Some(p) = &req.session {
        eprintln!(
            "Kept the snapshot in '{}': `py-spy analyze {} --dump` prints it again",
            p.display(),
            p.display()
        );
    }
    Ok(())
}

/// py-spy 0.4's `py_spy::dump::write_traces`: dump process `pid` to `out` as `py-spy dump`
/// does with `config`'s options (`dump_json`, `dump_locals`, `subprocesses`, …), naming
/// `parent` in the header when given.
pub fn write_traces<W: Write>(
    out: &mut W,
    pid: Pid,
    config: &Config,
    parent: Option<Pid>,
) -> Result<()> {
    let req = Dump {
        pid,
        config: config.clone(),
        session: None,
        rule_width: super::rule_width(),
        parent,
        core: None,
    };
    dump(&req, out)
}

/// py-spy 0.4's `py_spy::dump::print_traces`: [`write_traces`] to standard output.
pub fn print_traces(pid: Pid, config: &Config, parent: Option<Pid>) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_traces(&mut out, pid, config, parent)
}
