//! Each command's own arguments (the shared groups are in `options`).

use std::path::PathBuf;

use super::options::*;
use py_spy::analyze::top::{GroupBy, SortBy};
use py_spy::render::table::TableFormat;
use py_spy::Pid;

#[derive(clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Output filename
    #[arg(short, long, value_name = "filename")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArg,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub view: ViewArgs,
    /// Also keep the session file at PATH, to render it again later (`py-spy render PATH`)
    #[arg(long, value_name = "PATH")]
    pub session: Option<PathBuf>,
    /// Captures output from child process
    #[arg(long, hide = true)]
    pub capture: bool,
}

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// PID of a running python program to spy on
    #[arg(
        short,
        long,
        value_name = "pid",
        value_parser = parse_pid,
        required_unless_present_any = ["python_program", "core"]
    )]
    pub pid: Option<Pid>,
    /// Read one snapshot from this core file (of a crashed or `gcore`d Python process)
    /// instead of sampling a live one
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pid", "python_program"])]
    pub core: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: BinariesArg,
    /// commandline of a python program to run
    #[arg(
        value_name = "python_program",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub python_program: Vec<String>,
    /// Session file to write (replaced if it exists)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(clap::Args)]
pub struct RenderArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    pub session: PathBuf,
    #[command(flatten)]
    pub format: FormatArg,
    /// Output filename ("-" for standard output) [default: the session's name, with the
    /// format's extension]
    #[arg(short, long, value_name = "filename")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub view: ViewArgs,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Show how this session differs from BASE: a differential flamegraph (red: more time
    /// than in BASE, blue: less; BASE scaled to this session's sample count), or with -f raw
    /// its `stack base_count count` lines
    #[arg(long, value_name = "BASE")]
    pub diff: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(
    after_help = "Tables: samples(time_us, pid, thread, thread_name, os_thread_id, stack, \
error, active, gil, truncated, paused, late_us, process, leaf_frame): one row per sample, stack \
NULL and error set for a sample whose stack could not be read, leaf_frame its innermost frame; stack_frames(stack, depth, frame): depth 0 \
is the innermost frame; frames(id, function, qualname, filename, short_filename, line, \
first_line, module); threads(id, process, thread_id, os_thread_id); thread_names(thread, \
since_us, name); processes(id, pid, parent, command_line, python); errors(id, kind, message, \
stack); meta(key, value). Times are microseconds since the capture started.\n\n\
Example: the 10 functions most often running, as the innermost frame:\n  py-spy query run.pyspy \
\"select f.qualname, f.short_filename, count(*) n from samples s join frames f on f.id = \
s.leaf_frame where s.active group by f.qualname, f.short_filename order by n desc limit 10\""
)]
pub struct QueryArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    pub session: PathBuf,
    /// One SQL statement that reads (a SELECT, or a reading pragma)
    pub sql: String,
    /// Output format (written to standard output)
    #[arg(long, value_name = "FORMAT", default_value = "table", ignore_case = true, value_parser = named(TableFormat::ALL, TableFormat::name))]
    pub format: TableFormat,
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    pub session: PathBuf,
    /// Write JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    pub session: PathBuf,
    /// What a row stands for
    #[arg(long, value_name = "WHAT", default_value = "function", ignore_case = true, value_parser = named(GroupBy::ALL, GroupBy::name))]
    pub by: GroupBy,
    /// How rows are ordered: own time, total time (most first) or name
    #[arg(long, value_name = "KEY", default_value = "own", ignore_case = true, value_parser = named(SortBy::ALL, SortBy::name))]
    pub sort: SortBy,
    /// Show at most N rows [default: 30 in a table, all in CSV and JSON]
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Output format (written to standard output)
    #[arg(long, value_name = "FORMAT", default_value = "table", ignore_case = true, value_parser = named(TableFormat::ALL, TableFormat::name))]
    pub format: TableFormat,
    /// Include samples of idle threads
    #[arg(short, long)]
    pub idle: bool,
    /// Only samples of the thread holding the GIL
    #[arg(short, long)]
    pub gil: bool,
    /// Group lines of a function together (with --by line); leave lines out
    #[arg(long)]
    pub nolineno: bool,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    pub full_filenames: bool,
    /// Count samples whose stack could not be read, under a row naming the reason
    #[arg(long)]
    pub errors: bool,
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Instead of the table: every thread's stack at one snapshot, as `py-spy dump` prints it
    #[arg(long)]
    pub dump: bool,
    /// With --dump: the snapshot nearest this many seconds after the start [default: the last]
    #[arg(long, value_name = "SECONDS", requires = "dump")]
    pub at: Option<f64>,
    /// With --dump: JSON, as `py-spy dump --json` writes it
    #[arg(long, requires = "dump")]
    pub json: bool,
    /// Instead of the table: each thread's activity over time (running, waiting, holding the
    /// GIL), as a chart, CSV or JSON (--format)
    #[arg(long, conflicts_with = "dump")]
    pub timeline: bool,
    /// With --timeline: the width of a column in seconds [default: the capture in 60]
    #[arg(long, value_name = "SECONDS", requires = "timeline")]
    pub bucket: Option<f64>,
    /// Compare with BASE, another recording: each row's share in both and the change,
    /// largest change of own share first
    #[arg(long, value_name = "BASE", conflicts_with_all = ["dump", "timeline"])]
    pub diff: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(
    after_help = "Keys: 1-4 sort by a column, L lines or functions, T one thread at a \
time, / filter rows, P pause the display, R reset, ? help, Q or Control-C quit. A program \
started by top has its output discarded, as it would overwrite the screen."
)]
pub struct TopArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub spy: SpyArgs,
    /// Only include traces that are holding on to the GIL
    #[arg(short, long)]
    pub gil: bool,
    /// Include stack traces for idle threads
    #[arg(short, long)]
    pub idle: bool,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    pub full_filenames: bool,
    /// Also keep everything sampled in this session file, for `render` and `analyze`
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DumpArgs {
    /// PID of a running python program to spy on
    #[arg(
        short,
        long,
        value_name = "pid",
        value_parser = parse_pid,
        required_unless_present = "core"
    )]
    pub pid: Option<Pid>,
    /// Dump the Python process a core file was taken of (a crash, or `gcore PID`) instead of
    /// a running one
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        conflicts_with_all = ["pid", "subprocesses", "nonblocking"]
    )]
    pub core: Option<PathBuf>,
    #[command(flatten)]
    pub binaries: BinariesArg,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    pub full_filenames: bool,
    /// Show local variables for each frame. Passing multiple times (-ll) increases verbosity
    #[arg(short = 'l', long = "locals", action = clap::ArgAction::Count)]
    pub locals: u8,
    /// Format output as JSON
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Don't pause the python process when collecting samples. Setting this option will reduce
    /// the performance impact of sampling, but may lead to inaccurate results
    #[arg(long)]
    pub nonblocking: bool,
    /// Dump each Python subprocess of the process too, each under its own header
    #[arg(short = 's', long)]
    pub subprocesses: bool,
    /// Show the native (C, C++, Cython, Rust) frames among the Python ones
    #[arg(short = 'n', long)]
    pub native: bool,
    /// Keep the snapshot (with its locals) in this session file: `py-spy analyze FILE --dump`
    /// prints it again
    #[arg(long, value_name = "FILE")]
    pub session: Option<PathBuf>,
}
