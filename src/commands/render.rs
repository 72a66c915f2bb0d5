//! `py-spy render`: replay a session file into one of the output formats.

use anyhow::Result;
use std::path::{Path, PathBuf};

use super::output::Output;
use crate::render::{self, formats, RenderOptions, RenderSummary};
use crate::store::Session;

/// Render `session` into `output` ("-": standard output; a regular file appears whole or
/// not at all, see [`Output`]).
pub fn render_to(session: &Session, opts: &RenderOptions, output: &Path) -> Result<RenderSummary> {
    let mut out = Output::open(output)?;
    let summary = render::render(session, opts, out.writer())?;
    out.commit()?;
    Ok(summary)
}

/// What `render` is asked to do.
pub struct Render {
    pub session: PathBuf,
    /// Where to write ("-": standard output); by default the session's name with the
    /// format's own suffix (`Format::render_suffix`).
    pub output: Option<PathBuf>,
    pub options: RenderOptions,
    /// Draw how the session differs from this one (`--diff BASE`).
    pub diff_base: Option<PathBuf>,
}

/// `py-spy render`: open the session, render it, and say what was written.
pub fn run(req: &Render) -> Result<()> {
    let session = Session::open(&req.session)?;
    for what in &session.meta.damaged {
        eprintln!(
            "Warning: {} has a damaged meta table: {what}",
            req.session.display()
        );
    }
    let output = req.output.clone().unwrap_or_else(|| {
        req.session
            .with_extension(formats::spec(req.options.format).render_suffix)
    });
    let summary = match &req.diff_base {
        Some(base_path) => {
            let base = Session::open(base_path)?;
            let mut out = Output::open(&output)?;
            let summary = render::render_diff(&base, &session, &req.options, out.writer())?;
            out.commit()?;
            summary
        }
        None => render_to(&session, &req.options, &output)?,
    };
    if let Some(why) = &summary.nothing_kept {
        eprintln!("Warning: {why}");
    }
    if output == Path::new("-") {
        return Ok(());
    }
    let view = &req.options.view;
    let left_out = match (summary.dropped, view.gil_only, view.idle) {
        (0, _, _) => String::new(),
        (n, false, _) => format!(
            " ({} left out; --idle includes them)",
            crate::render::plural(n, "idle sample", "idle samples")
        ),
        (n, true, false) => format!(
            " ({} left out by --gil; --idle includes idle threads)",
            crate::render::plural(n, "idle or non-GIL sample", "idle or non-GIL samples")
        ),
        (n, true, true) => format!(
            " ({} left out by --gil)",
            crate::render::plural(n, "non-GIL sample", "non-GIL samples")
        ),
    };
    eprintln!(
        "Wrote {} to '{}'{left_out}",
        crate::render::plural(summary.samples, "sample", "samples"),
        output.display()
    );
    if let Some(note) = &summary.errors_note {
        eprintln!("{note}");
    }
    Ok(())
}
