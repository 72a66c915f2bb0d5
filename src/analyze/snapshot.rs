//! One snapshot of a recording: every thread's stack at the snapshot nearest a time, as
//! `py-spy dump` shows a live process (`analyze --dump --at SECONDS`), with the entry marks
//! and locals the snapshot kept (snapshots taken by `dump`).

use anyhow::{Context, Result};

use crate::model::trace::{Frame, StackTrace};
use crate::store::{ProcessRow, Sample, SampleFilter, Session};

/// The threads of one snapshot, by process.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Microseconds since the start of the capture.
    pub t_us: u64,
    /// Each process (in the session's order) and its threads' stacks, as the walker listed
    /// them (newest thread first, as `dump` receives them).
    pub processes: Vec<(ProcessRow, Vec<StackTrace>)>,
}

/// The snapshot nearest `at_s` seconds after the start (the last one without `at_s`; the
/// earlier of two equally near), with file names shortened unless `full_filenames`.
pub fn snapshot_at(
    session: &Session,
    at_s: Option<f64>,
    full_filenames: bool,
) -> Result<Option<Snapshot>> {
    let at_us = match at_s {
        Some(s) if !s.is_finite() || s < 0.0 => {
            anyhow::bail!("--at must be a number of seconds, 0 or more (got {s})")
        }
        Some(s) => Some((s * 1e6) as u64),
        None => None,
    };
    let distance = |t: u64| at_us.map_or(u64::MAX - t, |a| t.abs_diff(a));
    // Samples of one snapshot share its time and come together: keep the nearest group.
    let mut best: Vec<Sample> = Vec::new();
    let mut group: Vec<Sample> = Vec::new();
    let better = |group: &[Sample], best: &[Sample]| match (group.first(), best.first()) {
        (Some(g), Some(b)) => distance(g.t_us) < distance(b.t_us),
        (Some(_), None) => true,
        _ => false,
    };
    for s in session.samples(&SampleFilter::default())? {
        let s = s.context("could not read the session's samples")?;
        if group.first().is_some_and(|g| g.t_us != s.t_us) {
            if better(&group, &best) {
                std::mem::swap(&mut best, &mut group);
            }
            group.clear();
        }
        group.push(s);
    }
    if better(&group, &best) {
        best = group;
    }
    let Some(first) = best.first() else {
        return Ok(None);
    };
    let t_us = first.t_us;
    let details = session.snapshot_details(t_us)?;
    let mut processes: Vec<(ProcessRow, Vec<StackTrace>)> = Vec::new();
    for s in &best {
        let Some(thread) = session.threads.get(s.thread as usize) else {
            continue;
        };
        let Some(process) = session.processes.get(thread.process as usize) else {
            continue;
        };
        let mut frames = frames_of(session, s, full_filenames);
        match details.get(&s.thread) {
            Some(d) if d.len() == frames.len() && !s.error() => {
                for (f, d) in frames.iter_mut().zip(d) {
                    f.is_entry = d.is_entry;
                    f.is_shim_entry = d.is_shim_entry;
                    f.locals = d.locals.clone();
                }
            }
            // Without details, as py-spy marks a stack: the outermost frame began it.
            _ => {
                if let Some(last) = frames.last_mut() {
                    last.is_shim_entry = true;
                }
            }
        }
        let trace = StackTrace {
            pid: process.pid,
            thread_id: thread.thread_id,
            thread_name: thread.name_at(t_us).map(str::to_string),
            os_thread_id: thread.os_thread_id,
            active: s.active(),
            owns_gil: s.gil(),
            frames,
            process_info: None,
        };
        match processes.iter_mut().find(|(p, _)| p.pid == process.pid) {
            Some((_, traces)) => traces.push(trace),
            None => processes.push((process.clone(), vec![trace])),
        }
    }
    Ok(Some(Snapshot { t_us, processes }))
}

/// A sample's frames, innermost first; an error sample is one frame naming its reason.
fn frames_of(session: &Session, s: &Sample, full_filenames: bool) -> Vec<Frame> {
    if s.error() {
        let reason = session
            .errors
            .get(s.stack as usize)
            .map_or("unknown reason", |e| e.message.as_str());
        return vec![Frame {
            name: format!("<stack could not be read: {reason}>"),
            filename: String::new(),
            module: None,
            short_filename: None,
            line: 0,
            locals: None,
            is_entry: true,
            is_shim_entry: false,
        }];
    }
    let ids = session
        .stacks
        .get(s.stack as usize)
        .map_or(&[][..], |v| &v[..]);
    ids.iter()
        .filter_map(|&id| session.frames.get(id as usize))
        .map(|f| Frame {
            name: f.qualname.clone(),
            filename: f.filename.clone(),
            module: f.module.clone(),
            // With full file names, the path the target uses, as a live `dump` shows it.
            short_filename: if full_filenames {
                Some(f.filename.clone())
            } else {
                f.short_filename.clone()
            },
            line: f.line,
            locals: None,
            is_entry: true,
            is_shim_entry: false,
        })
        .collect()
}
