//! Finding the interpreter in a process: its binaries, version, layout (from the source
//! `registry` names for the version) and `_PyRuntime`.

use anyhow::{Context, Result};
use std::collections::HashMap;

use super::debug_offsets;
use super::layout::{GilHolder, Layout, Root};
use super::registry::{self, LayoutSource};
use super::version::Version;
use super::walker::GilWords;
use crate::capture::errors::{classify_errno, classify_io, AttachError};
use crate::capture::os::elf::LoadedBinary;
use crate::capture::os::maps::{self, MapRange};
use crate::capture::os::memory::{words_in, Memory};
use crate::capture::os::proc;
use crate::model::trace::Pid;

/// What attaching learned about the target's interpreter.
#[derive(Debug, Clone)]
pub struct PythonTarget {
    pub pid: Pid,
    /// The executable as the target names it (`/proc/PID/exe`).
    pub exe: String,
    /// The binary that holds the interpreter (libpython, or the executable for static builds).
    pub interpreter_binary: LoadedBinary,
    pub version: Version,
    /// The version came from the binary's file name only ("python2.7": patch unknown), as
    /// before 3.11 when attaching before the interpreter set `sys.version`; see
    /// [`PythonTarget::exact_version`].
    pub version_from_name: bool,
    pub layout: &'static Layout,
    /// Address of the layout's root symbol: `_PyRuntime` (3.7+) or `interp_head`.
    pub runtime: u64,
    /// Runs in another mount namespace (container, chroot): its files are under /proc/PID/root.
    pub dockerized: bool,
}

impl PythonTarget {
    pub fn find(pid: Pid, mem: &dyn Memory) -> Result<PythonTarget> {
        let exe = match proc::executable(pid) {
            Ok(exe) => exe,
            Err(e) => {
                if let Some(a) = classify_io(pid, &e) {
                    return Err(a.into());
                }
                return Err(e).context(format!("could not read /proc/{pid}/exe"));
            }
        };
        let maps = match proc::maps_text(pid) {
            Ok(text) => maps::parse_maps(&text),
            Err(e) => match classify_io(pid, &e) {
                Some(a) => return Err(a.into()),
                None => return Err(e).context(format!("could not read /proc/{pid}/maps")),
            },
        };
        let dockerized = proc::other_mount_namespace(pid);
        let host = |path: &str| maps::host_path(pid, path);
        Self::find_in(pid, exe, &maps, dockerized, &host, mem)
    }

