//! Reading live Python processes (and, later, core files) from outside.
//!
//! Data flows: [`target`] finds the interpreter (binaries, version, [`layout`]); [`walker`]
//! copies thread states and frames in a few batched reads through [`memory`]; [`code`],
//! [`strings`] and [`linetable`] decode names, files and lines (cached); [`spy`] assembles
//! [`trace::StackTrace`]s (the shared model, `crate::trace`), with [`objects`] for locals and
//! [`thread_names`]. [`timer`] is the drift-free sampling clock; [`sampling`] is py-spy's
//! `Sampler` API over it. Capture knows nothing of files or outputs: `crate::recording`
//! writes captures into session files.

pub mod code;
pub mod debug_offsets;
pub mod elf;
pub mod errors;
pub mod layout;
pub mod linetable;
pub mod maps;
pub mod memory;
pub mod objects;
pub mod os_threads;
pub mod sampling;
pub mod spy;
pub mod strings;
pub mod tables;
pub mod target;
pub mod thread_names;
pub mod timer;
pub use crate::trace;
pub mod version;
pub mod walker;
