//! Errors a user can act on when attaching to a process.

use std::fmt;

use super::os::proc;
use super::python::version::Version;
use crate::model::trace::Pid;

#[derive(Debug)]
pub enum AttachError {
    NoSuchProcess(Pid),
    /// The process has exited and waits for its parent to collect it.
    Zombie(Pid),
    /// A kernel thread: no program, no memory of its own to read.
    KernelThread(Pid),
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
            AttachError::Zombie(pid) => write!(
                f,
                "process {pid} has exited (a zombie, waiting for its parent to collect it): \
                 there is nothing left to profile"
            ),
            AttachError::KernelThread(pid) => write!(
                f,
                "process {pid} is a kernel thread, not a program: there is no Python in it"
            ),
            AttachError::PermissionDenied(pid) => match (proc::tracer_of(*pid), is_root()) {
                (Some(tracer), _) => write!(
                    f,
                    "process {pid} is already traced by process {tracer} (a debugger or another \
                     profiler): only one tracer can hold a process; stop it, or use \
                     --nonblocking, which does not pause the process"
                ),
                (None, true) => write!(
                    f,
                    "permission denied reading process {pid}, although py-spy runs as root: a \
                     security module (Yama's ptrace_scope 3, SELinux, AppArmor) or a missing \
                     CAP_SYS_PTRACE in this container forbids it"
                ),
                (None, false) => write!(
                    f,
                    "permission denied reading process {pid}: py-spy needs root or \
                     CAP_SYS_PTRACE (try sudo; in a container, add --cap-add SYS_PTRACE)"
                ),
            },
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

impl AttachError {
    /// The process has nothing left to read: gone, a zombie, a kernel thread.
    pub fn is_gone(&self) -> bool {
        matches!(
            self,
            AttachError::NoSuchProcess(_) | AttachError::Zombie(_) | AttachError::KernelThread(_)
        )
    }

    /// The process answered, and the answer is no: not Python, or a version we do not read.
    /// (A program just started may still exec Python: see `AttachPolicy::settle`.)
    pub fn is_answer(&self) -> bool {
        matches!(
            self,
            AttachError::NotPython { .. } | AttachError::UnsupportedVersion { .. }
        )
    }
}

/// The one classification of system errors met while attaching to, reading or pausing
/// process `pid`: the error a user can act on, when the errno stands for one. A process that
/// has exited (a zombie included) is gone whatever the errno said.
pub fn classify_errno(pid: Pid, errno: i32) -> Option<AttachError> {
    match errno {
        libc::EPERM | libc::EACCES => Some(AttachError::PermissionDenied(pid)),
        libc::ESRCH | libc::ENOENT => Some(gone(pid)),
        _ if !proc::alive(pid) => Some(gone(pid)),
        _ => None,
    }
}

/// Why `pid` has nothing to read: a zombie, a kernel thread, or no such process at all.
fn gone(pid: Pid) -> AttachError {
    match proc::stat(pid) {
        Some(s) if s.exited() => AttachError::Zombie(pid),
        Some(_) if proc::is_kernel_thread(pid) => AttachError::KernelThread(pid),
        _ => AttachError::NoSuchProcess(pid),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// [`classify_errno`] for an I/O error (reading `/proc/PID/...`).
pub fn classify_io(pid: Pid, err: &std::io::Error) -> Option<AttachError> {
    match (err.raw_os_error(), err.kind()) {
        (Some(errno), _) => classify_errno(pid, errno),
        (None, std::io::ErrorKind::NotFound) => Some(AttachError::NoSuchProcess(pid)),
        (None, std::io::ErrorKind::PermissionDenied) => Some(AttachError::PermissionDenied(pid)),
        _ => classify_errno(pid, 0),
    }
}

/// [`classify_errno`] for an error from pausing the process (remoteprocess's ptrace).
pub fn classify_remote(pid: Pid, err: &remoteprocess::Error) -> Option<AttachError> {
    match err {
        remoteprocess::Error::NixError(errno) => classify_errno(pid, *errno as i32),
        remoteprocess::Error::IOError(io) => classify_io(pid, io),
        _ => classify_errno(pid, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_what_a_user_can_act_on() {
        let me = std::process::id() as Pid;
        let perm = classify_errno(me, libc::EPERM);
        assert!(matches!(perm, Some(AttachError::PermissionDenied(p)) if p == me));
        assert!(matches!(
            classify_errno(i32::MAX - 1, libc::ESRCH),
            Some(AttachError::NoSuchProcess(_))
        ));
        // kthreadd is process 2 on Linux.
        assert!(matches!(
            classify_errno(2, libc::ENOENT),
            Some(AttachError::KernelThread(2))
        ));
        assert!(
            classify_errno(me, libc::EIO).is_none(),
            "alive: not classified"
        );
        let gone = i32::MAX - 1;
        assert!(matches!(
            classify_errno(gone, libc::EIO),
            Some(AttachError::NoSuchProcess(_))
        ));
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(
            classify_io(me, &io),
            Some(AttachError::PermissionDenied(_))
        ));
    }
}
