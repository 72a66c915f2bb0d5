//! `py-spy dump`: one snapshot of every thread, as py-spy 0.4 prints it (text or JSON). The
//! snapshot comes from a session (`analyze::snapshot`); this only formats it.

use anyhow::Result;
use std::io::Write;

use crate::analyze::snapshot::Snapshot;
use crate::model::trace::{Pid, StackTrace};

/// What the dump's header says about the process.
pub struct DumpHeader<'a> {
    pub pid: Pid,
    pub command_line: &'a str,
    pub python: &'a str,
    pub executable: &'a str,
    /// The parent process (pid, command line), for a subprocess.
    pub parent: Option<(Pid, &'a str)>,
}

/// A whole snapshot: each process's header and threads, the root first, separated by a rule
/// `rule_width` wide as py-spy separates subprocesses; as JSON, one array of every thread
/// (each names its `pid`). `python` is the session's version, for processes without their own;
/// `root_parent` a parent to name for a root process that has none in the session.
pub fn write_snapshot<W: Write + ?Sized>(
    out: &mut W,
    snap: &Snapshot,
    python: Option<&str>,
    json: bool,
    rule_width: usize,
    root_parent: Option<(Pid, &str)>,
) -> Result<()> {
    if json {
        let all: Vec<&StackTrace> = snap.processes.iter().flat_map(|(_, t)| t).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        return Ok(());
    }
    for (i, (process, traces)) in snap.processes.iter().enumerate() {
        if i > 0 {
            writeln!(out, "\n{}", "-".repeat(rule_width))?;
        }
        let parent = process
            .parent
            .and_then(|p| snap.processes.iter().find(|(row, _)| row.id == p))
            .map(|(row, _)| (row.pid, row.command_line.as_str()))
            .or(if i == 0 { root_parent } else { None });
        let executable = match &process.executable {
            Some(exe) => exe.as_str(),
            // Sessions before format 3: the command's first word.
            None => process.command_line.split(' ').next().unwrap_or(""),
        };
        let header = DumpHeader {
            pid: process.pid,
            command_line: &process.command_line,
            python: process.python.as_deref().or(python).unwrap_or("unknown"),
            executable,
            parent,
        };
        write_dump(out, &header, traces, false)?;
    }
    Ok(())
}

/// Print the header lines and every thread's stack, oldest thread first.
pub fn write_dump<W: Write + ?Sized>(
    out: &mut W,
    header: &DumpHeader,
    traces: &[StackTrace],
    json: bool,
) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(traces)?)?;
        return Ok(());
    }
    writeln!(out, "Process {}: {}", header.pid, header.command_line)?;
    writeln!(out, "Python v{} ({})", header.python, header.executable)?;
    if let Some((pid, command_line)) = header.parent {
        writeln!(out, "Parent Process {pid}: {command_line}")?;
    }
    writeln!(out)?;
    for trace in traces.iter().rev() {
        write_trace(out, trace, true)?;
    }
    Ok(())
}

/// One thread: its header line, then a line per frame, with locals under their frame.
pub fn write_trace<W: Write + ?Sized>(
    out: &mut W,
    trace: &StackTrace,
    include_activity: bool,
) -> Result<()> {
    let status = if include_activity {
        format!(" ({})", trace.status_str())
    } else if trace.owns_gil {
        " (gil)".to_owned()
    } else {
        String::new()
    };
    match &trace.thread_name {
        Some(name) => writeln!(
            out,
            "Thread {}{}: \"{}\"",
            trace.format_threadid(),
            status,
            name
        )?,
        None => writeln!(out, "Thread {}{}", trace.format_threadid(), status)?,
    }
    for frame in &trace.frames {
        let file = frame.short_filename.as_deref().unwrap_or(&frame.filename);
        if file.is_empty() {
            // Not a Python frame: a recording's note that the stack could not be read.
            writeln!(out, "    {}", frame.name)?;
        } else if frame.line != 0 {
            writeln!(out, "    {} ({}:{})", frame.name, file, frame.line)?;
        } else {
            writeln!(out, "    {} ({})", frame.name, file)?;
        }
        if let Some(locals) = &frame.locals {
            let mut shown_args = false;
            let mut shown_locals = false;
            for local in locals {
                if local.arg && !shown_args {
                    writeln!(out, "        Arguments:")?;
                    shown_args = true;
                } else if !local.arg && !shown_locals {
                    writeln!(out, "        Locals:")?;
                    shown_locals = true;
                }
                writeln!(
                    out,
                    "            {}: {}",
                    local.name,
                    local.repr.as_deref().unwrap_or("?")
                )?;
            }
        }
    }
    Ok(())
}
