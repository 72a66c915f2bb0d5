//! Reading recordings back: [`replay`] streams a session's samples through a [`View`] (the
//! idle, GIL, thread and line choices, and the time, process and thread filters) as stacks
//! of the frames that view shows, for the renderers and for analysis; [`top`] aggregates
//! them into the `analyze` table (own and total samples per function, line, file, module,
//! thread or process), [`timeline`] counts
//! each thread's activity per time bucket, [`snapshot`] finds
//! one snapshot's stacks (`analyze --dump`), [`info`] describes a recording for
//! `py-spy info`, and [`sql`] serves `py-spy query` (SQL over the samples). [`live`]
//! aggregates samples as they arrive, with no session behind them, for `top`.

pub mod info;
pub mod live;
pub mod replay;
pub mod snapshot;
pub mod sql;
pub mod timeline;
pub mod top;

pub use replay::{Replay, ReplayedSample, View, ViewFrame};
