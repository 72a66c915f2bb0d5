//! What every layer may use: the stack model ([`trace`]: `Pid`, `StackTrace`, `Frame`, …),
//! py-spy 0.4's options ([`config`]: `Config`, `FileFormat`, `LockingStrategy`, …) and the
//! fast hash maps the hot paths use ([`fasthash`]). Nothing here reads a process or a file.

pub mod config;
pub mod fasthash;
pub mod trace;
