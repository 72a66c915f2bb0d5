//! CPython 3.13+ describes its own layout in `_PyRuntime.debug_offsets` (`_Py_DebugOffsets`).
//! Placeholder until the per-version table of that struct is filled in.

use super::layout::Layout;
use super::memory::Memory;
use super::version::Version;
use anyhow::{bail, Result};

/// `_Py_DebugOffsets.cookie`.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// Find `_PyRuntime` in a binary's data by its debug-offsets cookie.
pub fn scan_for_runtime(mem: &dyn Memory, ranges: &[(u64, u64)]) -> Option<u64> {
    for &(start, end) in ranges {
        let len = end.saturating_sub(start).min(64 << 20) as usize;
        let Ok(bytes) = mem.read_vec(start, len) else {
            continue;
        };
        if let Some(i) = bytes
            .windows(8)
            .enumerate()
            .step_by(1)
            .find(|(i, w)| i % 8 == 0 && w == COOKIE)
            .map(|(i, _)| i)
        {
            return Some(start + i as u64);
        }
    }
    None
}

/// Build the layout of the interpreter whose `_PyRuntime` is at `runtime`.
pub fn read_layout(_mem: &dyn Memory, _runtime: u64, version: &Version) -> Result<&'static Layout> {
    bail!("reading the debug offsets of Python {version} is not implemented yet")
}
