//! Differential output (`render NEW --diff BASE`): the two recordings' collapsed stacks side
//! by side (`stack base_count new_count`, the base scaled to the new one's sample count, as
//! inferno's `diff-folded --normalize` does), written raw or drawn as inferno's differential
//! flamegraph (red: more of the new recording's time, blue: less).

use anyhow::{anyhow, bail, Result};
use std::io::Write;

use super::collapsed::{collapse, write_message_svg};
use crate::analyze::Replay;
use crate::model::config::FileFormat;

/// Write the difference from `base` to `new` in `format` (flamegraph or raw); returns the
/// samples of (base, new).
pub fn write_diff(
    base: &mut Replay,
    new: &mut Replay,
    format: FileFormat,
    title: Option<&str>,
    out: &mut dyn Write,
) -> Result<(u64, u64)> {
    if !matches!(format, FileFormat::flamegraph | FileFormat::raw) {
        bail!(
            "--diff draws a flamegraph or raw collapsed stacks, not {}",
            format.name()
        );
    }
    let (base_lines, base_total) = collapse(base)?;
    let (new_lines, new_total) = collapse(new)?;
    let joined = |lines: &[String]| lines.join("\n").into_bytes();
    let mut diff = Vec::new();
    inferno::differential::from_readers(
        inferno::differential::Options {
            normalize: true,
            strip_hex: false,
        },
        &joined(&base_lines)[..],
        &joined(&new_lines)[..],
        &mut diff,
    )
    .map_err(|e| anyhow!("could not compare the recordings: {e}"))?;
    let text = String::from_utf8_lossy(&diff);
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    if format == FileFormat::raw {
        for line in &lines {
            writeln!(out, "{line}")?;
        }
        return Ok((base_total, new_total));
    }
    let title = title.unwrap_or("py-spy differential flamegraph");
    if lines.is_empty() {
        write_message_svg(out, title, "no samples in either recording")?;
        return Ok((base_total, new_total));
    }
    let mut opts = inferno::flamegraph::Options::default();
    opts.direction = inferno::flamegraph::Direction::Inverted;
    opts.min_width = 0.1;
    opts.title = title.to_string();
    opts.subtitle = Some(format!(
        "widths: the new recording ({new_total} samples); colours: change from the base \
         ({base_total} samples, scaled), red more, blue less"
    ));
    super::collapsed::draw(&mut opts, lines.iter().copied(), out)?;
    Ok((base_total, new_total))
}
