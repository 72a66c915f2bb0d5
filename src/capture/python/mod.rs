//! CPython read through the OS-level seam ([`crate::capture::os`]):
//!
//! - [`target`] finds the interpreter in a process (binaries, [`version`], runtime address)
//!   and gets its [`layout`] from the source [`registry`] names for the version: the
//!   target's own `_Py_DebugOffsets` on 3.13+ ([`debug_offsets`], read at the word indices
//!   in [`debug_indices`], generated from the headers), the per-version [`tables`] before;
//! - [`walker`] copies thread states and frames in a few batched reads;
//! - [`code`], [`strings`] and [`linetable`] decode names, files and lines (cached);
//! - [`objects`] reads locals, [`thread_names`] the `threading` module's names.

pub mod code;
pub mod debug_indices;
pub mod debug_offsets;
pub mod layout;
pub mod linetable;
pub mod objects;
pub mod registry;
pub mod strings;
pub mod tables;
pub mod target;
pub mod thread_names;
pub mod version;
pub mod walker;
