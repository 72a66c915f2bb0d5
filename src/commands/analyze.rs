//! `py-spy analyze`: a recording as a table of where the time went, per function, line,
//! file, module, thread or process; or (`--dump`) one snapshot's stacks; or (`--timeline`)
//! each thread's activity over time.

use anyhow::{bail, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analyze::snapshot::snapshot_at;
use crate::analyze::top::{top, GroupBy, SortBy};
use crate::analyze::View;
use crate::render::dump::write_snapshot;
use crate::render::table::{write_top, TableFormat};
use crate::store::Session;

/// What `analyze` is asked to do.
pub struct Analyze {
    pub session: PathBuf,
    pub view: View,
    pub by: GroupBy,
    pub sort: SortBy,
    /// Rows shown at most (`None`: all).
    pub limit: Option<usize>,
    pub format: TableFormat,
    /// Compare with this recording (`--diff BASE`).
    pub diff_base: Option<PathBuf>,
}

/// `analyze --dump`: every thread's stack at the snapshot nearest `at_s` (the last one
/// without it), printed as `py-spy dump` prints a live process, one block per process.
pub fn dump(
    session_path: &Path,
    at_s: Option<f64>,
    full_filenames: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let session = Session::open(session_path)?;
    let Some(snap) = snapshot_at(&session, at_s, full_filenames)? else {
        bail!("{} holds no samples", session_path.display());
    };
    eprintln!("Snapshot at {:.3} s", snap.t_us as f64 / 1e6);
    let python = session.meta.start.as_ref().map(|s| s.python.clone());
    write_snapshot(
        out,
        &snap,
        python.as_deref(),
        json,
        super::rule_width(),
        None,
    )?;
    out.flush()?;
    Ok(())
}

/// `analyze --timeline`: each thread's activity per time bucket.
pub fn timeline(
    session_path: &Path,
    bucket_s: Option<f64>,
    threads: &[String],
    format: TableFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let session = Session::open(session_path)?;
    let tl = crate::analyze::timeline::timeline(&session, bucket_s, threads)?;
    crate::render::timeline::write_timeline(out, &tl, format)?;
    out.flush()?;
    Ok(())
}

/// Open the session, aggregate it and write the table to `out`; notes go to standard error.
pub fn run(req: &Analyze, out: &mut dyn Write) -> Result<()> {
    let session = Session::open(&req.session)?;
    for what in &session.meta.damaged {
        eprintln!(
            "Warning: {} has a damaged meta table: {what}",
            req.session.display()
        );
    }
    if let Some(base_path) = &req.diff_base {
        let base = Session::open(base_path)?;
        let base_table = top(&base, &req.view, req.by)?;
        let new_table = top(&session, &req.view, req.by)?;
        let rows = crate::analyze::top::diff(&base_table, &new_table);
        crate::render::table::write_diff_table(out, req.by, &rows, req.format, req.limit)?;
        out.flush()?;
        if req.format == TableFormat::Table {
            eprintln!(
                "{} samples against {} in {}; shares are of each recording's own samples",
                new_table.samples,
                base_table.samples,
                base_path.display()
            );
        }
        return Ok(());
    }
    let mut table = top(&session, &req.view, req.by)?;
    table.sort(req.sort);
    if let Some(why) = &table.nothing_kept {
        eprintln!("Warning: {why}");
    }
    write_top(out, &table, req.format, req.limit)?;
    out.flush()?;
    if req.format == TableFormat::Table {
        let shown = req.limit.unwrap_or(usize::MAX).min(table.rows.len());
        let mut note = format!(
            "{} samples ({:.1} s of thread time)",
            table.samples,
            table.seconds(table.samples)
        );
        if shown < table.rows.len() {
            note.push_str(&format!(
                "; {shown} of {} rows shown (--limit)",
                table.rows.len()
            ));
        }
        if table.dropped > 0 && !req.view.idle {
            note.push_str(&format!(
                "; {} idle samples left out (--idle includes them)",
                table.dropped
            ));
        }
        if table.errors_left_out > 0 && !req.view.errors {
            note.push_str(&format!(
                "; {} samples whose stack could not be read left out (--errors shows them)",
                table.errors_left_out
            ));
        }
        eprintln!("{note}");
    }
    Ok(())
}
