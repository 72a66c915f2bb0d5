//! The target process as the operating system shows it, with no knowledge of Python:
//! [`memory`] (reading it, live or from an in-memory image: the seam where core files will
//! plug in), `batch` (many reads in one call, with typed handles to their results), `maps`
//! (its memory map and the files behind it), `elf` (symbols and sections of its binaries),
//! `proc` (the `/proc` parser: liveness, parents, the process and thread lists) and
//! `threads` (its OS threads' run state, read cheaply per sample), `core` (core files) and
//! `unwind` (native stacks: unwinding and symbols).

pub(crate) mod batch;
pub(crate) mod core;
pub(crate) mod elf;
pub(crate) mod maps;
pub mod memory;
pub(crate) mod proc;
pub(crate) mod threads;
pub(crate) mod unwind;
