//! The `py-spy` command line as clap reads it: the commands (here), the option groups several
//! commands share ([`options`]) and each command's own arguments ([`commands`]). What the
//! arguments make the library do is in `main.rs`.

pub mod commands;
pub mod options;

use clap::{Parser, Subcommand};

use commands::*;

#[derive(Parser)]
#[command(
    name = "py-spy",
    version,
    about = "Sampling profiler for Python programs",
    long_about = "Sampling profiler for Python programs.\n\n\
                  Reads a running CPython process's memory from outside, so it profiles \
                  production code without restarting or changing it.\n\n\
                  Record once, look as often as you like: `capture` writes every sample to a \
                  session file and `render` turns it into a flamegraph, speedscope, Chrome \
                  trace or raw file, choosing idle threads, GIL, thread and line options \
                  after the fact. `record` does both in one go, as py-spy 0.4 did.",
    infer_subcommands = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Records stack trace information to a flamegraph, speedscope or raw file
    Record(RecordArgs),
    /// Samples a program into a session file, to render or analyze later
    Capture(CaptureArgs),
    /// Renders a session file as a flamegraph, speedscope, Chrome trace or raw file
    Render(RenderArgs),
    /// Describes a session file: the target, the capture's settings and how it went, the
    /// processes and threads it holds
    Info(InfoArgs),
    /// Runs SQL over a session file: samples, stack_frames, frames, stacks, threads,
    /// processes, meta (read-only)
    Query(QueryArgs),
    /// Shows where a session's time went: own and total time per function, line, file,
    /// module, thread or process
    Analyze(AnalyzeArgs),
    /// Displays a top like view of functions consuming CPU
    Top(TopArgs),
    /// Dumps stack traces for a target program to stdout
    Dump(DumpArgs),
    /// Prints shell completions (bash, zsh, fish, elvish, powershell) to standard output
    Completions {
        /// Shell type
        shell: clap_complete::Shell,
    },
}
