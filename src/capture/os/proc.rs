//! Reading `/proc`: the one parser of `stat` lines (a process's or a thread's state and
//! parent), whether a process is alive, and the walks over processes and threads.

use std::collections::HashSet;

use crate::model::trace::Pid;

/// What a `stat` line says that we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The state letter: `R` running, `S` sleeping, `D` disk wait, `T` stopped, `t` stopped
    /// by a tracer, `Z` zombie, `X` dead, …
    pub state: u8,
    pub ppid: Pid,
}

impl Stat {
    /// Exited (a zombie waits to be reaped; its `/proc` entry stays until then).
    pub fn exited(&self) -> bool {
        matches!(self.state, b'Z' | b'X')
    }
}

/// Parse a `stat` line. The command name in parentheses may itself hold `)` and spaces, so
/// the fields are counted from the last `)`.
pub fn parse_stat(line: &[u8]) -> Option<Stat> {
    let close = line.iter().rposition(|&b| b == b')')?;
    let mut fields = line[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let state = *fields.next()?.first()?;
    let ppid = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    Some(Stat { state, ppid })
}

/// `/proc/PID/stat`, if the process exists.
pub fn stat(pid: Pid) -> Option<Stat> {
    parse_stat(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` exists and has not exited (a zombie has).
pub fn alive(pid: Pid) -> bool {
    stat(pid).is_some_and(|s| !s.exited())
}

/// The process tracing `pid` (a debugger, a profiler pausing it), from `TracerPid` in
/// `/proc/PID/status`.
pub fn tracer_of(pid: Pid) -> Option<Pid> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let tracer: Pid = status
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))?
        .trim()
        .parse()
        .ok()?;
    (tracer != 0).then_some(tracer)
}

/// The path of the process's executable, as the process sees it (a replaced binary's
/// " (deleted)" mark dropped).
pub fn executable(pid: Pid) -> std::io::Result<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let path = link.to_string_lossy();
    Ok(path.trim_end_matches(" (deleted)").to_string())
}

/// The text of the process's memory map, `/proc/PID/maps` (parsed by `maps::parse_maps`).
pub fn maps_text(pid: Pid) -> std::io::Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
}

/// Whether the process sees another mount namespace (a container or another root) than ours.
pub fn other_mount_namespace(pid: Pid) -> bool {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    ours.is_some() && theirs.is_some() && ours != theirs
}

/// A kernel thread has no command line and no executable.
pub fn is_kernel_thread(pid: Pid) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.is_empty())
        && std::fs::read_link(format!("/proc/{pid}/exe")).is_err()
}

/// The numeric entries of a `/proc` directory (processes, or a process's tasks).
fn numbered<T: std::str::FromStr>(dir: &str) -> Vec<T> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Thread ids of the process now.
pub fn task_ids(pid: Pid) -> Vec<u64> {
    numbered(&format!("/proc/{pid}/task"))
}

/// Every live descendant of `root`, with its parent, parents before their children.
pub fn descendants(root: Pid) -> Vec<(Pid, Pid)> {
    let parent_of: Vec<(Pid, Pid)> = numbered::<Pid>("/proc")
        .into_iter()
        .filter_map(|pid| stat(pid).filter(|s| !s.exited()).map(|s| (pid, s.ppid)))
        .collect();
    let mut found: HashSet<Pid> = HashSet::from([root]);
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for &(pid, ppid) in &parent_of {
            if found.contains(&ppid) && !found.contains(&pid) {
                found.insert(pid);
                out.push((pid, ppid));
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// A process's command line, arguments joined by spaces (empty when it cannot be read).
pub fn command_line(pid: Pid) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let line = b"4242 (my (odd) prog) S 17 4242 4242 0 -1 4194560";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: b'S',
                ppid: 17
            })
        );
        let zombie = parse_stat(b"5 (a) b) Z 1 5").unwrap();
        assert!(zombie.exited());
        assert_eq!(zombie.ppid, 1);
        assert_eq!(parse_stat(b"5 (cut"), None);
        assert_eq!(parse_stat(b"5 (x) R"), None, "no parent field");
    }

    #[test]
    fn this_process_and_its_child() {
        let me = std::process::id() as Pid;
        assert!(alive(me));
        assert!(task_ids(me).contains(&(me as u64)));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as Pid;
        assert!(descendants(me).contains(&(pid, me)));
        assert_eq!(stat(pid).map(|s| s.ppid), Some(me));
        child.kill().unwrap();
        // Killed but not reaped: a zombie, which is not alive.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!alive(pid), "a zombie counts as exited");
        assert!(stat(pid).is_some_and(|s| s.exited()));
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
