//! Where native frames and Python frames go in one stack (`--native`), as py-spy 0.4 merges
//! them: in the interpreter's binaries an evaluation frame (`_PyEval_EvalFrameDefault`,
//! `PyEval_EvalFrameEx`, and their `.cold` parts) stands for the Python frames it runs, a few
//! calls that say what a thread waits on are kept (`time_sleep`, `PyThread_…`, `lock_…`,
//! `gc_…`, `os_…`), the rest is the interpreter's machinery and left out; elsewhere every
//! frame is kept but the C library's thread start-up.
//!
//! From 3.12 the evaluation calls are found without symbols: each pushes a shim frame on its
//! own C stack frame, and the walker knows where each Python frame's shim is; the native
//! frame whose stack holds it is that call. This places Python frames in stripped builds
//! whose evaluation loop has no name (Debian's 3.14 keeps its hot part in an unnamed `.cold`
//! block).
//!
//! [`plan`] decides the order on indices only, so a live snapshot and a core file build their
//! stacks from the same decision.

use super::walker::StackFault;
use crate::capture::os::unwind::NativeSymbol;

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
pub enum Role {
    /// An evaluation frame: stands for the Python frames it runs.
    Evaluation,
    /// Shown as it is.
    Kept,
    /// Interpreter machinery or thread start-up: left out.
    Dropped,
}

/// One frame of a merged stack: the `i`th native frame or the `i`th Python frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Native(usize),
    Python(usize),
}

/// py-spy's rule for a native frame.
pub fn role_of(sym: &NativeSymbol) -> Role {
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

/// The Python frames, innermost first, as the merge sees them.
pub struct PythonFrames<'a> {
    /// Whether frame `j` is the outermost that one evaluation call runs (an entry frame;
    /// every frame before 3.11).
    pub ends_group: &'a [bool],
    /// Per frame: the address of the shim frame it was called from (3.12+), or 0.
    pub shims: &'a [u64],
}

/// The merged stack, innermost first, of native frames with `roles` and stack pointers
/// `sps` (innermost first; `complete`: unwound to the thread's first frame) and `python`'s
/// frames. Where every group of Python frames has its shim (3.12+), the evaluation calls are
/// the interpreter's native frames whose stack holds a shim, named or not; otherwise they are
/// found by name. Python frames left over when the native stack has no evaluation frame at
/// all, or was not unwound to its end, go outermost (the native frames found are the
/// innermost); one evaluation frame too many is allowed (a frame being set up); any other
/// mismatch is a fault.
pub fn plan(
    roles: &[Role],
    sps: &[u64],
    python: &PythonFrames,
    complete: bool,
    out: &mut Vec<Slot>,
) -> Result<(), StackFault> {
    let ends_group = python.ends_group;
    // 3.12-3.14 push their shims on the C stack; 3.15 keeps them with the Python frames, and
    // then names decide.
    // 3.12-3.14 push their shims on the C stack; 3.15 keeps them with the Python frames, and
    // then names decide.
    let on_c_stack = |s: &u64| {
        *s != 0 && sps.first().is_some_and(|lo| lo <= s) && sps.last().is_some_and(|hi| s < hi)
    };
    let anchored = !ends_group.is_empty()
        && python.shims.len() == ends_group.len()
        && sps.len() == roles.len()
        && python.shims.iter().any(on_c_stack)
        && ends_group
            .iter()
            .zip(python.shims)
            .all(|(end, shim)| !end || *shim != 0);
    let anchored_roles: Vec<Role>;
    let roles = if anchored {
        anchored_roles = roles
            .iter()
            .enumerate()
            .map(|(i, role)| {
                let low = sps[i];
                let high = sps.get(i + 1).copied().unwrap_or(u64::MAX);
                let holds_shim = python
                    .shims
                    .iter()
                    .any(|s| *s != 0 && low <= *s && *s < high);
                match role {
                    Role::Evaluation | Role::Dropped if holds_shim => Role::Evaluation,
                    Role::Evaluation => Role::Dropped,
                    r => *r,
                }
            })
            .collect();
        &anchored_roles[..]
    } else {
        roles
    };
    out.clear();
    let mut next = 0;
    let mut evaluations = 0;
    let mut extra = 0;
    for (i, role) in roles.iter().enumerate() {
        match role {
            Role::Dropped => {}
            Role::Kept => out.push(Slot::Native(i)),
            Role::Evaluation => {
                evaluations += 1;
                if next == ends_group.len() {
                    extra += 1;
                }
                while next < ends_group.len() {
                    out.push(Slot::Python(next));
                    next += 1;
                    if ends_group[next - 1] {
                        break;
                    }
                }
            }
        }
    }
    if evaluations == 0 || (!complete && extra == 0) {
        out.extend((next..ends_group.len()).map(Slot::Python));
    } else if next < ends_group.len() || extra > 1 {
        return Err(StackFault::NativeMismatch);
    }
    Ok(())
}

