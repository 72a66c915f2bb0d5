//! Reading live Python processes and core files from outside. Capture knows nothing of files
//! or outputs: the capture command writes what it reads into a session file.
//!
//! Two levels, each in its own folder:
//! - [`os`]: the process as the operating system shows it — its memory ([`os::memory`]: a
//!   live process, or a core file, `os::core`), memory map, ELF binaries, threads, and
//!   native stacks (`os::unwind`). Nothing here knows Python.
//! - [`python`]: CPython read through that seam — finding the interpreter and its version
//!   (`python::target`), the per-version struct layouts ([`python::layout`]), the batched
//!   stack walk (`python::walker`), the decoding of code objects, strings, line tables and
//!   objects, and where native frames go among Python ones (`python::native_merge`).
//!
//! On top of both: [`spy`] is py-spy's `PythonSpy` (attach, then one snapshot of every thread
//! per call, with `--native` frames), `attach` the one policy for retrying an attach,
//! `timer` the drift-free sampling clock, [`sampling`] py-spy's `Sampler` API, [`errors`]
//! the typed reasons an attach fails, [`image`] snapshot images (one snapshot's memory,
//! recorded to be read again offline: the walker fuzzer's corpus) and `core_snapshot` the
//! Python threads of a core file.

pub(crate) mod attach;
pub(crate) mod core_snapshot;
pub mod errors;
pub mod image;
pub mod os;
pub mod python;
pub mod sampling;
pub mod spy;
pub(crate) mod timer;
