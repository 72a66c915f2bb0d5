//! Trace Event Format JSON (a JSON array of events), which Chrome's `chrome://tracing` and
//! Perfetto load: per thread, a `B` (begin) event where a frame appears in the stack and an
//! `E` (end) event where it goes, at the samples' own timestamps, as py-spy writes it. Thread
//! and process names come as `M` (metadata) events. When a thread has no kept sample for more
//! than two sampling periods (it went idle, say), its open frames end one period after its
//! last sample instead of stretching over the gap.

use anyhow::Result;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;

use super::session_rate;
use crate::analyze::{Replay, ViewFrame};

#[derive(Serialize)]
struct Args<'a> {
    filename: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<i32>,
}

#[derive(Serialize)]
struct Event<'a> {
    args: Args<'a>,
    cat: &'static str,
    name: &'a str,
    ph: &'static str,
    pid: i64,
    tid: u64,
    ts: u64,
}

#[derive(Serialize)]
struct NameArgs<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct Meta<'a> {
    name: &'static str,
    ph: &'static str,
    pid: i64,
    tid: u64,
    args: NameArgs<'a>,
}

struct Open {
    stack: u32,
    last_us: u64,
}

struct Writer<'o> {
    out: &'o mut dyn Write,
    first: bool,
}

impl Writer<'_> {
    fn emit<T: Serialize>(&mut self, e: &T) -> Result<()> {
        self.out.write_all(if self.first { b"[" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut *self.out, e)?;
        Ok(())
    }

    fn frame(
        &mut self,
        f: &ViewFrame,
        ph: &'static str,
        pid: i64,
        tid: u64,
        ts: u64,
    ) -> Result<()> {
        self.emit(&Event {
            args: Args {
                filename: &f.filename,
                line: f.line,
            },
            cat: "py-spy",
            name: &f.name,
            ph,
            pid,
            tid,
            ts,
        })
    }
}

pub fn write(replay: &mut Replay, out: &mut dyn Write) -> Result<u64> {
    let session = replay.session();
    let period_us = 1_000_000 / session_rate(session).max(1);
    let gap_us = 2 * period_us;
    let mut w = Writer { out, first: true };
    let mut open: HashMap<u32, Open> = HashMap::new();
    let mut named: HashMap<u32, Option<String>> = HashMap::new();
    let mut named_pids: Vec<i32> = Vec::new();
    let mut total = 0u64;
    replay.for_each(|r, s| {
        let session = r.session();
        let t = &session.threads[s.thread as usize];
        let pid = session.pid_of(s.thread).unwrap_or(0) as i64;
        // The OS thread id, as system tools (perf, top, /proc) name the thread.
        let tid = t.os_thread_id.unwrap_or(t.thread_id);
        if !named_pids.contains(&(pid as i32)) {
            named_pids.push(pid as i32);
            let cmd = session
                .processes
                .iter()
                .find(|p| p.pid as i64 == pid)
                .map(|p| p.command_line.as_str())
                .unwrap_or("");
            w.emit(&Meta {
                name: "process_name",
                ph: "M",
                pid,
                tid: 0,
                args: NameArgs { name: cmd },
            })?;
        }
        let name = t.name_at(s.t_us).map(str::to_string);
        if named.get(&s.thread) != Some(&name) {
            let label = name.clone().unwrap_or_else(|| format!("thread {tid}"));
            w.emit(&Meta {
                name: "thread_name",
                ph: "M",
                pid,
                tid,
                args: NameArgs { name: &label },
            })?;
            named.insert(s.thread, name);
        }
        let new = &r.stacks[s.stack as usize];
        let (prev, close_at): (&[u32], u64) = match open.get(&s.thread) {
            Some(o) if s.t_us.saturating_sub(o.last_us) <= gap_us => {
                (&r.stacks[o.stack as usize], s.t_us)
            }
            Some(o) => (&r.stacks[o.stack as usize], o.last_us + period_us),
            None => (&[], s.t_us),
        };
        let contiguous = close_at == s.t_us;
        let common = if contiguous {
            prev.iter()
                .zip(new.iter())
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            0
        };
        for f in prev[common..].iter().rev() {
            w.frame(&r.frames[*f as usize], "E", pid, tid, close_at)?;
        }
        for f in &new[common..] {
            w.frame(&r.frames[*f as usize], "B", pid, tid, s.t_us)?;
        }
        open.insert(
            s.thread,
            Open {
                stack: s.stack,
                last_us: s.t_us,
            },
        );
        total += 1;
        Ok(())
    })?;
    let mut rest: Vec<(u32, Open)> = open.into_iter().collect();
    rest.sort_by_key(|(t, _)| *t);
    for (thread, o) in rest {
        let pid = session.pid_of(thread).unwrap_or(0) as i64;
        let t = &session.threads[thread as usize];
        let tid = t.os_thread_id.unwrap_or(t.thread_id);
        for f in replay.stacks[o.stack as usize].iter().rev() {
            w.frame(
                &replay.frames[*f as usize],
                "E",
                pid,
                tid,
                o.last_us + period_us,
            )?;
        }
    }
    if w.first {
        w.out.write_all(b"[")?;
    }
    w.out.write_all(b"]\n")?;
    Ok(total)
}
