//! `py-spy dump`: one snapshot of every thread (capture), printed as py-spy 0.4 prints it
//! (render).

use anyhow::{Context, Result};
use std::io::Write;

use crate::capture::spy::{PythonSpy, MAX_PAUSE};
use crate::model::config::Config;
use crate::model::trace::Pid;
use crate::render::dump::DumpHeader;

/// `py-spy dump`: one snapshot of every thread of `pid` (capture), printed as py-spy 0.4
/// prints it (render).
pub fn dump(pid: Pid, config: &Config, json: bool, out: &mut dyn Write) -> Result<()> {
    let mut spy = PythonSpy::new(pid, config)?;
    let traces = spy
        .get_stack_traces()
        .context("failed to get stack traces")?;
    let header = DumpHeader {
        pid: spy.pid,
        command_line: &spy.command_line(),
        python: &spy.version.to_string(),
        executable: spy.exe(),
    };
    if spy.stats.unpaused > 0 {
        eprintln!(
            "Note: read without pausing the program: pausing all its threads would have \
             stopped it for more than {} ms",
            MAX_PAUSE.as_millis()
        );
    }
    crate::render::dump::write_dump(out, &header, &traces, json)
}
