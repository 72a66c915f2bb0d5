//! Reading recordings back: [`replay`] streams a session's samples through a [`View`] (the
//! idle, GIL, thread and line choices, and the time, process and thread filters) as stacks
//! of the frames that view shows, for the renderers and for analysis.

pub mod replay;

pub use replay::{Replay, ReplayedSample, View, ViewFrame};
