//! `py-spy analyze`: a recording as a table of where the time went, per function, line,
//! file, module, thread or process.

use anyhow::Result;
use std::io::Write;
use std::path::PathBuf;

use crate::analyze::top::{top, GroupBy, SortBy};
use crate::analyze::View;
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
