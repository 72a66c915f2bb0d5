//! Finding the interpreter in a process: its binaries, version, layout and `_PyRuntime`.

use anyhow::{Context, Result};

use super::elf::LoadedBinary;
use super::errors::{from_proc_io, AttachError};
use super::layout::{self, Layout};
use super::maps::{self, MapRange};
use super::memory::Memory;
use super::trace::Pid;
use super::version::Version;

/// What attaching learned about the target's interpreter.
#[derive(Debug, Clone)]
pub struct PythonTarget {
    pub pid: Pid,
    /// The executable as the target names it (`/proc/PID/exe`).
    pub exe: String,
    /// The binary that holds the interpreter (libpython, or the executable for static builds).
    pub interpreter_binary: LoadedBinary,
    pub version: Version,
    pub layout: &'static Layout,
    /// Address of `_PyRuntime`.
    pub runtime: u64,
    /// Runs in another mount namespace (container, chroot): its files are under /proc/PID/root.
    pub dockerized: bool,
}

impl PythonTarget {
    pub fn find(pid: Pid, mem: &dyn Memory) -> Result<PythonTarget> {
        let exe_link = std::fs::read_link(format!("/proc/{pid}/exe"));
        let exe = match exe_link {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(e) => {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(AttachError::NoSuchProcess(pid).into());
                }
                if let Some(a) = from_proc_io(pid, &e) {
                    return Err(a.into());
                }
                return Err(e).context(format!("could not read /proc/{pid}/exe"));
            }
        };
        let exe = exe.trim_end_matches(" (deleted)").to_string();
        let maps = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            Ok(text) => maps::parse_maps(&text),
            Err(e) => match from_proc_io(pid, &e) {
                Some(a) => return Err(a.into()),
                None => return Err(e).context(format!("could not read /proc/{pid}/maps")),
            },
        };
        let dockerized = is_other_namespace(pid);
        let not_python = || AttachError::NotPython {
            pid,
            exe: exe.clone(),
        };

        // Candidates: libpython first (shared builds), then the executable (static builds).
        let mut candidates: Vec<&MapRange> = Vec::new();
        if let Some(m) = maps.iter().find(|m| maps::is_libpython(&m.path)) {
            candidates.push(m);
        }
        if let Some(m) = maps.iter().find(|m| m.path == exe) {
            candidates.push(m);
        }
        let mut last_err = None;
        let mut found_version = None;
        for cand in candidates {
            let host = maps::host_path(pid, &cand.path);
            let bin = match LoadedBinary::load(&cand.path, &host, &maps) {
                Ok(b) => b,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let version = detect_version(mem, &bin)
                .or_else(|| Version::from_file_name(maps::file_name(&cand.path)));
            let Some(runtime) = bin.symbol("_PyRuntime") else {
                // No _PyRuntime: a Python before 3.7, or not Python at all (then a version-like
                // string in its data means nothing).
                let looks_like_python = !bin.symbols.is_empty()
                    || maps::is_libpython(&cand.path)
                    || maps::file_name(&cand.path).starts_with("python");
                if looks_like_python {
                    found_version = found_version.or(version);
                }
                continue;
            };
            let version = version.ok_or_else(not_python)?;
            let layout = layout::for_version(&version).ok_or(AttachError::UnsupportedVersion {
                pid,
                version: version.clone(),
            })?;
            return Ok(PythonTarget {
                pid,
                exe,
                interpreter_binary: bin,
                version,
                layout,
                runtime,
                dockerized,
            });
        }
        if let Some(version) = found_version {
            return Err(AttachError::UnsupportedVersion { pid, version }.into());
        }
        if let Some(e) = last_err {
            if maps.iter().any(|m| maps::is_libpython(&m.path)) {
                return Err(e.context(not_python()));
            }
        }
        Err(not_python().into())
    }

    /// Address of the first interpreter state.
    pub fn interpreter_address(&self, mem: &dyn Memory) -> Result<u64> {
        let addr = mem
            .read_u64(self.runtime + self.layout.runtime.interpreters_head)
            .map_err(|e| match e.errno {
                libc::EPERM => anyhow::Error::from(AttachError::PermissionDenied(self.pid)),
                libc::ESRCH => anyhow::Error::from(AttachError::NoSuchProcess(self.pid)),
                _ => anyhow::Error::from(e),
            })
            .context("could not read the interpreter list from _PyRuntime")?;
        if addr == 0 {
            anyhow::bail!("the interpreter is not initialised yet (or is shutting down)");
        }
        Ok(addr)
    }
}

/// `Py_Version` from memory (3.11+), else the version string in the binary's .rodata, else
/// `sys.version` as `Py_GetVersion` left it in the target's .data/.bss.
fn detect_version(mem: &dyn Memory, bin: &LoadedBinary) -> Option<Version> {
    if let Some(addr) = bin.symbol("Py_Version") {
        if let Ok(word) = mem.read_u64(addr) {
            if let Some(v) = Version::from_hex(word & 0xffff_ffff) {
                return Some(v);
            }
        }
    }
    bin.rodata_version.clone().or_else(|| {
        bin.data_ranges.iter().find_map(|(start, end)| {
            let len = end.saturating_sub(*start).min(16 << 20) as usize;
            Version::scan_bytes(&mem.read_vec(*start, len).ok()?)
        })
    })
}

/// Does the process see another root than we do?
fn is_other_namespace(pid: Pid) -> bool {
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    ours.is_some() && theirs.is_some() && ours != theirs
}
