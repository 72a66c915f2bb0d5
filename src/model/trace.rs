//! The public shape of a sample: [`StackTrace`] per thread, made of [`Frame`]s, with
//! [`LocalVariable`]s when asked for. Field names and JSON form are py-spy 0.4's.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Process id of the target.
pub type Pid = remoteprocess::Pid;

/// Call stack of one Python thread.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackTrace {
    /// The process the thread belongs to.
    pub pid: Pid,
    /// Python's thread id (`threading.get_ident()`: the pthread id).
    pub thread_id: u64,
    /// `threading.Thread.name`, when the thread is known to `threading`.
    pub thread_name: Option<String>,
    /// The OS thread id (`threading.get_native_id()`).
    pub os_thread_id: Option<u64>,
    /// Running (or runnable) rather than waiting.
    pub active: bool,
    /// Held the GIL when sampled.
    pub owns_gil: bool,
    /// Innermost frame first.
    pub frames: Vec<Frame>,
    /// The process (and its parents) when profiling subprocesses.
    pub process_info: Option<Arc<ProcessInfo>>,
}

/// One function call in a stack.
#[derive(Debug, Hash, Eq, PartialEq, Ord, PartialOrd, Clone, Serialize, Deserialize)]
pub struct Frame {
    /// The function's qualified name (`Class.method`).
    pub name: String,
    /// The file as the target names it.
    pub filename: String,
    /// Shared library of a native frame.
    pub module: Option<String>,
    /// The file relative to its package root (or as given with `--full-filenames`).
    pub short_filename: Option<String>,
    /// Line being run (0 when unknown or not asked for).
    pub line: i32,
    /// Local variables, when asked for.
    pub locals: Option<Vec<LocalVariable>>,
    /// Entered from C (3.11+): one native frame per entry frame.
    pub is_entry: bool,
    /// The outermost frame of a block entered from a shim (3.12+), and the outermost frame.
    pub is_shim_entry: bool,
}

/// A local variable of a frame.
#[derive(Debug, Hash, Eq, PartialEq, Ord, PartialOrd, Clone, Serialize, Deserialize)]
pub struct LocalVariable {
    pub name: String,
    /// Address of the value object in the target.
    pub addr: usize,
    /// One of the function's positional arguments.
    pub arg: bool,
    /// Short text of the value (`None` when it could not be read).
    pub repr: Option<String>,
}

/// A process, with its parent when known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: Pid,
    pub command_line: String,
    pub parent: Option<Box<ProcessInfo>>,
}

impl StackTrace {
    /// "idle", "active" or "active+gil", as `py-spy dump` prints.
    pub fn status_str(&self) -> &str {
        match (self.owns_gil, self.active) {
            (_, false) => "idle",
            (true, true) => "active+gil",
            (false, true) => "active",
        }
    }

    /// The OS thread id, or the Python thread id in hex when the OS id is unknown.
    pub fn format_threadid(&self) -> String {
        match self.os_thread_id {
            Some(tid) => format!("{tid}"),
            None => format!("{:#X}", self.thread_id),
        }
    }
}

impl ProcessInfo {
    /// A pseudo-frame naming the process, put at the root of its stacks (py-spy 0.4's API,
    /// kept for code written against it; the renderers label process frames the same way).
    pub fn to_frame(&self) -> Frame {
        Frame {
            name: format!("process {}:\"{}\"", self.pid, self.command_line),
            filename: String::new(),
            module: None,
            short_filename: None,
            line: 0,
            locals: None,
            is_entry: true,
            is_shim_entry: true,
        }
    }
}
