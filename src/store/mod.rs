//! The session file: one SQLite database holding everything a capture saw, so that rendering,
//! filtering and analysis can happen later, as often as wanted.
//!
//! - [`schema`]: the tables, and the checks that a file is ours and of a version we read
//!   (documented in `docs/session-format.md`).
//! - [`chunk`]: samples are stored in batches, column by column, bincode-encoded and
//!   zstd-compressed: a few bytes per sample in steady state.
//! - [`details`]: what a `dump` snapshot shows beyond its stacks (entry marks, locals).
//! - [`meta`]: the capture's settings and outcome, typed, with one writer and one reader.
//! - [`writer`]: interns frames, stacks and threads on the sampling side and does all
//!   encoding and database work on a thread of its own, committing at least once a second.
//! - [`reader`]: opens a session and streams its samples in time order, with time, process
//!   and thread filters pushed down to the chunks.

pub mod chunk;
pub mod details;
pub mod meta;
pub mod reader;
pub mod schema;
pub mod writer;

pub use chunk::{Sample, FLAG_ACTIVE, FLAG_ERROR, FLAG_GIL, FLAG_PAUSED, FLAG_TRUNCATED};
pub use details::{FrameDetail, SnapshotDetails};
pub use meta::{CaptureEnd, CaptureStart, SamplingOptions, SessionMeta, Started};
pub use reader::{ErrorRow, FrameRow, ProcessRow, SampleFilter, Session, ThreadRow};
pub use writer::{FrameKey, SessionWriter, ThreadKey, WriterStats};
