//! What every layer may use: the stack model ([`trace`]: `Pid`, `StackTrace`, `Frame`, …),
//! py-spy 0.4's options ([`config`]: `Config`, `FileFormat`, `LockingStrategy`, …), the fast
//! hash maps the hot paths use ([`fasthash`]), and the [`intern`]er that turns frames, stacks
//! and threads into dense ids (used by the session writer, and by live views that write no
//! file). Nothing here reads a process or a file.

pub mod config;
pub mod fasthash;
pub mod intern;
pub mod trace;
