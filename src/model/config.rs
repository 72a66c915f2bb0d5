//! Options shared by the library and the command line: py-spy 0.4's `Config` and its enums.

use serde::{Deserialize, Serialize};

use crate::model::trace::Pid;

/// How to collect samples from a Python process: py-spy 0.4's `Config`, field for field, so
/// that code written against py-spy's crate builds a `Config` the same way.
///
/// The library reads the fields documented as such ([`PythonSpy`](crate::PythonSpy) and
/// [`Sampler`](crate::sampler::Sampler)); the others are the command line's in py-spy 0.4 and
/// are kept only for that compatibility: this crate's command line builds its own options
/// (`commands`), and a value set there is ignored by the library.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Pause the target while reading it (`Lock`), or not (`NonBlocking`: less impact on the
    /// target, but a stack can be caught half-updated, which shows as a sampling error).
    pub blocking: LockingStrategy,
    /// Also unwind native (C/C++/Cython/Rust) frames and merge them with the Python ones
    /// (needs blocking mode: attaching without it fails with a clear error).
    pub native: bool,
    /// Samples per second ([`Sampler`](crate::sampler::Sampler)).
    pub sampling_rate: u64,
    /// How long to sample ([`Sampler`](crate::sampler::Sampler): rate × seconds samples).
    pub duration: RecordDuration,
    /// Only the thread holding the GIL.
    pub gil_only: bool,
    /// Which line each frame reports.
    pub lineno: LineNo,
    /// Full file names rather than relative to the package root.
    pub full_filenames: bool,
    /// Read local variables: 0 none, 1 and more with longer values shown.
    pub dump_locals: u64,
    /// py-spy 0.4's command line only (compatibility; not read by the library).
    #[doc(hidden)]
    pub command: String,
    #[doc(hidden)]
    pub pid: Option<Pid>,
    #[doc(hidden)]
    pub python_program: Option<Vec<String>>,
    #[doc(hidden)]
    pub filename: Option<String>,
    #[doc(hidden)]
    pub format: Option<FileFormat>,
    #[doc(hidden)]
    pub show_line_numbers: bool,
    /// py-spy 0.4's command line only: idle threads are always returned by the library and
    /// left out by the views that ask for it (`analyze::View::idle`).
    #[doc(hidden)]
    pub include_idle: bool,
    #[doc(hidden)]
    pub include_thread_ids: bool,
    #[doc(hidden)]
    pub subprocesses: bool,
    #[doc(hidden)]
    pub hide_progress: bool,
    #[doc(hidden)]
    pub capture_output: bool,
    #[doc(hidden)]
    pub dump_json: bool,
    #[doc(hidden)]
    pub refresh_seconds: f64,
    #[doc(hidden)]
    pub core_filename: Option<String>,
}

/// Output formats of `record` / `render` (py-spy 0.4's names). What each writes, its file
/// extension and its messages are in one registry, the renderers' `formats` module.
#[allow(non_camel_case_types)]
#[derive(Debug, Copy, Clone, Eq, PartialEq, Serialize, Deserialize)]
pub enum FileFormat {
    flamegraph,
    raw,
    speedscope,
    chrometrace,
}

impl FileFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [FileFormat; 4] = [
        FileFormat::flamegraph,
        FileFormat::raw,
        FileFormat::speedscope,
        FileFormat::chrometrace,
    ];

    /// The name the command line and py-spy use.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::flamegraph => "flamegraph",
            FileFormat::raw => "raw",
            FileFormat::speedscope => "speedscope",
            FileFormat::chrometrace => "chrometrace",
        }
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;

    /// A format by name, ignoring case (as py-spy's command line does).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("Invalid fileformat: {s}"))
    }
}

/// Whether the target is paused while it is read.
#[derive(Debug, Clone, Copy, Eq, PartialEq, Serialize, Deserialize)]
pub enum LockingStrategy {
    /// Read without pausing.
    NonBlocking,
    /// The caller has already paused the target.
    AlreadyLocked,
    /// Pause every thread (ptrace) for the duration of each sample.
    Lock,
}

/// How long to record.
#[derive(Debug, Clone, Eq, PartialEq, Serialize, Deserialize)]
pub enum RecordDuration {
    Unlimited,
    Seconds(u64),
}

/// Which line a frame reports.
#[derive(Debug, Clone, Eq, PartialEq, Copy, Serialize, Deserialize)]
pub enum LineNo {
    /// None (0): aggregate by function.
    NoLine,
    /// The function's first line.
    First,
    /// The line being run.
    LastInstruction,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pid: None,
            python_program: None,
            filename: None,
            format: None,
            command: String::from("top"),
            blocking: LockingStrategy::Lock,
            show_line_numbers: false,
            sampling_rate: 100,
            duration: RecordDuration::Unlimited,
            native: false,
            gil_only: false,
            include_idle: false,
            include_thread_ids: false,
            hide_progress: false,
            capture_output: true,
            dump_json: false,
            dump_locals: 0,
            subprocesses: false,
            full_filenames: false,
            lineno: LineNo::LastInstruction,
            refresh_seconds: 1.0,
            core_filename: None,
        }
    }
}
