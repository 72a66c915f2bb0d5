//! The `py-spy` command line: parses arguments and calls the library.

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

use py_spy::analyze::top::{GroupBy, SortBy};
use py_spy::analyze::View;
use py_spy::commands;
use py_spy::commands::capture::{self as recorder, CaptureOptions, Launch};
use py_spy::render::table::TableFormat;
use py_spy::render::RenderOptions;
use py_spy::store::SamplingOptions;
use py_spy::Pid;
use py_spy::{Config, FileFormat, LineNo, LockingStrategy, RecordDuration};

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
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

/// What to profile: `--pid` or a program after `--`.
#[derive(clap::Args)]
struct TargetArgs {
    /// PID of a running python program to spy on
    #[arg(
        short,
        long,
        value_name = "pid",
        value_parser = parse_pid,
        required_unless_present = "python_program"
    )]
    pid: Option<Pid>,
    /// commandline of a python program to run
    #[arg(
        value_name = "python_program",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    python_program: Vec<String>,
}

/// A process id, decimal or hexadecimal with `0x` (as py-spy takes it).
fn parse_pid(text: &str) -> std::result::Result<Pid, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => Pid::from_str_radix(hex, 16),
        None => text.parse::<Pid>(),
    };
    match parsed {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!(
            "'{text}' is not a process id (a positive number, decimal or hexadecimal with 0x)"
        )),
    }
}

impl TargetArgs {
    fn launch(&self) -> Result<Launch> {
        match (self.pid, self.python_program.is_empty()) {
            (Some(_), false) => bail!("give either --pid or a program to run, not both"),
            (Some(pid), true) => Ok(Launch::Attach(pid)),
            (None, false) => Ok(Launch::Spawn(self.python_program.clone())),
            (None, true) => bail!("give --pid PID or a program to run after `--`"),
        }
    }
}

/// How to read the process, for every command that samples over time.
#[derive(clap::Args)]
struct SpyArgs {
    /// The number of samples to collect per second
    #[arg(short, long, value_name = "rate", default_value_t = 100)]
    rate: u64,
    /// Profile subprocesses of the original process
    #[arg(short, long)]
    subprocesses: bool,
    /// Collect stack traces from native extensions written in Cython, C or C++ (the program is
    /// paused for each snapshot: not with --nonblocking)
    #[arg(short, long)]
    native: bool,
    /// Don't pause the python process when collecting samples. Setting this option will reduce
    /// the performance impact of sampling, but may lead to inaccurate results
    #[arg(long)]
    nonblocking: bool,
}

impl SpyArgs {
    /// The rate, once what cannot be done (`--native` without pausing, a zero rate) is
    /// refused.
    fn checked_rate(&self) -> Result<u64> {
        if self.native && self.nonblocking {
            bail!("Can't get native stack traces with the --nonblocking option.");
        }
        if self.rate == 0 {
            bail!("--rate must be at least 1 sample per second");
        }
        Ok(self.rate)
    }

    fn blocking(&self) -> LockingStrategy {
        if self.nonblocking {
            LockingStrategy::NonBlocking
        } else {
            LockingStrategy::Lock
        }
    }
}

/// Where a core file's binaries are.
#[derive(clap::Args)]
struct BinariesArg {
    /// With --core: where to look for the program's executable and libraries before the
    /// paths the core records (a container's or chroot's root, or a folder holding them by
    /// name); may be given more than once
    #[arg(long, value_name = "DIR", requires = "core")]
    binaries: Vec<PathBuf>,
}

/// How to sample.
#[derive(clap::Args)]
struct SamplingArgs {
    #[command(flatten)]
    spy: SpyArgs,
    /// The number of seconds to sample for
    #[arg(short, long, value_name = "duration", default_value = "unlimited")]
    duration: String,
    /// Hides progress bar (useful for showing error output on record)
    #[arg(long)]
    hideprogress: bool,
}

