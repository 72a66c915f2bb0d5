//! Reading live Python processes (and, later, core files) from outside. Capture knows nothing
//! of files or outputs: the capture command writes what it reads into a session file.
//!
//! Two levels, each in its own folder:
//! - [`os`]: the process as the operating system shows it — its memory ([`os::memory`], the
//!   seam where core files will plug in), memory map, ELF binaries and threads. Nothing here
//!   knows Python.
//! - [`python`]: CPython read through that seam — finding the interpreter and its version
//!   (`python::target`), the per-version struct layouts ([`python::layout`]), the batched
//!   stack walk (`python::walker`) and the decoding of code objects, strings, line tables
//!   and objects.
//!
//! On top of both: [`spy`] is py-spy's `PythonSpy` (attach, then one snapshot of every thread
//! per call), [`attach`] the one policy for retrying an attach, [`timer`] the drift-free sampling clock, [`sampling`] py-spy's `Sampler` API, and
//! [`errors`] the typed reasons an attach fails, and [`image`] snapshot images: one snapshot's
//! memory, recorded to be read again offline (the walker fuzzer's corpus).

pub mod attach;
pub mod core_snapshot;
pub mod errors;
pub mod image;
pub mod os;
pub mod python;
pub mod sampling;
pub mod spy;
pub mod timer;
