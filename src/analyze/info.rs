//! What a recording holds, for `py-spy info`: the target, the capture's settings and how it
//! went, and counts from one pass over the samples (samples and error samples, lateness,
//! samples per thread) that also work on a file whose capture was killed or is still
//! running.

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::store::{SampleFilter, Session};

/// A recording described.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub file: String,
    pub file_bytes: u64,
    pub format_version: i32,
    pub tool_version: Option<String>,
    pub command_line: Option<String>,
    /// `attached` or `spawned`.
    pub started: Option<String>,
    pub pid: Option<i32>,
    pub python: Option<String>,
    pub host: Option<String>,
    /// Unix time in microseconds, and as UTC text.
    pub start_unix_us: u64,
    pub start_utc: String,
    /// Seconds from the start to the end of the capture (to the last sample when it did not
    /// end normally).
    pub duration_s: f64,
    /// How the capture ended (`duration`, `interrupted`, `process_exited`), or `None` when it
    /// did not end normally: killed, or still running.
    pub stop_reason: Option<String>,
    pub ended_normally: bool,
    pub requested_rate: u64,
    /// Snapshots per second achieved.
    pub achieved_rate: f64,
    pub blocking: bool,
    pub subprocesses: bool,
    pub snapshots: u64,
    pub samples: u64,
    pub error_samples: u64,
    /// Snapshots that failed as a whole while the process was alive, and why the last did.
    pub failed_snapshots: Option<u64>,
    pub last_error: Option<String>,
    pub late_snapshots: Option<u64>,
    pub skipped_ticks: Option<u64>,
    /// The latest snapshot against its due time, in milliseconds.
    pub worst_lateness_ms: f64,
    pub longest_pause_ms: Option<f64>,
    pub unpaused_snapshots: Option<u64>,
    pub processes: Vec<ProcessInfo>,
    pub threads: Vec<ThreadInfo>,
    pub distinct_frames: usize,
    pub distinct_stacks: usize,
    pub bytes_per_sample: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub command_line: String,
    pub python: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThreadInfo {
    pub pid: Option<i32>,
    pub thread_id: u64,
    pub os_thread_id: Option<u64>,
    /// (seconds since the start, name), oldest first.
    pub names: Vec<(f64, String)>,
    pub samples: u64,
}

/// Describe the session at `path`, opened as `session`.
pub fn describe(path: &Path, session: &Session) -> Result<SessionInfo> {
    let meta = &session.meta;
    let start = meta.start.as_ref();
    let end = meta.end.as_ref();
    let (mut samples, mut errors, mut worst_late_us) = (0u64, 0u64, 0u32);
    let mut per_thread: BTreeMap<u32, u64> = BTreeMap::new();
    // Without an end record, snapshots are counted as distinct sample times.
    let (mut times, mut last_t) = (0u64, None);
    let mut last_sample_us = 0;
    for s in session.samples(&SampleFilter::default())? {
        let s = s.context("could not read the session's samples")?;
        samples += 1;
        errors += s.error() as u64;
        worst_late_us = worst_late_us.max(s.late_us);
        *per_thread.entry(s.thread).or_default() += 1;
        if last_t != Some(s.t_us) {
            times += 1;
            last_t = Some(s.t_us);
        }
        last_sample_us = last_sample_us.max(s.t_us);
    }
    let duration_us = end.map_or(last_sample_us, |e| e.end_us);
    let duration_s = duration_us as f64 / 1e6;
    let snapshots = end.map_or(times, |e| e.snapshots);
    let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let threads = session
        .threads
        .iter()
        .enumerate()
        .map(|(i, t)| ThreadInfo {
            pid: session.processes.get(t.process as usize).map(|p| p.pid),
            thread_id: t.thread_id,
            os_thread_id: t.os_thread_id,
            names: t
                .names
                .iter()
                .map(|(since, name)| (*since as f64 / 1e6, name.clone()))
                .collect(),
            samples: per_thread.get(&(i as u32)).copied().unwrap_or(0),
        })
        .collect();
    Ok(SessionInfo {
        file: path.display().to_string(),
        file_bytes,
        format_version: session.version,
        tool_version: start.map(|s| s.tool_version.clone()),
        command_line: start.map(|s| s.command_line.clone()),
        started: start.map(|s| s.started.as_str().to_string()),
        pid: start.map(|s| s.pid),
        python: start.map(|s| s.python.clone()),
        host: start.map(|s| s.host.clone()),
        start_unix_us: meta.start_unix_us,
        start_utc: utc_text(meta.start_unix_us),
        duration_s,
        stop_reason: end.map(|e| e.stop_reason.clone()),
        ended_normally: end.is_some(),
        requested_rate: meta.rate(),
        achieved_rate: if duration_s > 0.0 {
            snapshots as f64 / duration_s
        } else {
            0.0
        },
        blocking: start
            .is_none_or(|s| s.options.blocking == crate::model::config::LockingStrategy::Lock),
        subprocesses: meta.subprocesses(),
        snapshots,
        samples,
        error_samples: errors,
        failed_snapshots: end.map(|e| e.errors),
        last_error: end.and_then(|e| e.last_error.clone()),
        late_snapshots: end.map(|e| e.late_snapshots),
        skipped_ticks: end.map(|e| e.skipped_ticks),
        worst_lateness_ms: worst_late_us as f64 / 1e3,
        longest_pause_ms: end.map(|e| e.longest_pause_us as f64 / 1e3),
        unpaused_snapshots: end.map(|e| e.unpaused_snapshots),
        processes: session
            .processes
            .iter()
            .map(|p| ProcessInfo {
                pid: p.pid,
                command_line: p.command_line.clone(),
                python: p.python.clone(),
            })
            .collect(),
        threads,
        distinct_frames: session.frames.len(),
        distinct_stacks: session.stacks.len(),
        bytes_per_sample: file_bytes as f64 / samples.max(1) as f64,
    })
}

/// `unix_us` as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_text(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (the proleptic Gregorian calendar).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400_000_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            utc_text(1_795_996_800_000_000 + 3_723_000_000),
            "2026-11-30 01:02:03 UTC"
        );
    }
}