impl SamplingArgs {
    fn options(&self) -> Result<CaptureOptions> {
        let rate = self.spy.checked_rate()?;
        let duration = match self.duration.as_str() {
            "unlimited" => RecordDuration::Unlimited,
            s => match s.parse::<u64>() {
                Ok(n) if n > 0 => RecordDuration::Seconds(n),
                _ => {
                    bail!("--duration must be a whole number of seconds or 'unlimited' (got '{s}')")
                }
            },
        };
        Ok(CaptureOptions {
            sampling: SamplingOptions {
                rate,
                duration,
                blocking: self.spy.blocking(),
                native: self.spy.native,
                subprocesses: self.spy.subprocesses,
            },
            progress: !self.hideprogress,
        })
    }
}

/// What a rendering shows: py-spy's record-time choices, here made at render time.
#[derive(clap::Args)]
struct ViewArgs {
    /// Aggregate samples by function's first line number, instead of current line number
    #[arg(short = 'F', long, conflicts_with = "nolineno")]
    function: bool,
    /// Do not show line numbers
    #[arg(long)]
    nolineno: bool,
    /// Show thread ids in the output
    #[arg(short, long)]
    threads: bool,
    /// Only include traces that are holding on to the GIL
    #[arg(short, long)]
    gil: bool,
    /// Include stack traces for idle threads
    #[arg(short, long)]
    idle: bool,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    full_filenames: bool,
    /// Show samples whose stack could not be read, as a frame naming the reason (they are
    /// left out otherwise, and counted)
    #[arg(long)]
    errors: bool,
    /// Leave native frames out: a capture taken with --native, seen with its Python frames only
    #[arg(long)]
    no_native: bool,
}

impl ViewArgs {
    fn view(&self) -> View {
        View {
            idle: self.idle,
            gil_only: self.gil,
            thread_frames: self.threads,
            lineno: if self.nolineno {
                LineNo::NoLine
            } else if self.function {
                LineNo::First
            } else {
                LineNo::LastInstruction
            },
            full_filenames: self.full_filenames,
            errors: self.errors,
            python_only: self.no_native,
            ..View::default()
        }
    }
}

/// `-f/--format`, shared by `record` and `render`.
#[derive(clap::Args)]
struct FormatArg {
    /// Output file format
    #[arg(
        short,
        long,
        value_name = "format",
        value_parser = format_parser(),
        ignore_case = true,
        default_value = "flamegraph"
    )]
    format: FileFormat,
}

/// `--format`'s values: the names of `FileFormat::ALL`.
fn format_parser() -> impl clap::builder::TypedValueParser<Value = FileFormat> {
    named(FileFormat::ALL, FileFormat::name)
}

#[derive(clap::Args)]
struct RecordArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Output filename
    #[arg(short, long, value_name = "filename")]
    output: Option<PathBuf>,
    #[command(flatten)]
    format: FormatArg,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    view: ViewArgs,
    /// Also keep the session file at PATH, to render it again later (`py-spy render PATH`)
    #[arg(long, value_name = "PATH")]
    session: Option<PathBuf>,
    /// Captures output from child process
    #[arg(long, hide = true)]
    capture: bool,
}

#[derive(clap::Args)]
struct CaptureArgs {
    /// PID of a running python program to spy on
    #[arg(
        short,
        long,
        value_name = "pid",
        value_parser = parse_pid,
        required_unless_present_any = ["python_program", "core"]
    )]
    pid: Option<Pid>,
    /// Read one snapshot from this core file (of a crashed or `gcore`d Python process)
    /// instead of sampling a live one
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pid", "python_program"])]
    core: Option<PathBuf>,
    #[command(flatten)]
    binaries: BinariesArg,
    /// commandline of a python program to run
    #[arg(
        value_name = "python_program",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    python_program: Vec<String>,
    /// Session file to write (replaced if it exists)
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    sampling: SamplingArgs,
}

#[derive(clap::Args)]
struct RenderArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    session: PathBuf,
    #[command(flatten)]
    format: FormatArg,
    /// Output filename ("-" for standard output) [default: the session's name, with the
    /// format's extension]
    #[arg(short, long, value_name = "filename")]
    output: Option<PathBuf>,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Show how this session differs from BASE: a differential flamegraph (red: more time
    /// than in BASE, blue: less; BASE scaled to this session's sample count), or with -f raw
    /// its `stack base_count count` lines
    #[arg(long, value_name = "BASE")]
    diff: Option<PathBuf>,
}

