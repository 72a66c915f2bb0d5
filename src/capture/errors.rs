//! Errors a user can act on when attaching to a process.

use std::fmt;

use super::python::version::Version;
use crate::model::trace::Pid;

#[derive(Debug)]
pub enum AttachError {
    NoSuchProcess(Pid),
    PermissionDenied(Pid),
    /// The process runs no CPython we can find: names its executable.
    NotPython {
        pid: Pid,
        exe: String,
    },
    UnsupportedVersion {
        pid: Pid,
        version: Version,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::NoSuchProcess(pid) => write!(f, "no such process: {pid}"),
            AttachError::PermissionDenied(pid) => write!(
                f,
                "permission denied reading process {pid}: py-spy needs root or CAP_SYS_PTRACE \
                 (try sudo; in a container, add --cap-add SYS_PTRACE)"
            ),
            AttachError::NotPython { pid, exe } => write!(
                f,
                "process {pid} ({exe}) is not a Python program: no CPython interpreter found in \
                 its executable or libraries"
            ),
            AttachError::UnsupportedVersion { pid, version } => write!(
                f,
                "process {pid} runs Python {version}, which this py-spy does not support yet"
            ),
        }
    }
}

impl std::error::Error for AttachError {}

/// Map an I/O error on `/proc/PID/...` to the error a user can act on.
pub fn from_proc_io(pid: Pid, err: &std::io::Error) -> Option<AttachError> {
    match err.kind() {
        std::io::ErrorKind::NotFound => Some(AttachError::NoSuchProcess(pid)),
        std::io::ErrorKind::PermissionDenied => Some(AttachError::PermissionDenied(pid)),
        _ => None,
    }
}
