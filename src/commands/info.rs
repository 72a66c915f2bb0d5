//! `py-spy info`: what a recording holds, as text or JSON.

use anyhow::Result;
use std::io::Write;
use std::path::Path;

use crate::analyze::info::describe;
use crate::render::info::write_info;
use crate::store::Session;

/// Describe the session at `path` on `out`.
pub fn run(path: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let session = Session::open(path)?;
    for what in &session.meta.damaged {
        eprintln!(
            "Warning: {} has a damaged meta table: {what}",
            path.display()
        );
    }
    let info = describe(path, &session)?;
    if json {
        serde_json::to_writer_pretty(&mut *out, &info)?;
        writeln!(out)?;
    } else {
        write_info(out, &info)?;
    }
    out.flush()?;
    Ok(())
}
