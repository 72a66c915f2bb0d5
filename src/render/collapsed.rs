//! Collapsed stacks (`root;...;leaf count` per line, what flamegraph.pl and inferno read) and
//! the flamegraph SVG drawn from them with inferno, styled as py-spy draws it (icicle
//! direction, frames narrower than 0.1 pixel left out, the command line as title).

use anyhow::{anyhow, Result};
use std::io::Write;

use super::session_rate;
use crate::analyze::Replay;

/// Count samples per view stack; returns the lines, sorted, and the sample count.
pub(crate) fn collapse(replay: &mut Replay) -> Result<(Vec<String>, u64)> {
    let mut counts: Vec<u64> = Vec::new();
    let mut total = 0u64;
    replay.for_each(|_, s| {
        let i = s.stack as usize;
        if counts.len() <= i {
            counts.resize(i + 1, 0);
        }
        counts[i] += 1;
        total += 1;
        Ok(())
    })?;
    let labels: Vec<String> = replay.frames.iter().map(|f| f.label()).collect();
    let mut lines: Vec<String> = Vec::new();
    for (stack, count) in counts.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        let frames = &replay.stacks[stack];
        let mut line = String::new();
        for (i, f) in frames.iter().enumerate() {
            if i > 0 {
                line.push(';');
            }
            line.push_str(&labels[*f as usize]);
        }
        if frames.is_empty() {
            // A thread with no Python frame at all: keep its time visible.
            line.push_str("<no Python frames>");
        }
        line.push(' ');
        line.push_str(&count.to_string());
        lines.push(line);
    }
    lines.sort_unstable();
    Ok((lines, total))
}

/// Raw collapsed stacks, one line per distinct stack.
pub fn write_raw(replay: &mut Replay, out: &mut dyn Write) -> Result<u64> {
    let (lines, total) = collapse(replay)?;
    for line in &lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(total)
}

/// A flamegraph SVG.
pub fn write_flamegraph(
    replay: &mut Replay,
    title: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64> {
    let (lines, total) = collapse(replay)?;
    if lines.is_empty() {
        // inferno draws nothing from no lines: a small SVG that says why, so the file is a
        // valid image like every other format's empty output.
        let why = replay.nothing_kept_reason();
        write_message_svg(out, title.unwrap_or("py-spy"), &why)?;
        return Ok(0);
    }
    let session = replay.session();
    let mut opts = inferno::flamegraph::Options::default();
    opts.direction = inferno::flamegraph::Direction::Inverted;
    opts.min_width = 0.1;
    opts.title = title
        .map(str::to_string)
        .unwrap_or_else(|| "py-spy".to_string());
    let span_s = session.meta.duration_s();
    let start = session.meta.start.as_ref();
    let mut subtitle = match start.map(|s| s.command_line.as_str()) {
        Some(c) if !c.is_empty() => c.to_string(),
        _ => "profile".to_string(),
    };
    if let Some(v) = start.map(|s| &s.python).filter(|v| !v.is_empty()) {
        subtitle.push_str(&format!(" (Python {v})"));
    }
    subtitle.push_str(&format!(": {total} samples"));
    if let Some(s) = span_s {
        subtitle.push_str(&format!(" in {s:.1} s"));
    }
    subtitle.push_str(&format!(" at {} Hz", session_rate(session)));
    opts.subtitle = Some(subtitle);
    draw(&mut opts, lines.iter().map(String::as_str), out)?;
    Ok(total)
}

/// Draw collapsed `lines` as an SVG with inferno. A failure to write (a reader that went
/// away, a full disk) stays an I/O error, so the command can tell it apart.
pub fn draw<'a>(
    opts: &mut inferno::flamegraph::Options,
    lines: impl IntoIterator<Item = &'a str>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut watched = KeepIoError { out, error: None };
    inferno::flamegraph::from_lines(opts, lines, &mut watched).map_err(|e| match watched.error {
        Some(kind) => anyhow::Error::from(std::io::Error::from(kind))
            .context("could not write the flamegraph"),
        None => anyhow!("could not draw the flamegraph: {e}"),
    })
}

/// A writer that remembers the kind of the last I/O error it passed on.
struct KeepIoError<'a> {
    out: &'a mut dyn Write,
    error: Option<std::io::ErrorKind>,
}

impl Write for KeepIoError<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out
            .write(buf)
            .inspect_err(|e| self.error = Some(e.kind()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out
            .flush()
            .inspect_err(|e| self.error = Some(e.kind()))
    }
}

/// An SVG that shows `title` and a `message` (where there is nothing to draw).
pub(crate) fn write_message_svg(out: &mut dyn Write, title: &str, message: &str) -> Result<()> {
    write!(
        out,
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"70\" \
         xmlns=\"http://www.w3.org/2000/svg\">\n\
         <text x=\"600\" y=\"26\" text-anchor=\"middle\" font-family=\"Verdana\" \
         font-size=\"17\">{}</text>\n\
         <text x=\"600\" y=\"52\" text-anchor=\"middle\" font-family=\"Verdana\" \
         font-size=\"12\">{}</text>\n</svg>\n",
        xml_escape(title),
        xml_escape(message)
    )?;
    Ok(())
}

/// `text` with XML's special characters escaped.
fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
