//! py-spy: a sampling profiler for Python programs that reads a running CPython process's
//! memory from outside, without restarting or changing it.
//!
//! The crate is built record-then-analyze: [`capture`] reads processes; [`recording`] writes
//! what it reads into session files ([`store`]); [`analyze`] and [`render`] replay them;
//! [`commands`] chain the layers. [`trace`] is the stack model they share. The module paths of py-spy 0.4's library
//! API ([`config`], [`stack_trace`], [`sampler`], [`python_spy`]) are kept as re-exports.

pub mod analyze;
pub mod capture;
pub mod commands;
pub mod fasthash;
pub mod recording;
pub mod render;
pub mod settings;
pub mod store;
pub mod trace;

/// py-spy 0.4's `py_spy::config`.
pub mod config {
    pub use crate::settings::{Config, FileFormat, LineNo, LockingStrategy, RecordDuration};
}

/// py-spy 0.4's `py_spy::stack_trace`.
pub mod stack_trace {
    pub use crate::trace::{Frame, LocalVariable, ProcessInfo, StackTrace};
}

/// py-spy 0.4's `py_spy::sampler`.
pub mod sampler {
    pub use crate::capture::sampling::{Sample, Sampler};
}

/// py-spy 0.4's `py_spy::python_spy`.
pub mod python_spy {
    pub use crate::capture::spy::PythonSpy;
}

pub use capture::spy::PythonSpy;
pub use settings::{Config, FileFormat, LineNo, LockingStrategy, RecordDuration};
pub use trace::{Frame, LocalVariable, Pid, ProcessInfo, StackTrace};