/// Which samples to look at: processes, threads and a time window.
#[derive(clap::Args)]
struct SelectionArgs {
    /// Only samples of this process (repeat for more)
    #[arg(long = "pid", value_name = "PID")]
    only_pids: Vec<i32>,
    /// Only samples of this thread: a name, a Python thread id or an OS thread id (repeat
    /// for more)
    #[arg(long = "thread", value_name = "NAME|ID")]
    only_threads: Vec<String>,
    /// Only samples taken at least this many seconds after the capture started
    #[arg(long, value_name = "SECONDS")]
    from: Option<f64>,
    /// Only samples taken at most this many seconds after the capture started
    #[arg(long, value_name = "SECONDS")]
    to: Option<f64>,
}

impl SelectionArgs {
    /// `view` narrowed to these samples.
    fn narrow(self, view: View) -> View {
        View {
            pids: (!self.only_pids.is_empty()).then_some(self.only_pids),
            threads: self.only_threads,
            from_s: self.from,
            to_s: self.to,
            ..view
        }
    }
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
struct QueryArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    session: PathBuf,
    /// One SQL statement that reads (a SELECT, or a reading pragma)
    sql: String,
    /// Output format (written to standard output)
    #[arg(long, value_name = "FORMAT", default_value = "table", ignore_case = true, value_parser = named(TableFormat::ALL, TableFormat::name))]
    format: TableFormat,
}

#[derive(clap::Args)]
struct InfoArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    session: PathBuf,
    /// Write JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct AnalyzeArgs {
    /// Session file written by `py-spy capture` (or `record --session`)
    session: PathBuf,
    /// What a row stands for
    #[arg(long, value_name = "WHAT", default_value = "function", ignore_case = true, value_parser = named(GroupBy::ALL, GroupBy::name))]
    by: GroupBy,
    /// How rows are ordered: own time, total time (most first) or name
    #[arg(long, value_name = "KEY", default_value = "own", ignore_case = true, value_parser = named(SortBy::ALL, SortBy::name))]
    sort: SortBy,
    /// Show at most N rows [default: 30 in a table, all in CSV and JSON]
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Output format (written to standard output)
    #[arg(long, value_name = "FORMAT", default_value = "table", ignore_case = true, value_parser = named(TableFormat::ALL, TableFormat::name))]
    format: TableFormat,
    /// Include samples of idle threads
    #[arg(short, long)]
    idle: bool,
    /// Only samples of the thread holding the GIL
    #[arg(short, long)]
    gil: bool,
    /// Group lines of a function together (with --by line); leave lines out
    #[arg(long)]
    nolineno: bool,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    full_filenames: bool,
    /// Count samples whose stack could not be read, under a row naming the reason
    #[arg(long)]
    errors: bool,
    #[command(flatten)]
    selection: SelectionArgs,
    /// Instead of the table: every thread's stack at one snapshot, as `py-spy dump` prints it
    #[arg(long)]
    dump: bool,
    /// With --dump: the snapshot nearest this many seconds after the start [default: the last]
    #[arg(long, value_name = "SECONDS", requires = "dump")]
    at: Option<f64>,
    /// With --dump: JSON, as `py-spy dump --json` writes it
    #[arg(long, requires = "dump")]
    json: bool,
    /// Instead of the table: each thread's activity over time (running, waiting, holding the
    /// GIL), as a chart, CSV or JSON (--format)
    #[arg(long, conflicts_with = "dump")]
    timeline: bool,
    /// With --timeline: the width of a column in seconds [default: the capture in 60]
    #[arg(long, value_name = "SECONDS", requires = "timeline")]
    bucket: Option<f64>,
    /// Compare with BASE, another recording: each row's share in both and the change,
    /// largest change of own share first
    #[arg(long, value_name = "BASE", conflicts_with_all = ["dump", "timeline"])]
    diff: Option<PathBuf>,
}

