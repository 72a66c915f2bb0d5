//! `py-spy dump`: one snapshot of every thread, as py-spy 0.4 prints it (text or JSON).

use anyhow::{Context, Result};
use std::io::Write;

use crate::capture::spy::PythonSpy;
use crate::capture::trace::StackTrace;

/// Print the header lines and every thread's stack, oldest thread first.
pub fn write_dump<W: Write>(out: &mut W, spy: &mut PythonSpy, json: bool) -> Result<()> {
    let traces = spy
        .get_stack_traces()
        .context("failed to get stack traces")?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&traces)?)?;
        return Ok(());
    }
    let cmdline = spy.command_line();
    writeln!(out, "Process {}: {}", spy.pid, cmdline)?;
    writeln!(out, "Python v{} ({})", spy.version, spy.exe())?;
    writeln!(out)?;
    for trace in traces.iter().rev() {
        write_trace(out, trace, true)?;
    }
    Ok(())
}

/// One thread: its header line, then a line per frame, with locals under their frame.
pub fn write_trace<W: Write>(
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
        if frame.line != 0 {
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
