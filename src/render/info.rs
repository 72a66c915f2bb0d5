//! `py-spy info`'s text: a recording described for people (`--json` writes the same
//! [`SessionInfo`] as JSON).

use anyhow::Result;
use std::io::Write;

use crate::analyze::info::SessionInfo;
use crate::render::format_bytes;

/// Write `info` as text.
pub fn write_info(out: &mut dyn Write, info: &SessionInfo) -> Result<()> {
    let or_unknown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
    writeln!(out, "Session      {}", info.file)?;
    writeln!(
        out,
        "Target       {} (process {}, {})",
        or_unknown(&info.command_line),
        info.pid.map_or("unknown".into(), |p| p.to_string()),
        or_unknown(&info.started)
    )?;
    writeln!(out, "Python       {}", or_unknown(&info.python))?;
    writeln!(out, "Host         {}", or_unknown(&info.host))?;
    writeln!(out, "Started      {}", info.start_utc)?;
    let ended = match &info.stop_reason {
        Some(reason) => format!("ended normally ({})", reason.replace('_', " ")),
        None => "did not end normally: the capture was killed, or is still running".into(),
    };
    let pausing = if info.blocking {
        "pausing the program for each snapshot"
    } else {
        "without pausing the program"
    };
    if info.started.as_deref() == Some("core") {
        writeln!(out, "Duration     one snapshot, read from a core file")?;
    } else if info.stop_reason.as_deref() == Some("snapshot") {
        let pausing = if info.blocking {
            "pausing the program"
        } else {
            pausing
        };
        writeln!(
            out,
            "Duration     one snapshot, taken by `dump` ({pausing})"
        )?;
    } else {
        writeln!(out, "Duration     {:.2} s, {ended}", info.duration_s)?;
        writeln!(
            out,
            "Rate         {} Hz requested, {:.1} Hz achieved ({pausing})",
            info.requested_rate, info.achieved_rate,
        )?;
    }
    writeln!(
        out,
        "Snapshots    {}; {} samples, {} of them errors (stack unreadable)",
        info.snapshots, info.samples, info.error_samples
    )?;
    let mut timing = format!("worst lateness {:.1} ms", info.worst_lateness_ms);
    if let Some(late) = info.late_snapshots {
        timing = format!("{late} snapshots late, {timing}");
    }
    if let Some(skipped) = info.skipped_ticks {
        timing.push_str(&format!(", {skipped} ticks skipped"));
    }
    if let Some(failed) = info.failed_snapshots {
        timing.push_str(&format!(", {failed} snapshots failed"));
    }
    writeln!(out, "Timing       {timing}")?;
    if let (Some(1..), Some(why)) = (info.failed_snapshots, &info.last_error) {
        writeln!(out, "Last failure {why}")?;
    }
    if let (Some(pause), Some(unpaused)) = (info.longest_pause_ms, info.unpaused_snapshots) {
        if info.blocking {
            writeln!(
                out,
                "Pauses       longest {pause:.1} ms; {unpaused} snapshots taken without pausing"
            )?;
        }
    }
    writeln!(out, "Processes    {}", info.processes.len())?;
    for p in &info.processes {
        writeln!(
            out,
            "  {} {} (Python {})",
            p.pid,
            p.command_line,
            p.python.as_deref().unwrap_or("unknown")
        )?;
    }
    writeln!(out, "Threads      {}", info.threads.len())?;
    for t in &info.threads {
        let id = t
            .os_thread_id
            .map_or(format!("{:#x}", t.thread_id), |os| os.to_string());
        let names: Vec<String> = t
            .names
            .iter()
            .enumerate()
            .map(|(i, (since, name))| {
                if i == 0 {
                    name.clone()
                } else {
                    format!("{name} (from {since:.2} s)")
                }
            })
            .collect();
        let names = if names.is_empty() {
            "unnamed".to_string()
        } else {
            names.join(", ")
        };
        writeln!(
            out,
            "  {id:<10} {names}: {}",
            super::plural(t.samples, "sample", "samples")
        )?;
    }
    writeln!(
        out,
        "Contents     {} distinct frames, {} distinct stacks",
        info.distinct_frames, info.distinct_stacks
    )?;
    writeln!(
        out,
        "File         {} ({:.1} bytes per sample), format version {}",
        format_bytes(info.file_bytes),
        info.bytes_per_sample,
        info.format_version
    )?;
    Ok(())
}
