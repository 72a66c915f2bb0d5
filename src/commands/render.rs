//! `py-spy render`: replay a session file into one of the output formats.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::render::{self, RenderOptions, RenderSummary};
use crate::store::Session;

/// Render `session` into `output` ("-": standard output).
pub fn render_to(session: &Session, opts: &RenderOptions, output: &Path) -> Result<RenderSummary> {
    if output == Path::new("-") {
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let summary = render::render(session, opts, &mut out)?;
        out.flush()?;
        return Ok(summary);
    }
    let file = File::create(output)
        .with_context(|| format!("could not create output file {}", output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let summary = render::render(session, opts, &mut out)?;
    out.flush()
        .with_context(|| format!("could not write output file {}", output.display()))?;
    Ok(summary)
}
