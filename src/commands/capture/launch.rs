//! Getting the process to sample: start the program (`-- python app.py`) or find it
//! (`--pid`), and attach under the policy that fits (`capture::attach`).

use anyhow::{bail, Context, Result};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::capture::attach::AttachPolicy;
use crate::capture::spy::PythonSpy;
use crate::model::config::Config;
use crate::model::trace::Pid;

pub(crate) fn spawn(argv: &[String]) -> Result<Child> {
    start(argv, false)
}

/// Start the program with its output discarded and no input (for `top`, whose screen the
/// program's output would overwrite).
pub(crate) fn spawn_quiet(argv: &[String]) -> Result<Child> {
    start(argv, true)
}

fn start(argv: &[String], quiet: bool) -> Result<Child> {
    use std::process::Stdio;
    let Some(program) = argv.first() else {
        bail!("no program given to run (expected `-- python script.py ...`)");
    };
    let mut command = Command::new(program);
    command.args(&argv[1..]);
    if quiet {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    command
        .spawn()
        .with_context(|| format!("could not start '{program}'"))
}

/// Attach to a running process. `PythonSpy::new` checks the layout with one walk that does
/// not pause the target (a pause right before the first sample would wake its sleeping
/// threads and make them look busy in it).
pub(crate) fn attach(pid: Pid, config: &Config) -> Result<PythonSpy> {
    AttachPolicy::RUNNING.attach(pid, config, &mut || None)
}

/// Attach to a program we just started: retry while it loads and initialises Python.
pub(crate) fn attach_spawned(
    pid: Pid,
    config: &Config,
    child: &mut Child,
    stop: &AtomicBool,
) -> Result<PythonSpy> {
    let mut give_up = || {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(format!(
                "the program exited ({status}) before py-spy could attach to it"
            ));
        }
        stop.load(Ordering::Relaxed)
            .then(|| format!("stopped before py-spy could attach to process {pid}"))
    };
    AttachPolicy::STARTING
        .attach(pid, config, &mut give_up)
        .with_context(|| format!("could not attach to the program started as process {pid}"))
}

/// Stop a program we started, if it still runs, and reap it.
/// Returns the program's exit code when it had exited by itself (128 + the signal when a
/// signal ended it, as shells report it); `None` when it was still running and was stopped
/// here, or there was no program.
pub(crate) fn end_child(child: &mut Option<Child>) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let c = child.as_mut()?;
    let exited = match c.try_wait() {
        Ok(Some(status)) => Some(status),
        _ => {
            let _ = c.kill();
            None
        }
    };
    let _ = c.wait();
    exited.map(|s| s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)))
}
