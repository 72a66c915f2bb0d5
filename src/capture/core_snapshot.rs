//! The Python threads of a core file: the interpreter found in the dumped process as
//! attaching finds a live one's (its binaries opened wherever they are now), every thread's
//! frames, lines, locals and name decoded from the core's memory, and each thread's activity
//! judged from its saved registers: a thread stopped inside a system call was waiting.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::errors::AttachError;
use super::image::ImageDecoder;
use super::os::core::CoreFile;
use super::os::maps::{self, MapRange};
use super::os::threads::map_pthreads_among;
use super::os::unwind::{BinarySource, NativeUnwinder, StartRegs};
use super::python::native_merge::{assemble, plan, role_of, PythonFrames};
use super::python::target::PythonTarget;
use super::python::version::Version;
use super::python::walker::StackFault;
use super::spy::{is_idle_call, shorten_path};
use crate::model::trace::{Frame, Pid, StackTrace};

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

/// What to read from a core besides the Python stacks.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreOptions {
    /// Local variables: 0 none, 1 and more as `dump --locals`.
    pub locals: u64,
    pub full_filenames: bool,
    /// Native frames among the Python ones, unwound from each thread's saved registers.
    pub native: bool,
}

/// Read the Python threads of `core`.
pub fn read_core(core: &CoreFile, opts: CoreOptions) -> Result<CoreSnapshot> {
    let CoreOptions {
        locals,
        full_filenames,
        native,
    } = opts;
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
    let mut faults = decoder.faults();
    let shims = decoder.shims();

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
    if native {
        add_native_frames(core, &exe, &mut threads, &shims, &mut faults);
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

/// Merge each thread's native frames, unwound from the registers the core saved, with its
/// Python frames (a thread whose frames do not match gets the fault).
fn add_native_frames(
    core: &CoreFile,
    exe: &str,
    threads: &mut [StackTrace],
    shims: &[Vec<u64>],
    faults: &mut [Option<StackFault>],
) {
    let mut unwinder = NativeUnwinder::default();
    let open = |m: &MapRange| core.find_file(&m.path).map(BinarySource::File);
    let interpreter = |p: &str| maps::is_libpython(p) || p == exe;
    // gdb leaves unmodified file mappings (code among them) out of the core, and their
    // permissions with them: every read-only file mapping may hold code.
    let map: Vec<MapRange> = core
        .maps
        .iter()
        .map(|m| MapRange {
            executable: m.executable || (m.path.starts_with('/') && !m.writable),
            ..m.clone()
        })
        .collect();
    unwinder.refresh(&map, &open, &interpreter);
    let (mut pcs, mut slots) = (Vec::new(), Vec::new());
    for ((t, fault), shims) in threads.iter_mut().zip(faults.iter_mut()).zip(shims) {
        let Some(regs) = t
            .os_thread_id
            .and_then(|tid| core.threads.iter().find(|c| c.tid == tid))
            .map(|c| c.registers)
        else {
            continue;
        };
        if fault.is_some() {
            continue;
        }
        let start = StartRegs {
            ip: regs.rip(),
            sp: regs.rsp(),
            bp: regs.rbp(),
        };
        let complete = unwinder.unwind(core, start, &mut pcs);
        let symbols: Vec<_> = pcs.iter().map(|(pc, _)| unwinder.symbol(*pc)).collect();
        let sps: Vec<u64> = pcs.iter().map(|(_, sp)| *sp).collect();
        let roles: Vec<_> = symbols.iter().map(|s| role_of(s)).collect();
        let ends: Vec<bool> = t
            .frames
            .iter()
            .map(|f| f.is_entry || f.is_shim_entry)
            .collect();
        // The frames as decoded match the walk's one for one (else there are none).
        let shims = if shims.len() == t.frames.len() {
            &shims[..]
        } else {
            &[]
        };
        let python = PythonFrames {
            ends_group: &ends,
            shims,
        };
        if let Err(f) = plan(&roles, &sps, &python, complete, &mut slots) {
            *fault = Some(f);
            t.frames.clear();
            continue;
        }
        t.frames = assemble(&slots, std::mem::take(&mut t.frames), |i| {
            let s = &symbols[i];
            Frame {
                name: s.name.to_string(),
                filename: s.file.as_deref().unwrap_or(&s.module).to_string(),
                module: Some(s.module.to_string()),
                short_filename: None,
                line: s.line,
                locals: None,
                is_entry: true,
                is_shim_entry: true,
            }
        });
    }
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
