//! A core file's snapshot as a session: the Python threads read from the core (capture's
//! `core_snapshot`), written as one snapshot with the details `dump` shows, so that `dump
//! --core` prints it through the same renderer as a live dump, and every view opens it.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::process::frame_details;
use super::sink::{SampleSink, ThreadAt};
use super::tally::Tally;
use crate::capture::core_snapshot::{open_core, read_core, CoreOptions, CoreSnapshot};
use crate::capture::python::walker::StackFault;
use crate::capture::timer::StopReason;
use crate::model::config::{LockingStrategy, RecordDuration};
use crate::model::trace::StackTrace;
use crate::store::{CaptureStart, FrameKey, SamplingOptions, SessionWriter, Started};
use crate::store::{ThreadKey, FLAG_ACTIVE, FLAG_GIL};

/// What to read.
#[derive(Debug, Clone)]
pub struct CoreRequest {
    pub core: PathBuf,
    /// Where to look for the binaries the core names before their recorded paths.
    pub binaries: Vec<PathBuf>,
    /// Local variables: 0 none, 1 and more as `dump --locals`.
    pub locals: u64,
    /// Native frames among the Python ones.
    pub native: bool,
}

/// Read the core and write its snapshot into a new session at `path`.
pub fn core_session(req: &CoreRequest, path: &Path) -> Result<CoreSnapshot> {
    crate::store::schema::session_target(path)?;
    let core = open_core(&req.core, &req.binaries)?;
    let opts = CoreOptions {
        locals: req.locals,
        full_filenames: false,
        native: req.native,
    };
    let snap = read_core(&core, opts)?;
    let version = snap.version.to_string();
    let start = CaptureStart {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: snap.command_line.clone(),
        started: Started::Core,
        pid: snap.pid,
        python: version.clone(),
        host: String::new(),
        options: SamplingOptions {
            rate: 1,
            duration: RecordDuration::Seconds(0),
            blocking: LockingStrategy::Lock,
            native: req.native,
            subprocesses: false,
        },
    };
    let mut writer = SessionWriter::create(path, &start)
        .with_context(|| format!("could not create session file {}", path.display()))?;
    writer.add_process(snap.pid, None, &snap.command_line, Some(&version))?;
    writer.set_executable(snap.pid, &snap.executable)?;
    let mut tally = Tally::default();
    for (t, fault) in snap.threads.iter().zip(&snap.faults) {
        store_trace(&mut writer, t, *fault)?;
        tally.samples += 1;
        tally.error_samples += u64::from(fault.is_some());
    }
    tally.snapshots = 1;
    writer.set_end(&tally.end(0, 0, StopReason::Snapshot))?;
    writer.finish()?;
    Ok(snap)
}

/// One thread of the core: its frames interned, the sample, and its details.
fn store_trace(
    writer: &mut SessionWriter,
    t: &StackTrace,
    fault: Option<StackFault>,
) -> Result<()> {
    let mut ids = Vec::with_capacity(t.frames.len());
    for f in &t.frames {
        let qualname: Arc<str> = Arc::from(f.name.as_str());
        let key = FrameKey {
            function: Arc::from(f.name.rsplit('.').next().unwrap_or(&f.name)),
            qualname,
            filename: Arc::from(f.filename.as_str()),
            short_filename: f.short_filename.as_deref().map(Arc::from),
            line: f.line,
            first_line: 0,
            module: f.module.as_deref().map(Arc::from),
        };
        ids.push(writer.intern_frame(&key)?);
    }
    let key = ThreadKey {
        pid: t.pid,
        thread_id: t.thread_id,
    };
    let flags = if t.active { FLAG_ACTIVE } else { 0 } | if t.owns_gil { FLAG_GIL } else { 0 };
    if let Some(fault) = fault {
        let at = ThreadAt {
            t_us: 0,
            thread: key,
            os_thread_id: t.os_thread_id,
            name: t.thread_name.as_deref(),
            flags,
            late_us: 0,
        };
        // Nothing ran on while a core was read: a chain that fails the walker's checks has
        // missing or zeroed memory in the core.
        let (kind, message) = match fault {
            StackFault::Changed => (
                "core_inconsistent",
                "the core's copy of this stack is inconsistent: memory is missing or zero \
                 (gdb's gcore writes zeros where it cannot read the process)",
            ),
            f => (f.as_str(), f.describe()),
        };
        return SampleSink::add_error_sample(writer, &at, kind, message, &ids);
    }
    writer.add_sample_ids(
        0,
        key,
        t.os_thread_id,
        t.thread_name.as_deref(),
        &ids,
        flags,
        0,
    )?;
    let details = frame_details(
        t.frames
            .iter()
            .map(|f| (f.is_entry, f.is_shim_entry, f.locals.clone())),
    );
    writer.add_details(0, key, details)
}
