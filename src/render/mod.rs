//! Output formats. [`dump`] prints one snapshot as py-spy 0.4's `dump` does; the others
//! replay a session file through an [`analyze::View`](crate::analyze::View) into a file py-spy
//! users know, and are listed with their extensions and messages in [`formats`]:
//!
//! - [`collapsed`]: raw collapsed stacks (`frame;frame;frame count`), and the flamegraph SVG
//!   drawn from them by inferno;
//! - [`speedscope`]: speedscope's JSON file format, one sampled profile per thread;
//! - [`chrometrace`]: Trace Event Format JSON for Chrome's tracing and Perfetto.
//!
//! [`diff`] compares two recordings (a differential flamegraph). [`table`] writes `analyze`'s table as text, CSV or JSON, [`timeline`] its
//! activity chart, [`info`] `info`'s description,
//! [`query`] the rows of `py-spy query`, [`live`] `top`'s screen.

pub mod chrometrace;
pub mod collapsed;
pub mod diff;
pub mod dump;
pub mod formats;
pub mod info;
pub mod live;
pub mod query;
pub mod speedscope;
pub mod table;
pub mod timeline;

use anyhow::Result;
use std::io::Write;

use crate::analyze::{Replay, View};
use crate::store::Session;

/// How to render a session.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub format: crate::model::config::FileFormat,
    pub view: View,
    /// Flamegraph title (py-spy uses the command line that made the profile).
    pub title: Option<String>,
}

/// What a render wrote.
#[derive(Debug, Clone, Default)]
pub struct RenderSummary {
    /// Samples written (thread stacks).
    pub samples: u64,
    /// Samples left out by the idle and GIL rules.
    pub dropped: u64,
    /// Error samples (stack unknown) left out, and a line saying why, by reason.
    pub errors_left_out: u64,
    pub errors_note: Option<String>,
    /// Why no sample passed the view, when none did.
    pub nothing_kept: Option<String>,
}

/// Replay `session` through the view and write it in the chosen format.
pub fn render(
    session: &Session,
    opts: &RenderOptions,
    out: &mut dyn Write,
) -> Result<RenderSummary> {
    let format = formats::spec(opts.format);
    let mut view = opts.view.clone();
    if format.separates_threads {
        view.thread_frames = false;
    }
    let mut replay = Replay::new(session, &view)?;
    let samples = (format.write)(&mut replay, opts, out)?;
    Ok(RenderSummary {
        samples,
        // Every format writes a valid, empty output then (py-spy's `record --gil` of an idle
        // program does too); the commands say why.
        nothing_kept: (replay.kept == 0).then(|| replay.nothing_kept_reason()),
        dropped: replay.dropped,
        errors_left_out: replay.errors_left_out_total(),
        errors_note: replay.errors_note(),
    })
}

/// Replay `base` and `new` through the same view and write how `new` differs (a
/// differential flamegraph, or its collapsed lines for `raw`).
pub fn render_diff(
    base: &Session,
    new: &Session,
    opts: &RenderOptions,
    out: &mut dyn Write,
) -> Result<RenderSummary> {
    let mut base_replay = Replay::new(base, &opts.view)?;
    let mut new_replay = Replay::new(new, &opts.view)?;
    let (_, samples) = diff::write_diff(
        &mut base_replay,
        &mut new_replay,
        opts.format,
        opts.title.as_deref(),
        out,
    )?;
    Ok(RenderSummary {
        samples,
        nothing_kept: (new_replay.kept == 0 && base_replay.kept == 0)
            .then(|| new_replay.nothing_kept_reason()),
        dropped: new_replay.dropped,
        errors_left_out: new_replay.errors_left_out_total(),
        errors_note: new_replay.errors_note(),
    })
}

/// The capture's sampling rate (snapshots per second), from the session's meta table.
pub fn session_rate(session: &Session) -> u64 {
    session.meta.rate()
}

/// Human-readable byte count.
pub fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 10 << 20 => format!("{} MiB", n >> 20),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 10 << 10 => format!("{} KiB", n >> 10),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `n` and the word for that many: `1 sample`, `2 samples`.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
