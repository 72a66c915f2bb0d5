//! The output formats in one registry: a format's name, file extension, writer and the
//! lines `record` prints once it is written. A new format is one entry here (and its name in
//! `model::config::FileFormat`, py-spy's public enum), plus its writer module.

use anyhow::Result;
use std::io::Write;
use std::path::Path;

use super::{chrometrace, collapsed, speedscope, RenderOptions};
use crate::analyze::Replay;
use crate::model::config::FileFormat;

/// Writes a replay in a format; returns the samples written.
pub type Writer = fn(&mut Replay, &RenderOptions, &mut dyn Write) -> Result<u64>;

/// One output format.
pub struct Format {
    pub format: FileFormat,
    /// The usual file extension (without the dot).
    pub extension: &'static str,
    /// What `render` puts in place of a session's `.pyspy` when no output is named: its own
    /// for each format, so that rendering one session in two formats never replaces one
    /// output by another (`run.speedscope.json`, `run.trace.json`).
    pub render_suffix: &'static str,
    pub write: Writer,
    /// What the file holds, in `record`'s `Wrote WHAT to 'OUT'. Samples: N Errors: E`.
    pub what: &'static str,
    /// `record`'s next line: where to look at the file.
    pub hint: &'static str,
    /// The format keeps threads apart itself (a profile per thread): `--threads` adds no
    /// thread frame at the root of its stacks.
    pub separates_threads: bool,
}

impl Format {
    /// What `record` prints once `out` is written (py-spy 0.4's words).
    pub fn wrote(&self, out: &Path, samples: u64, errors: u64) -> String {
        format!(
            "Wrote {} to '{}'. Samples: {samples} Errors: {errors}\n{}",
            self.what,
            out.display(),
            self.hint
        )
        .trim_end()
        .to_string()
    }
}

/// Every format, in `FileFormat::ALL`'s order.
pub const FORMATS: &[Format] = &[
    Format {
        format: FileFormat::flamegraph,
        render_suffix: "svg",
        extension: "svg",
        write: |replay, opts, out| collapsed::write_flamegraph(replay, opts.title.as_deref(), out),
        what: "flamegraph data",
        hint: "",
        separates_threads: false,
    },
    Format {
        format: FileFormat::raw,
        render_suffix: "txt",
        extension: "txt",
        write: |replay, _, out| collapsed::write_raw(replay, out),
        what: "raw flamegraph data",
        hint: "You can use the flamegraph.pl script from \
               https://github.com/brendangregg/flamegraph to generate a SVG",
        separates_threads: false,
    },
    Format {
        format: FileFormat::speedscope,
        render_suffix: "speedscope.json",
        extension: "json",
        write: |replay, _, out| speedscope::write(replay, out),
        what: "speedscope file",
        hint: "Visit https://www.speedscope.app/ to view",
        separates_threads: true,
    },
    Format {
        format: FileFormat::chrometrace,
        render_suffix: "trace.json",
        extension: "json",
        write: |replay, _, out| chrometrace::write(replay, out),
        what: "chrome trace",
        hint: "Visit chrome://tracing or https://ui.perfetto.dev/ to view",
        separates_threads: false,
    },
];

/// The registry entry of `format`.
pub fn spec(format: FileFormat) -> &'static Format {
    FORMATS
        .iter()
        .find(|f| f.format == format)
        .expect("every FileFormat has an entry in FORMATS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_one_entry_in_order() {
        let listed: Vec<FileFormat> = FORMATS.iter().map(|f| f.format).collect();
        assert_eq!(listed, FileFormat::ALL);
        for f in FileFormat::ALL {
            assert_eq!(f.name().parse::<FileFormat>(), Ok(f));
            assert_eq!(f.name().to_uppercase().parse::<FileFormat>(), Ok(f));
        }
        assert!("svg".parse::<FileFormat>().is_err());
        let suffixes: std::collections::HashSet<&str> =
            FORMATS.iter().map(|f| f.render_suffix).collect();
        assert_eq!(
            suffixes.len(),
            FORMATS.len(),
            "each format its own default name"
        );
        assert_eq!(
            spec(FileFormat::flamegraph).wrote(Path::new("a.svg"), 3, 1),
            "Wrote flamegraph data to 'a.svg'. Samples: 3 Errors: 1"
        );
        assert_eq!(
            spec(FileFormat::speedscope).wrote(Path::new("a.json"), 3, 0),
            "Wrote speedscope file to 'a.json'. Samples: 3 Errors: 0\n\
             Visit https://www.speedscope.app/ to view"
        );
    }
}
