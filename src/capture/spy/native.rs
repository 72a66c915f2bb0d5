//! Native stacks merged with the Python ones (`--native`), as py-spy 0.4 merges them: the
//! thread's native frames, innermost first, with each of the interpreter's evaluation frames
//! replaced by the Python frames it was running, the interpreter's other machinery dropped
//! (but for the calls that say what a thread waits on: `time_sleep`, locks, `gc`, `os`, …),
//! and C frames of extensions and libraries kept with their function, binary, file and line.
//!
//! The native stacks are unwound while the target is paused (`unwind_paused`), then merged
//! (`merge_native`) once the Python stacks are final.

use super::*;
use crate::capture::os::maps::{self, MapRange};
use crate::capture::os::proc;
use crate::capture::os::unwind::{thread_registers, BinarySource, NativeUnwinder};
use crate::capture::python::code::next_code_id;
use crate::capture::python::native_merge::{assemble, plan, role_of, PythonFrames, Role, Slot};

/// A native frame, ready to be stored: its code (name, file, binary) and line.
#[derive(Clone)]
struct NamedFrame {
    code: Arc<CodeInfo>,
    line: i32,
    role: Role,
}

/// A native function: its name, source file (or binary) and binary.
type FunctionKey = (Arc<str>, Arc<str>, Arc<str>);

/// The native side of a spy.
#[derive(Default)]
pub(super) struct NativeState {
    unwinder: NativeUnwinder,
    /// Per OS thread: the native frames of the last paused snapshot.
    stacks: FastMap<u64, (Vec<(u64, u64)>, bool)>,
    /// Per address: the frame it makes.
    frames: FastMap<u64, NamedFrame>,
    /// One code per (name, file, binary), whatever the address within the function.
    codes: HashMap<FunctionKey, Arc<CodeInfo>>,
    /// When the memory map was last read for new binaries.
    maps_read: Option<Instant>,
    /// The last merge's plan (reused).
    slots: Vec<Slot>,
}

impl PythonSpy {
    /// Read the memory map for binaries not seen yet (at most once a second).
    pub(super) fn refresh_native_maps(&mut self) {
        let pid = self.pid;
        let exe = self.target.exe.clone();
        let Some(native) = self.native.as_mut() else {
            return;
        };
        if native
            .maps_read
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        native.maps_read = Some(Instant::now());
        let Ok(text) = proc::maps_text(pid) else {
            return;
        };
        let map = maps::parse_maps(&text);
        // Through map_files: the very file mapped, wherever the process's root is; the vDSO
        // from the process's memory.
        let mem = &self.mem;
        let open = |m: &MapRange| {
            if m.path == "[vdso]" {
                let len = (m.end - m.start) as usize;
                return mem.read_vec(m.start, len).ok().map(BinarySource::Bytes);
            }
            maps::mapped_file(pid, m).map(BinarySource::File)
        };
        let interpreter = |path: &str| maps::is_libpython(path) || path == exe;
        native.unwinder.refresh(&map, &open, &interpreter);
    }

    /// While the target is paused: unwind the native stack of each thread of `out`.
    pub(super) fn unwind_paused(&mut self, out: &[ThreadSample]) {
        let Some(native) = self.native.as_mut() else {
            return;
        };
        for t in out {
            let Some(tid) = t.os_thread_id else {
                continue;
            };
            let (stack, complete) = native.stacks.entry(tid).or_default();
            *complete = match thread_registers(tid) {
                Ok(regs) => native.unwinder.unwind(&self.mem, regs, stack),
                Err(_) => {
                    stack.clear();
                    false
                }
            };
        }
    }

    /// Replace each thread's Python stack with its merged native and Python stack.
    pub(super) fn merge_native(&mut self, out: &mut [ThreadSample]) {
        let mut unknown = false;
        for t in out.iter_mut() {
            let Some(tid) = t.os_thread_id else {
                continue;
            };
            if t.fault.is_some() {
                continue;
            }
            let Some(native) = self.native.as_mut() else {
                return;
            };
            // Taken out while it is read (the frames are named through `native`), then put
            // back, its allocation kept for the next unwind.
            let Some((frames, complete)) = native
                .stacks
                .get_mut(&tid)
                .map(|(f, c)| (std::mem::take(f), *c))
            else {
                continue;
            };
            let mut named = Vec::with_capacity(frames.len());
            let mut sps = Vec::with_capacity(frames.len());
            for &(pc, sp) in &frames {
                let f = native.frame(pc);
                unknown |= f.code.module.as_deref() == Some("?");
                named.push(f);
                sps.push(sp);
            }
            if let Some((slot, _)) = native.stacks.get_mut(&tid) {
                *slot = frames;
            }
            if let Err(fault) = merge(&named, &sps, complete, t, &mut native.slots) {
                t.fault = Some(fault);
                t.partial = false;
                t.frames.clear();
            }
        }
        if unknown {
            // An address in no known binary: a library loaded since the map was read.
            self.refresh_native_maps();
        }
    }
}

impl NativeState {
    fn frame(&mut self, pc: u64) -> NamedFrame {
        if let Some(f) = self.frames.get(&pc) {
            return f.clone();
        }
        let sym = self.unwinder.symbol(pc);
        let role = role_of(&sym);
        let filename = sym.file.clone().unwrap_or_else(|| sym.module.clone());
        let key = (sym.name.clone(), filename.clone(), sym.module.clone());
        let code = self
            .codes
            .entry(key)
            .or_insert_with(|| {
                Arc::new(CodeInfo {
                    id: next_code_id(),
                    qualname: sym.name.clone(),
                    name: sym.name.clone(),
                    filename,
                    first_line: 0,
                    linetable: Vec::new(),
                    argcount: 0,
                    flags: 0,
                    nlocals: 0,
                    varnames: 0,
                    module: Some(sym.module.clone()),
                    frame_bytes: 0,
                    returns: Vec::new(),
                })
            })
            .clone();
        let f = NamedFrame {
            code,
            line: sym.line,
            role,
        };
        // Addresses that no binary holds may be named later: not cached.
        if sym.module.as_ref() != "?" {
            self.frames.insert(pc, f.clone());
        }
        f
    }
}

/// Merge `native` (innermost first, with their stack pointers `sps`) with `t`'s Python
/// frames, in place (see [`plan`]).
fn merge(
    native: &[NamedFrame],
    sps: &[u64],
    complete: bool,
    t: &mut ThreadSample,
    slots: &mut Vec<Slot>,
) -> Result<(), StackFault> {
    let roles: Vec<Role> = native.iter().map(|f| f.role).collect();
    let ends: Vec<bool> = t
        .frames
        .iter()
        .map(|p| p.is_entry || p.shim_entry)
        .collect();
    let shims: Vec<u64> = t.frames.iter().map(|p| p.shim_addr).collect();
    let python = PythonFrames {
        ends_group: &ends,
        shims: &shims,
    };
    plan(&roles, sps, &python, complete, slots)?;
    t.frames = assemble(slots, std::mem::take(&mut t.frames), |i| CodeFrame {
        code: native[i].code.clone(),
        addr: 0,
        line: native[i].line,
        is_entry: true,
        shim_entry: true,
        shim_addr: 0,
        locals: None,
    });
    Ok(())
}
