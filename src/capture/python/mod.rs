//! CPython read through the OS-level seam ([`crate::capture::os`]):
//!
//! - `target` finds the interpreter in a process (binaries, [`version`], runtime address)
//!   and gets its [`layout`] from the source [`registry`] names for the version: the
//!   target's own `_Py_DebugOffsets` on 3.13+ (`debug_offsets`, read at the word indices
//!   in `debug_indices`, generated from the headers), the per-version [`tables`] before;
//! - `walker` copies thread states and frames in a few batched reads;
//! - `code`, `strings` and `linetable` decode names, files and lines (cached);
//! - `objects` reads objects, `locals` a frame's locals through it, `thread_names` the
//!   `threading` module's names;
//! - `native_merge` places native frames among the Python ones (`--native`).

pub(crate) mod code;
pub(crate) mod debug_indices;
pub(crate) mod debug_offsets;
pub mod layout;
pub(crate) mod linetable;
pub(crate) mod locals;
pub(crate) mod native_merge;
pub(crate) mod objects;
pub mod registry;
pub(crate) mod strings;
pub mod tables;
pub(crate) mod target;
pub(crate) mod thread_names;
pub mod version;
pub(crate) mod walker;
