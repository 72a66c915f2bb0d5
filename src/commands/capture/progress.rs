//! The progress line a capture draws on a terminal: elapsed time against the duration (or a
//! spinner), samples, errors and the session's size, and how far sampling is behind.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use super::tally::Tally;
use super::{file_size, format_bytes, CaptureOptions};
use crate::model::config::RecordDuration;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

pub(super) struct Progress {
    bar: ProgressBar,
    begin: Instant,
    last_draw: Instant,
}

impl Progress {
    /// A progress line on stderr, or none (`--hideprogress`, or stderr is not a terminal).
    pub(super) fn new(opts: &CaptureOptions) -> Progress {
        let now = Instant::now();
        Progress {
            bar: progress_bar(opts),
            begin: now,
            last_draw: now,
        }
    }

    /// Redraw, at most every [`PROGRESS_EVERY`]; `late` is how late the last tick was.
    pub(super) fn update(&mut self, tally: &Tally, late: Duration, path: &Path) {
        if self.bar.is_hidden() || self.last_draw.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last_draw = Instant::now();
        self.bar
            .set_position(self.begin.elapsed().as_millis() as u64);
        let mut msg = format!(
            "{} samples, {} errors, {}",
            tally.samples,
            tally.errors,
            format_bytes(file_size(path))
        );
        if late > Duration::from_secs(1) {
            msg.push_str(&format!("  ({late:.1?} behind: try a lower rate)"));
        }
        self.bar.set_message(msg);
    }

    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn progress_bar(opts: &CaptureOptions) -> ProgressBar {
    if !opts.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match opts.sampling.duration {
        RecordDuration::Seconds(s) => {
            let bar = ProgressBar::with_draw_target(
                Some(s.saturating_mul(1000)),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:30.green/dim} {elapsed:>4} of {len_s}  {msg}")
                    .expect("valid template")
                    .with_key(
                        "len_s",
                        |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = write!(w, "{}s", s.len().unwrap_or(0) / 1000);
                        },
                    ),
            );
            bar
        }
        RecordDuration::Unlimited => {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.green} {elapsed:>4}  {msg}  (Ctrl-C stops)",
                )
                .expect("valid template"),
            );
            bar
        }
    };
    bar
}
