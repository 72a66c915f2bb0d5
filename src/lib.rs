//! py-spy: a sampling profiler for Python programs that reads a running CPython process's
//! memory from outside, without restarting or changing it.
//!
//! The crate is built record-then-analyze, and the modules follow the flow:
//! [`capture`] reads processes (knowing nothing of files); [`store`] is the session file;
//! [`analyze`] replays sessions; [`render`] writes them in the formats py-spy users know;
//! [`commands`] is the only place that chains these layers, one module per command.
//! [`model`] holds what every layer shares (the stack model and py-spy 0.4's options).
//! The module paths of py-spy 0.4's library API ([`config`], [`stack_trace`], [`sampler`],
//! [`python_spy`], [`dump`]) are kept as re-exports.

pub mod analyze;
pub mod capture;
pub mod commands;
pub mod model;
pub mod render;
pub mod store;

/// py-spy 0.4's `py_spy::config`.
pub mod config {
    pub use crate::model::config::{Config, FileFormat, LineNo, LockingStrategy, RecordDuration};
}

/// py-spy 0.4's `py_spy::stack_trace`.
pub mod stack_trace {
    pub use crate::model::trace::{Frame, LocalVariable, ProcessInfo, StackTrace};
}

/// py-spy 0.4's `py_spy::sampler`.
pub mod sampler {
    pub use crate::capture::sampling::{Sample, Sampler};
}

/// py-spy 0.4's `py_spy::dump`.
pub mod dump {
    pub use crate::commands::dump::{print_traces, write_traces};
}

/// py-spy 0.4's `py_spy::python_spy`.
pub mod python_spy {
    pub use crate::capture::spy::PythonSpy;
}

pub use capture::spy::PythonSpy;
pub use model::config::{Config, FileFormat, LineNo, LockingStrategy, RecordDuration};
pub use model::trace::{Frame, LocalVariable, Pid, ProcessInfo, StackTrace};