    /// Find the interpreter of process `pid` from its executable and memory map, opening
    /// the files it maps at the paths `host` gives for them: a live process's (through its
    /// root) or a core file's (wherever the binaries are now).
    pub fn find_in(
        pid: Pid,
        exe: String,
        maps: &[MapRange],
        dockerized: bool,
        host: &dyn Fn(&str) -> std::path::PathBuf,
        mem: &dyn Memory,
    ) -> Result<PythonTarget> {
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
        for cand in candidates {
            let host = host(&cand.path);
            // The version string in .rodata is only needed without `Py_Version` (< 3.11).
            let mut rodata_version = None;
            let mut scan_rodata = |symbols: &HashMap<String, u64>, rodata: &[u8]| {
                if !symbols.contains_key("Py_Version") {
                    rodata_version = Version::scan_bytes(rodata);
                }
            };
            let loaded =
                LoadedBinary::load(&cand.path, &host, maps, WANTED_SYMBOLS, &mut scan_rodata);
            let bin = match loaded {
                Ok(b) => b,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            let named_python =
                maps::is_libpython(&cand.path) || maps::file_name(&cand.path).starts_with("python");
            let has_python_symbols = ["_PyRuntime", "interp_head", "_PyThreadState_Current"]
                .iter()
                .any(|s| bin.symbol(s).is_some());
            if !named_python && !has_python_symbols {
                continue;
            }
            let detected = detect_version(mem, &bin, rodata_version.clone());
            let version_from_name = detected.is_none();
            let version = detected.or_else(|| Version::from_file_name(maps::file_name(&cand.path)));
            let Some(version) = version else {
                continue;
            };
            let unsupported = || AttachError::UnsupportedVersion {
                pid,
                version: version.clone(),
            };
            let (layout, root) = match registry::source_for(&version) {
                LayoutSource::DebugOffsets { shape, .. } => {
                    // 3.13+: the interpreter describes itself in `_PyRuntime.debug_offsets`.
                    let runtime = match bin.symbol("_PyRuntime") {
                        Some(r) => r,
                        None => debug_offsets::scan_for_runtime(mem, &bin.data_ranges).ok_or_else(
                            || {
                                anyhow::anyhow!(
                                    "found Python {version} in {} but no _PyRuntime (no \
                                     symbol, and no debug offsets in its data)",
                                    cand.path
                                )
                            },
                        )?,
                    };
                    let layout = debug_offsets::read_layout(mem, runtime, &version, shape)
                        .map_err(|e| anyhow::Error::from(unsupported()).context(e))?;
                    (layout, runtime)
                }
                LayoutSource::Table(layout) => {
                    let root = match bin.symbol(layout.root.symbol()) {
                        Some(r) => r,
                        None => scan_for_root(mem, layout, &bin.data_ranges).ok_or_else(|| {
                            anyhow::anyhow!(
                                "found Python {version} in {} but neither the symbol {} nor, \
                                 in its data, a pointer to a live interpreter",
                                cand.path,
                                layout.root.symbol()
                            )
                        })?,
                    };
                    (layout, root)
                }
                LayoutSource::Unsupported => return Err(unsupported().into()),
            };
            return Ok(PythonTarget {
                pid,
                exe,
                interpreter_binary: bin,
                version,
                version_from_name,
                layout,
                runtime: root,
                dockerized,
            });
        }
        if let Some(e) = last_err {
            if maps.iter().any(|m| maps::is_libpython(&m.path)) {
                return Err(e.context(not_python()));
            }
        }
        Err(not_python().into())
    }

    /// Where the GIL holder is read, for the interpreter at `interp`.
    pub fn gil_words(&self, mem: &dyn Memory, interp: u64) -> GilWords {
        match self.layout.runtime.gil {
            GilHolder::CurrentSymbol => GilWords {
                holder: self
                    .interpreter_binary
                    .symbol("_PyThreadState_Current")
                    .unwrap_or(0),
                locked: None,
            },
            GilHolder::RuntimeTstateCurrent(off) => GilWords {
                holder: self.runtime + off,
                locked: None,
            },
            GilHolder::InterpGil {
                gil_ptr,
                locked,
                holder,
            } => match mem.read_u64(interp + gil_ptr) {
                Ok(gil) if gil != 0 => GilWords {
                    holder: gil + holder,
                    locked: Some(gil + locked),
                },
                _ => GilWords::default(),
            },
        }
    }

    /// Address of the first interpreter state.
    pub fn interpreter_address(&self, mem: &dyn Memory) -> Result<u64> {
        let addr = mem
            .read_u64(self.runtime + self.layout.runtime.interpreters_head)
            .map_err(|e| match classify_errno(self.pid, e.errno) {
                Some(a) => anyhow::Error::from(a),
                None => anyhow::Error::from(e),
            })
            .context("could not read the interpreter list from _PyRuntime")?;
        if addr == 0 {
            anyhow::bail!("the interpreter is not initialised yet (or is shutting down)");
        }
        Ok(addr)
    }
}

impl PythonTarget {
    /// The full version, once `sys.version` can be read (for a version first known only
    /// from a file name); `None` while it cannot. Same major and minor only: the layout was
    /// chosen by them.
    pub fn exact_version(&self, mem: &dyn Memory) -> Option<Version> {
        let found = version_in_data(mem, &self.interpreter_binary)?;
        (found.major == self.version.major && found.minor == self.version.minor).then_some(found)
    }
}

/// Symbols looked for in the interpreter's binaries; everything else in the table is ignored.
const WANTED_SYMBOLS: &[&str] = &[
    "_PyRuntime",
    "Py_Version",
    "interp_head",
    "_PyThreadState_Current",
    "_Py_Version",
];

/// `Py_Version` from memory (3.11+), else the version string in the binary's .rodata, else
/// `sys.version` as `Py_GetVersion` left it in the target's .data/.bss.
fn detect_version(
    mem: &dyn Memory,
    bin: &LoadedBinary,
    rodata_version: Option<Version>,
) -> Option<Version> {
    if let Some(addr) = bin.symbol("Py_Version") {
        if let Ok(word) = mem.read_u64(addr) {
            if let Some(v) = Version::from_hex(word & 0xffff_ffff) {
                return Some(v);
            }
        }
    }
    rodata_version.or_else(|| version_in_data(mem, bin))
}

/// `sys.version` as `Py_GetVersion` left it in the binary's .data/.bss.
fn version_in_data(mem: &dyn Memory, bin: &LoadedBinary) -> Option<Version> {
    bin.data_ranges.iter().find_map(|(start, end)| {
        let len = end.saturating_sub(*start).min(16 << 20) as usize;
        Version::scan_bytes(&mem.read_vec(*start, len).ok()?)
    })
}

/// Without the root symbol (stripped or embedded builds): look through the binary's data for
/// a word pointing at a live interpreter state, as its thread list proves (the first thread
/// state names it as its interpreter). Returns the root address the layout expects: the
/// word's address, less `interpreters_head` for `_PyRuntime`.
fn scan_for_root(mem: &dyn Memory, layout: &Layout, ranges: &[(u64, u64)]) -> Option<u64> {
    let head_off = match layout.root {
        Root::Runtime => layout.runtime.interpreters_head,
        Root::InterpHead => 0,
    };
    words_in(mem, ranges).find_map(|(addr, interp)| {
        let plausible = interp >= 0x10000 && interp % 8 == 0 && interp >> 48 == 0;
        (plausible && is_interpreter(mem, layout, interp)).then(|| addr - head_off)
    })
}

/// Does `interp` look like a live interpreter state: its first thread state points back at
/// it, and so does the next one if there is one.
fn is_interpreter(mem: &dyn Memory, layout: &Layout, interp: u64) -> bool {
    let Ok(tstate) = mem.read_u64(interp + layout.interp.threads_head) else {
        return false;
    };
    if tstate < 0x10000 || tstate % 8 != 0 {
        return false;
    }
    let Ok(back) = mem.read_u64(tstate + layout.thread.interp) else {
        return false;
    };
    if back != interp {
        return false;
    }
    // A thread state passes the test above too (its interpreter's first thread is itself):
    // an interpreter's `modules` is a dict.
    let modules = mem.read_u64(interp + layout.interp.modules).unwrap_or(0);
    if type_name(mem, layout, modules).as_deref() != Some("dict") {
        return false;
    }
    match mem.read_u64(tstate + layout.thread.next) {
        Ok(0) => true,
        Ok(next) => mem
            .read_u64(next + layout.thread.interp)
            .is_ok_and(|b| b == interp),
        Err(_) => false,
    }
}

/// The `tp_name` of the object at `addr`'s type.
fn type_name(mem: &dyn Memory, layout: &Layout, addr: u64) -> Option<String> {
    if addr < 0x10000 || addr % 8 != 0 {
        return None;
    }
    let tp = mem.read_u64(addr + layout.object.ob_type).ok()?;
    let name = mem.read_u64(tp + layout.object.tp_name).ok()?;
    let mut buf = [0u8; 16];
    mem.read(name, &mut buf).ok()?;
    let end = buf.iter().position(|&b| b == 0)?;
    String::from_utf8(buf[..end].to_vec()).ok()
}
