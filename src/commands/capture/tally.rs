//! What a capture counts as it goes: snapshots, samples, errors and lateness.

use std::time::Duration;

use crate::capture::timer::StopReason;
use crate::store::CaptureEnd;

/// The running counts of a capture.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Snapshot ticks taken (each covers every thread of every process).
    pub snapshots: u64,
    /// Thread samples written, error samples included.
    pub samples: u64,
    /// Snapshots of a process that failed while the process was alive.
    pub errors: u64,
    /// Thread samples written as errors, and failed snapshots before any thread was known.
    pub error_samples: u64,
    /// Ticks taken more than a period late, and the worst lateness.
    pub late: u64,
    pub max_late: Duration,
    pub last_error: Option<String>,
    /// The longest pause of a target for one snapshot (blocking mode).
    pub longest_pause: Duration,
    /// Snapshots of a process taken without pausing it in blocking mode, because pausing all
    /// its threads would have stopped it too long.
    pub unpaused: u64,
}

impl Tally {
    /// A tick was taken `late` after its due time, with sampling period `period`.
    pub fn tick(&mut self, late: Duration, period: Duration) {
        if late > period {
            self.late += 1;
        }
        self.max_late = self.max_late.max(late);
    }
}

impl Tally {
    /// How the capture ended, for the session's meta table.
    pub fn end(&self, end_us: u64, skipped_ticks: u64, stop: StopReason) -> CaptureEnd {
        CaptureEnd {
            end_us,
            snapshots: self.snapshots,
            samples: self.samples,
            errors: self.errors,
            error_samples: self.error_samples,
            late_snapshots: self.late,
            skipped_ticks,
            stop_reason: stop.as_str().to_string(),
            last_error: self.last_error.clone(),
            longest_pause_us: self.longest_pause.as_micros() as u64,
            unpaused_snapshots: self.unpaused,
        }
    }
}
