//! speedscope's file format (<https://www.speedscope.app/file-format-schema.json>): one
//! "sampled" profile per thread, its samples in time order, each weighing one sampling period
//! in seconds, as py-spy writes it; the file opens on the busiest thread, each profile spans
//! the real time from its first sample to its last, and `--threads` adds no root frame (the
//! profiles are the threads). Unlike py-spy 0.4.3 the file validates against the
//! schema: absent values are left out rather than written as `null`, and `col`, which
//! py-spy's readers expect to find, is 0 (columns are not recorded).

use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

use super::session_rate;
use crate::analyze::replay::format_threadid;
use crate::analyze::Replay;

#[derive(Serialize)]
struct Frame<'a> {
    name: &'a str,
    file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<i32>,
    col: u32,
}

struct Profile {
    name: String,
    stacks: Vec<u32>,
    /// Times of the first and last sample (µs since the start).
    first_us: u64,
    last_us: u64,
}

pub fn write(replay: &mut Replay, out: &mut dyn Write) -> Result<u64> {
    let session = replay.session();
    let multi_process = session.processes.len() > 1;
    // thread row → profile
    let mut profiles: BTreeMap<u32, Profile> = BTreeMap::new();
    let mut total = 0u64;
    replay.for_each(|r, s| {
        let p = profiles.entry(s.thread).or_insert_with(|| {
            let t = &r.session().threads[s.thread as usize];
            let tid = format_threadid(t.os_thread_id, t.thread_id);
            let name = t.name_at(s.t_us).unwrap_or("");
            let name = if multi_process {
                let pid = r.session().pid_of(s.thread).unwrap_or(0);
                format!("Process {pid} Thread {tid} \"{name}\"")
            } else {
                format!("Thread {tid} \"{name}\"")
            };
            Profile {
                name,
                stacks: Vec::new(),
                first_us: s.t_us,
                last_us: s.t_us,
            }
        });
        p.stacks.push(s.stack);
        p.last_us = s.t_us;
        total += 1;
        Ok(())
    })?;
    let mut profiles: Vec<Profile> = profiles.into_values().collect();
    profiles.sort_by(|a, b| a.name.cmp(&b.name));
    // speedscope opens on the busiest thread (most samples kept; the first of equals).
    let busiest = profiles
        .iter()
        .enumerate()
        .max_by(|(i, a), (j, b)| a.stacks.len().cmp(&b.stacks.len()).then(j.cmp(i)))
        .map_or(0, |(i, _)| i);

    let period = 1.0 / session_rate(session) as f64;
    let period_text = serde_json::to_string(&period)?;
    out.write_all(b"{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",")?;
    out.write_all(b"\"profiles\":[")?;
    for (i, p) in profiles.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        // The time the thread was watched, from its first sample to one period after its
        // last: real time, whatever ticks were skipped (the weights say what was sampled).
        write!(
            out,
            "{{\"type\":\"sampled\",\"name\":{},\"unit\":\"seconds\",\"startValue\":{},\"endValue\":{},\"samples\":[",
            serde_json::to_string(&p.name)?,
            serde_json::to_string(&(p.first_us as f64 / 1e6))?,
            serde_json::to_string(&(p.last_us as f64 / 1e6 + period))?
        )?;
        let mut buf = String::new();
        for (j, stack) in p.stacks.iter().enumerate() {
            buf.clear();
            if j > 0 {
                buf.push(',');
            }
            buf.push('[');
            for (k, f) in replay.stacks[*stack as usize].iter().enumerate() {
                if k > 0 {
                    buf.push(',');
                }
                buf.push_str(&f.to_string());
            }
            buf.push(']');
            out.write_all(buf.as_bytes())?;
        }
        out.write_all(b"],\"weights\":[")?;
        for j in 0..p.stacks.len() {
            if j > 0 {
                out.write_all(b",")?;
            }
            out.write_all(period_text.as_bytes())?;
        }
        out.write_all(b"]}")?;
    }
    out.write_all(b"],\"shared\":{\"frames\":[")?;
    for (i, f) in replay.frames.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let pseudo = f.filename.is_empty();
        serde_json::to_writer(
            &mut *out,
            &Frame {
                name: &f.name,
                file: &f.filename,
                line: if pseudo { Some(0) } else { f.line },
                col: 0,
            },
        )?;
    }
    write!(
        out,
        "]}},\"activeProfileIndex\":{busiest},\"exporter\":{},\"name\":\"py-spy profile\"}}",
        serde_json::to_string(&format!("py-spy@{}", env!("CARGO_PKG_VERSION")))?
    )?;
    out.write_all(b"\n")?;
    Ok(total)
}
