//! The Python threads of a core file: the interpreter found in the dumped process as
//! attaching finds a live one's (its binaries opened wherever they are now), every thread's
//! frames, lines, locals and name decoded from the core's memory, and each thread's activity
//! judged from its saved registers: a thread stopped inside a system call was waiting.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::errors::AttachError;
use super::image::ImageDecoder;
use super::os::core::CoreFile;
use super::os::threads::map_pthreads_among;
use super::python::target::PythonTarget;
use super::python::version::Version;
use super::python::walker::StackFault;
use super::spy::{is_idle_call, shorten_path};
use crate::model::trace::{Pid, StackTrace};

/// One snapshot of the process a core was taken of.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub pid: Pid,
    pub command_line: String,
    /// The executable as the process named it.
    pub executable: String,
    pub version: Version,
    /// Every Python thread, in the interpreter's order; frames innermost first, with locals
    /// (each shown in at most `128 × locals` characters) when `locals` > 0.
    pub threads: Vec<StackTrace>,
    /// Per thread (same order): why its stack could not be read, when it could not.
    pub faults: Vec<Option<StackFault>>,
}

/// Read the Python threads of `core`. `locals`: 0 none, 1 and more as `dump --locals`.
pub fn read_core(core: &CoreFile, locals: u64, full_filenames: bool) -> Result<CoreSnapshot> {
    let exe = core.executable();
    let host = |p: &str| core.find_file(p).unwrap_or_else(|| PathBuf::from(p));
    let target = PythonTarget::find_in(core.pid, exe.clone(), &core.maps, false, &host, core)
        .map_err(|e| match e.downcast_ref::<AttachError>() {
            Some(AttachError::NotPython { .. }) => e.context(format!(
                "core file {} is not of a Python program we can read: process {} ran {exe}, \
                 and no Python interpreter was found in it or its libraries{}",
                core.path().display(),
                core.pid,
                missing_files(core)
            )),
            _ => e.context(format!(
                "could not find the Python interpreter in core file {}",
                core.path().display()
            )),
        })?;
    let interp = target
        .interpreter_address(core)
        .context("the core holds no running interpreter")?;
    let gil = target.gil_words(core, interp);
    let mut decoder = ImageDecoder::for_interpreter(
        target.layout,
        interp,
        gil,
        target.interpreter_binary.symbol("PyCode_Type"),
    );
    decoder.set_locals_len((128 * locals.max(1)) as isize);
    let mut threads = decoder
        .decode(core)
        .context("could not read the Python threads from the core")?;
    let faults = decoder.faults();

    // OS thread ids where the thread states do not hold them (before 3.8): from glibc's
    // `struct pthread`, as for a live process.
    let tids: Vec<u64> = core.threads.iter().map(|t| t.tid).collect();
    if threads.iter().any(|t| t.os_thread_id.is_none()) {
        let ids: Vec<u64> = threads.iter().map(|t| t.thread_id).collect();
        let map = map_pthreads_among(core, &tids, &ids);
        for t in &mut threads {
            if t.os_thread_id.is_none() {
                t.os_thread_id = map.get(&t.thread_id).copied();
            }
        }
    }
    for t in &mut threads {
        t.pid = core.pid;
        let waiting = t
            .os_thread_id
            .and_then(|tid| core.threads.iter().find(|c| c.tid == tid))
            .is_some_and(|c| c.registers.in_syscall());
        let idle_call = t
            .frames
            .first()
            .is_some_and(|f| is_idle_call(&f.name, &f.filename));
        t.active = !waiting && !idle_call;
        for f in &mut t.frames {
            if locals == 0 {
                f.locals = None;
            }
            f.short_filename = if full_filenames {
                Some(f.filename.clone())
            } else {
                shorten_path(&f.filename, |dir| {
                    core.find_file(&format!("{dir}/__init__.py")).is_some()
                })
            };
        }
    }
    Ok(CoreSnapshot {
        pid: core.pid,
        command_line: core.command_line(),
        executable: exe,
        version: target.version,
        threads,
        faults,
    })
}

/// ": /x and /y are not where the core says" for the mapped binaries that cannot be opened.
fn missing_files(core: &CoreFile) -> String {
    let mut missing: Vec<&str> = core
        .maps
        .iter()
        .filter(|m| m.executable && m.path.starts_with('/'))
        .map(|m| m.path.as_str())
        .filter(|p| core.find_file(p).is_none())
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return String::new();
    }
    format!(
        " (these binaries it mapped are not here: {}; --binaries DIR says where to look)",
        missing.join(", ")
    )
}

/// Open `path` as a core file whose binaries are looked for under `binaries` first.
pub fn open_core(path: &Path, binaries: &[PathBuf]) -> Result<CoreFile> {
    CoreFile::open(
        path,
        super::os::core::FileFinder {
            roots: binaries.to_vec(),
        },
    )
}