/// The merged stack that `slots` describe: `python`'s frames where they go, and
/// `native(i)` for the `i`th native frame.
pub fn assemble<T>(slots: &[Slot], python: Vec<T>, mut native: impl FnMut(usize) -> T) -> Vec<T> {
    let mut python: Vec<Option<T>> = python.into_iter().map(Some).collect();
    slots
        .iter()
        .filter_map(|slot| match *slot {
            Slot::Python(j) => python.get_mut(j).and_then(Option::take),
            Slot::Native(i) => Some(native(i)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;
    use Slot::*;

    fn by_name(roles: &[Role], ends: &[bool], out: &mut Vec<Slot>) -> Result<(), StackFault> {
        let none = vec![0; ends.len()];
        let python = PythonFrames {
            ends_group: ends,
            shims: &none,
        };
        plan(roles, &[], &python, true, out)
    }

    #[test]
    fn evaluation_frames_take_their_python_frames() {
        let mut out = Vec::new();
        // C hot loop, its caller, an evaluation frame running two frames (3.11+: the
        // second is the entry), machinery, another evaluation frame, libc start.
        let roles = [Kept, Kept, Evaluation, Dropped, Evaluation, Kept];
        by_name(&roles, &[false, true, true], &mut out).unwrap();
        assert_eq!(
            out,
            [
                Native(0),
                Native(1),
                Python(0),
                Python(1),
                Python(2),
                Native(5)
            ]
        );
        // No evaluation frame reached: the Python frames go outermost.
        by_name(&[Kept, Dropped], &[true, true], &mut out).unwrap();
        assert_eq!(out, [Native(0), Python(0), Python(1)]);
        // One evaluation frame too many is allowed; Python frames left over are not.
        assert!(by_name(&[Evaluation, Evaluation], &[true], &mut out).is_ok());
        assert_eq!(
            by_name(&[Evaluation], &[true, true], &mut out),
            Err(StackFault::NativeMismatch)
        );
        assert_eq!(
            by_name(&[Evaluation, Evaluation, Evaluation], &[true], &mut out),
            Err(StackFault::NativeMismatch)
        );
    }

    #[test]
    fn shims_find_unnamed_evaluation_calls() {
        let mut out = Vec::new();
        // A C loop, an unnamed interpreter frame whose stack (0x1100..0x1200) holds the
        // shim of the inner group, machinery, another unnamed one holding the outer shim.
        let roles = [Kept, Dropped, Dropped, Dropped];
        let sps = [0x1000, 0x1100, 0x1200, 0x1300];
        let python = PythonFrames {
            ends_group: &[false, true, true],
            shims: &[0, 0x1180, 0x1310],
        };
        plan(&roles, &sps, &python, true, &mut out).unwrap();
        assert_eq!(out, [Native(0), Python(0), Python(1), Python(2)]);
        // A named evaluation frame that holds no shim is not one (it is being set up).
        let roles = [Evaluation, Kept, Dropped, Kept];
        let python = PythonFrames {
            ends_group: &[true],
            shims: &[0x1250],
        };
        let sps = [0x1000, 0x1100, 0x1200, 0x1300];
        plan(&roles, &sps, &python, true, &mut out).unwrap();
        assert_eq!(out, [Native(1), Python(0), Native(3)]);
        // Shims kept off the C stack (3.15): names decide.
        let python = PythonFrames {
            ends_group: &[true],
            shims: &[0x9000],
        };
        plan(&roles, &sps, &python, true, &mut out).unwrap();
        assert_eq!(out, [Python(0), Native(1), Native(3)]);
        // Unwinding that stopped early in a library: the shims beyond it are not its, and
        // the Python frames left over go outermost.
        let roles = [Dropped, Kept, Kept];
        let python = PythonFrames {
            ends_group: &[true, false, true],
            shims: &[0x1050, 0, 0x5000],
        };
        let sps = [0x1000, 0x1100, 0x1200];
        plan(&roles, &sps, &python, false, &mut out).unwrap();
        assert_eq!(out, [Python(0), Native(1), Native(2), Python(1), Python(2)]);
        assert_eq!(
            plan(&roles, &sps, &python, true, &mut out),
            Err(StackFault::NativeMismatch)
        );
    }
}
