//! Reading live Python processes (and, later, core files) from outside.
//!
//! Data flows: [`target`] finds the interpreter (binaries, version, [`layout`]); [`walker`]
//! copies thread states and frames in a few batched reads through [`memory`]; [`code`],
//! [`strings`] and [`linetable`] decode names, files and lines (cached); [`spy`] assembles
//! [`trace::StackTrace`]s, with [`objects`] for locals and [`thread_names`]. [`recorder`]
//! runs a capture into a session file on the drift-free clock of [`timer`]; [`sampling`] is
//! py-spy's `Sampler` API over the same clock.

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
pub mod recorder;
pub mod sampling;
pub mod spy;
pub mod strings;
pub mod tables;
pub mod target;
pub mod thread_names;
pub mod timer;
pub mod trace;
pub mod version;
pub mod walker;