/// A value parser for one of `all`, each known by its `name`.
fn named<T: Copy + Send + Sync + 'static, const N: usize>(
    all: [T; N],
    name: fn(T) -> &'static str,
) -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(all.map(name)).map(move |s| {
        *all.iter()
            .find(|v| name(**v).eq_ignore_ascii_case(&s))
            .expect("one of the listed names")
    })
}

#[derive(clap::Args)]
#[command(
    after_help = "Keys: 1-4 sort by a column, L lines or functions, T one thread at a \
time, / filter rows, P pause the display, R reset, ? help, Q or Control-C quit. A program \
started by top has its output discarded, as it would overwrite the screen."
)]
struct TopArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    spy: SpyArgs,
    /// Only include traces that are holding on to the GIL
    #[arg(short, long)]
    gil: bool,
    /// Include stack traces for idle threads
    #[arg(short, long)]
    idle: bool,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    full_filenames: bool,
    /// Also keep everything sampled in this session file, for `render` and `analyze`
    #[arg(long, value_name = "FILE")]
    session: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DumpArgs {
    /// PID of a running python program to spy on
    #[arg(
        short,
        long,
        value_name = "pid",
        value_parser = parse_pid,
        required_unless_present = "core"
    )]
    pid: Option<Pid>,
    /// Dump the Python process a core file was taken of (a crash, or `gcore PID`) instead of
    /// a running one
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        conflicts_with_all = ["pid", "subprocesses", "nonblocking"]
    )]
    core: Option<PathBuf>,
    #[command(flatten)]
    binaries: BinariesArg,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    full_filenames: bool,
    /// Show local variables for each frame. Passing multiple times (-ll) increases verbosity
    #[arg(short = 'l', long = "locals", action = clap::ArgAction::Count)]
    locals: u8,
    /// Format output as JSON
    #[arg(short = 'j', long)]
    json: bool,
    /// Don't pause the python process when collecting samples. Setting this option will reduce
    /// the performance impact of sampling, but may lead to inaccurate results
    #[arg(long)]
    nonblocking: bool,
    /// Dump each Python subprocess of the process too, each under its own header
    #[arg(short = 's', long)]
    subprocesses: bool,
    /// Show the native (C, C++, Cython, Rust) frames among the Python ones
    #[arg(short = 'n', long)]
    native: bool,
    /// Keep the snapshot (with its locals) in this session file: `py-spy analyze FILE --dump`
    /// prints it again
    #[arg(long, value_name = "FILE")]
    session: Option<PathBuf>,
}

fn main() {
    let cli = Cli::parse();
    // A command's exit status: 0, or a spawned program's own when it failed.
    let result = match cli.command {
        Command::Record(args) => record(args),
        Command::Capture(args) => capture(args),
        Command::Render(args) => render(args).map(|()| 0),
        Command::Analyze(args) => analyze(args).map(|()| 0),
        Command::Query(args) => {
            let stdout = std::io::stdout();
            commands::query::run(&args.session, &args.sql, args.format, &mut stdout.lock())
                .map(|_| 0)
        }
        Command::Info(args) => {
            let stdout = std::io::stdout();
            commands::info::run(&args.session, args.json, &mut stdout.lock()).map(|()| 0)
        }
        Command::Top(args) => top(args),
        Command::Dump(args) => dump(args).map(|()| 0),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "py-spy", &mut std::io::stdout());
            Ok(0)
        }
    };
    match result {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        // A reader that went away (`| head`): end quietly, as other Unix tools do when a
        // pipe closes (status 141, as if SIGPIPE had ended the process).
        Err(e) if broken_pipe(&e) => std::process::exit(141),
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("Error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn broken_pipe(e: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|io| io.kind()) == pipe
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                == pipe
    })
}

fn title() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn record(args: RecordArgs) -> Result<i32> {
    let stop = commands::install_stop_handler();
    let req = commands::record::Record {
        launch: args.target.launch()?,
        capture: args.sampling.options()?,
        render: RenderOptions {
            format: args.format.format,
            view: View {
                full_filenames: args.view.full_filenames,
                ..args.view.view()
            },
            title: Some(title()),
        },
        output: args.output,
        session: args.session,
    };
    let _ = args.capture; // the program's output is left alone, as py-spy record leaves it
    commands::record::record(&req, stop)
}

