//! The target process as the operating system shows it, with no knowledge of Python:
//! [`memory`] (reading it, live or from an in-memory image), [`batch`] (many reads in one call,
//! with typed handles to their results), [`maps`] (its memory map and the
//! files behind it), [`elf`] (symbols and sections of its binaries) and [`threads`] (its OS
//! threads and their run state).

pub mod batch;
pub mod elf;
pub mod maps;
pub mod memory;
pub mod threads;
