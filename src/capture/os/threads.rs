//! OS-level thread state: is a thread running, from `/proc/PID/task/TID/stat`, and how much
//! CPU it has had, from `/proc/PID/task/TID/schedstat`.
//!
//! The stat files stay open between samples and are re-read with one `pread` each, instead of
//! open/read/close every time.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::proc::{parse_stat, task_ids};
use crate::model::fasthash::{FastMap, FastSet};
use crate::model::trace::Pid;

pub struct OsThreads {
    pid: Pid,
    files: FastMap<u64, File>,
    /// `schedstat` files, opened when first asked for.
    schedstat: FastMap<u64, File>,
}

impl OsThreads {
    pub fn new(pid: Pid) -> OsThreads {
        OsThreads {
            pid,
            files: FastMap::default(),
            schedstat: FastMap::default(),
        }
    }

    /// Whether thread `tid` is running or runnable ('R'); a thread stopped by a signal ('T',
    /// as after SIGSTOP) is not. `None` if it can't be told (exited, or stopped by a
    /// tracer: our own pause shows as 't').
    pub fn is_running(&mut self, tid: u64) -> Option<bool> {
        if !self.files.contains_key(&tid) {
            let f = File::open(format!("/proc/{}/task/{tid}/stat", self.pid)).ok()?;
            self.files.insert(tid, f);
        }
        let f = self.files.get(&tid)?;
        let mut buf = [0u8; 512];
        match f.read_at(&mut buf, 0) {
            Ok(n) if n > 0 => match parse_stat(&buf[..n]).map(|s| s.state) {
                Some(b't') | None => None,
                Some(s) => Some(s == b'R'),
            },
            _ => {
                self.files.remove(&tid);
                None
            }
        }
    }

    /// Open the stat file of every thread the process has now (at attach, and after the set
    /// of threads changed), so their state can be read before the process is paused.
    pub fn rescan(&mut self) {
        for tid in task_ids(self.pid) {
            if let std::collections::hash_map::Entry::Vacant(v) = self.files.entry(tid) {
                if let Ok(f) = File::open(format!("/proc/{}/task/{tid}/stat", self.pid)) {
                    v.insert(f);
                }
            }
        }
    }

    /// How long thread `tid` has run on a CPU, in nanoseconds; `None` if it can't be told.
    pub fn cpu_ns(&mut self, tid: u64) -> Option<u64> {
        if !self.schedstat.contains_key(&tid) {
            let f = File::open(format!("/proc/{}/task/{tid}/schedstat", self.pid)).ok()?;
            self.schedstat.insert(tid, f);
        }
        let mut buf = [0u8; 128];
        let n = self.schedstat.get(&tid)?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let cpu = text.split_ascii_whitespace().next()?.parse().ok();
        if cpu.is_none() {
            self.schedstat.remove(&tid);
        }
        cpu
    }

    /// Forget threads not in `alive` (their files would report an exited thread).
    pub fn retain(&mut self, alive: &FastSet<u64>) {
        self.files.retain(|tid, _| alive.contains(tid));
        self.schedstat.retain(|tid, _| alive.contains(tid));
    }

    /// Threads with an open stat file.
    pub fn count(&self) -> usize {
        self.files.len()
    }

    /// Thread ids with an open stat file.
    pub fn known(&self) -> Vec<u64> {
        self.files.keys().copied().collect()
    }
}

/// glibc's offset of `tid` in `struct pthread` on x86_64, preferred when the search below
/// finds several candidates (the main thread's `pthread_t` can hold its tid twice).
const GLIBC_TID_OFFSET: usize = 0x2d0;
/// How much of `struct pthread` is searched.
const PTHREAD_SEARCH: usize = 2048;

/// Where the OS thread id is in the `struct pthread` that a `pthread_t` (Python's
/// `thread_id` before 3.8, which has no `native_thread_id`) points at: the offset at which
/// every thread's struct holds a distinct id of one of the process's tasks. `structs` are
/// the first [`PTHREAD_SEARCH`] bytes of each thread's struct.
pub fn find_tid_offset(structs: &[Vec<u8>], tids: &[u64]) -> Option<usize> {
    if structs.is_empty() {
        return None;
    }
    let mut candidates = Vec::new();
    for off in (0..PTHREAD_SEARCH).step_by(4) {
        let mut seen = Vec::with_capacity(structs.len());
        let all = structs.iter().all(|s| {
            let Some(b) = s.get(off..off + 4) else {
                return false;
            };
            let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
            let fresh = !seen.contains(&v);
            seen.push(v);
            v != 0 && fresh && tids.contains(&v)
        });
        if all {
            candidates.push(off);
        }
    }
    if candidates.contains(&GLIBC_TID_OFFSET) {
        return Some(GLIBC_TID_OFFSET);
    }
    candidates.first().copied()
}

/// Read the `struct pthread` of each of `pthread_ids` and map them to OS thread ids.
pub fn map_pthreads(
    mem: &dyn super::memory::Memory,
    pid: Pid,
    pthread_ids: &[u64],
) -> FastMap<u64, u64> {
    map_pthreads_among(mem, &task_ids(pid), pthread_ids)
}

/// [`map_pthreads`] for a process whose OS thread ids are `tids` (a core file's).
pub fn map_pthreads_among(
    mem: &dyn super::memory::Memory,
    tids: &[u64],
    pthread_ids: &[u64],
) -> FastMap<u64, u64> {
    let mut out = FastMap::default();
    let structs: Vec<Vec<u8>> = pthread_ids
        .iter()
        .map(|&p| mem.read_vec(p, PTHREAD_SEARCH).unwrap_or_default())
        .collect();
    let readable: Vec<Vec<u8>> = structs.iter().filter(|s| !s.is_empty()).cloned().collect();
    let Some(off) = find_tid_offset(&readable, tids) else {
        return out;
    };
    for (p, s) in pthread_ids.iter().zip(&structs) {
        if let Some(b) = s.get(off..off + 4) {
            let tid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
            if tids.contains(&tid) {
                out.insert(*p, tid);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_thread_is_running() {
        let mut t = OsThreads::new(std::process::id() as Pid);
        let tid = unsafe { libc::gettid() } as u64;
        assert_eq!(t.is_running(tid), Some(true));
        assert_eq!(t.is_running(u32::MAX as u64), None);
    }
}