fn capture(args: CaptureArgs) -> Result<i32> {
    if let Some(core) = args.core {
        let req = commands::capture::CoreRequest {
            core,
            binaries: args.binaries.binaries,
            locals: 2,
            native: args.sampling.spy.native,
        };
        let snap = commands::capture::core_session(&req, &args.output)?;
        eprintln!(
            "Wrote a snapshot of process {} ({}, Python {}: {}) to '{}'",
            snap.pid,
            snap.command_line,
            snap.version,
            commands::capture::plural(snap.threads.len() as u64, "thread", "threads"),
            args.output.display()
        );
        return Ok(0);
    }
    let stop = commands::install_stop_handler();
    let target = TargetArgs {
        pid: args.pid,
        python_program: args.python_program,
    };
    let launch = target.launch()?;
    let opts = args.sampling.options()?;
    let summary = recorder::capture(&launch, &opts, &args.output, stop)?;
    eprintln!(
        "{}",
        commands::capture::describe_capture(&args.output, &summary)
    );
    Ok(summary.exit_code())
}

fn render(args: RenderArgs) -> Result<()> {
    commands::render::run(&commands::render::Render {
        session: args.session,
        output: args.output,
        options: RenderOptions {
            format: args.format.format,
            view: args.selection.narrow(args.view.view()),
            title: Some(title()),
        },
        diff_base: args.diff,
    })
}

fn analyze(args: AnalyzeArgs) -> Result<()> {
    if args.dump {
        let stdout = std::io::stdout();
        return commands::analyze::dump(
            &args.session,
            args.at,
            args.full_filenames,
            args.json,
            &mut stdout.lock(),
        );
    }
    let (by, sort, format) = (args.by, args.sort, args.format);
    if args.timeline {
        let stdout = std::io::stdout();
        return commands::analyze::timeline(
            &args.session,
            args.bucket,
            &args.selection.only_threads,
            format,
            &mut stdout.lock(),
        );
    }
    let view = View {
        idle: args.idle,
        gil_only: args.gil,
        lineno: if args.nolineno {
            LineNo::NoLine
        } else {
            LineNo::LastInstruction
        },
        full_filenames: args.full_filenames,
        errors: args.errors,
        ..View::default()
    };
    let limit = args.limit.or((format == TableFormat::Table).then_some(30));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    commands::analyze::run(
        &commands::analyze::Analyze {
            session: args.session,
            view: args.selection.narrow(view),
            by,
            sort,
            limit,
            format,
            diff_base: args.diff,
        },
        &mut out,
    )
}

fn top(args: TopArgs) -> Result<i32> {
    let signal = commands::install_stop_handler();
    let req = commands::top::Top {
        launch: args.target.launch()?,
        config: Config {
            command: "top".into(),
            sampling_rate: args.spy.checked_rate()?,
            subprocesses: args.spy.subprocesses,
            native: args.spy.native,
            include_idle: args.idle,
            gil_only: args.gil,
            full_filenames: args.full_filenames,
            blocking: args.spy.blocking(),
            ..Config::default()
        },
        session: args.session,
    };
    commands::top::top(&req, signal)
}

fn dump(args: DumpArgs) -> Result<()> {
    if args.native && args.nonblocking {
        bail!("Can't get native stack traces with the --nonblocking option.");
    }
    let config = Config {
        command: "dump".into(),
        pid: args.pid,
        dump_json: args.json,
        dump_locals: args.locals as u64,
        full_filenames: args.full_filenames,
        subprocesses: args.subprocesses,
        native: args.native,
        blocking: if args.nonblocking {
            LockingStrategy::NonBlocking
        } else {
            LockingStrategy::Lock
        },
        ..Config::default()
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let req = commands::dump::Dump {
        pid: args.pid.unwrap_or(0),
        config,
        session: args.session,
        rule_width: commands::rule_width(),
        parent: None,
        core: args.core.map(|core| commands::capture::CoreRequest {
            core,
            binaries: args.binaries.binaries,
            locals: args.locals as u64,
            native: args.native,
        }),
    };
    commands::dump::dump(&req, &mut out)
}
