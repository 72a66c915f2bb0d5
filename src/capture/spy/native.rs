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
use crate::capture::os::unwind::{thread_registers, BinarySource, NativeSymbol, NativeUnwinder};
use crate::capture::python::code::next_code_id;

/// Function-name prefixes (their first `_`-separated word) of interpreter code that is kept.
const KEPT_INTERPRETER_CALLS: &[&str] = &[
    "time",
    "sys",
    "gc",
    "os",
    "unicode",
    "thread",
    "stringio",
    "sre",
    "PyGilState",
    "PyThread",
    "lock",
];

/// What a native frame is, for the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An evaluation frame: stands for the Python frames it runs.
    Evaluation,
    /// Shown as it is.
    Kept,
    /// Interpreter machinery or thread start-up: left out.
    Dropped,
}

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
    stacks: FastMap<u64, Vec<u64>>,
    /// Per address: the frame it makes.
    frames: FastMap<u64, NamedFrame>,
    /// One code per (name, file, binary), whatever the address within the function.
    codes: HashMap<FunctionKey, Arc<CodeInfo>>,
    /// When the memory map was last read for new binaries.
    maps_read: Option<Instant>,
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
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
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
            let p = PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end));
            p.exists().then_some(BinarySource::File(p))
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
            let stack = native.stacks.entry(tid).or_default();
            match thread_registers(tid) {
                Ok(regs) => native.unwinder.unwind(&self.mem, regs, stack),
                Err(_) => stack.clear(),
            }
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
            let Some(pcs) = native.stacks.get(&tid) else {
                continue;
            };
            let pcs = pcs.clone();
            let mut named = Vec::with_capacity(pcs.len());
            for pc in pcs {
                let f = native.frame(pc);
                unknown |= f.code.module.as_deref() == Some("?");
                named.push(f);
            }
            if let Err(fault) = merge(&named, t) {
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

/// py-spy's rule for a native frame: in the interpreter's binaries, an evaluation frame
/// (`_PyEval_EvalFrameDefault`, `PyEval_EvalFrameEx`, and their `.cold` parts) stands for
/// Python frames, a few calls that say what a thread waits on are kept, and the rest is
/// machinery; elsewhere everything is kept but the C library's thread start-up.
fn role_of(sym: &NativeSymbol) -> Role {
    let name = sym.name.as_ref();
    if sym.in_interpreter {
        let mut words = name.split(['_', '.']).filter(|w| !w.is_empty());
        let first = words.next().unwrap_or("");
        let second = words.next().unwrap_or("");
        if first == "PyEval" && (second == "EvalFrameDefault" || second == "EvalFrameEx") {
            return Role::Evaluation;
        }
        if KEPT_INTERPRETER_CALLS.contains(&first) {
            return Role::Kept;
        }
        return Role::Dropped;
    }
    let module = sym.module.as_ref();
    let dropped = ((name == "__libc_start_main" || name == "__clone") && module.contains("/libc"))
        || (name == "start_thread" && module.contains("/libpthread"));
    if dropped {
        Role::Dropped
    } else {
        Role::Kept
    }
}

/// Merge `native` (innermost first) with `t`'s Python frames, in place. Each evaluation
/// frame takes the Python frames up to the next entry frame (one per evaluation frame before
/// 3.11). Python frames left over when the native stack has no evaluation frame at all (it
/// could not be unwound that far) go outermost; one evaluation frame too many is allowed (a
/// frame being set up); any other mismatch is a fault.
fn merge(native: &[NamedFrame], t: &mut ThreadSample) -> Result<(), StackFault> {
    let python = std::mem::take(&mut t.frames);
    let mut merged = Vec::with_capacity(native.len() + python.len());
    let mut python = python.into_iter().peekable();
    let mut evaluations = 0;
    let mut extra = 0;
    for f in native {
        match f.role {
            Role::Dropped => {}
            Role::Kept => merged.push(CodeFrame {
                code: f.code.clone(),
                line: f.line,
                is_entry: true,
                shim_entry: true,
                locals: None,
            }),
            Role::Evaluation => {
                evaluations += 1;
                if python.peek().is_none() {
                    extra += 1;
                }
                for p in python.by_ref() {
                    let ends = p.is_entry || p.shim_entry;
                    merged.push(p);
                    if ends {
                        break;
                    }
                }
            }
        }
    }
    if evaluations == 0 {
        merged.extend(python);
    } else if python.peek().is_some() || extra > 1 {
        t.frames = merged;
        return Err(StackFault::NativeMismatch);
    }
    t.frames = merged;
    Ok(())
}
