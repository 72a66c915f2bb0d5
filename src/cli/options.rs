//! Option groups several commands share: what to profile, how to read and sample it, what a
//! rendering shows and which samples it looks at, and the value parsers behind them.

use anyhow::{bail, Result};
use std::path::PathBuf;

use py_spy::analyze::View;
use py_spy::commands::capture::{CaptureOptions, Launch};
use py_spy::store::SamplingOptions;
use py_spy::Pid;
use py_spy::{FileFormat, LineNo, LockingStrategy, RecordDuration};

/// What to profile: `--pid` or a program after `--`.
#[derive(clap::Args)]
pub struct TargetArgs {
    /// PID of a running python program to spy on
    #[arg(
        short,
        long,
        value_name = "pid",
        value_parser = parse_pid,
        required_unless_present = "python_program"
    )]
    pub pid: Option<Pid>,
    /// commandline of a python program to run
    #[arg(
        value_name = "python_program",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub python_program: Vec<String>,
}

/// A process id, decimal or hexadecimal with `0x` (as py-spy takes it).
pub fn parse_pid(text: &str) -> std::result::Result<Pid, String> {
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
    pub fn launch(&self) -> Result<Launch> {
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
pub struct SpyArgs {
    /// The number of samples to collect per second
    #[arg(short, long, value_name = "rate", default_value_t = 100)]
    pub rate: u64,
    /// Profile subprocesses of the original process
    #[arg(short, long)]
    pub subprocesses: bool,
    /// Collect stack traces from native extensions written in Cython, C or C++ (the program is
    /// paused for each snapshot: not with --nonblocking)
    #[arg(short, long)]
    pub native: bool,
    /// Don't pause the python process when collecting samples. Setting this option will reduce
    /// the performance impact of sampling, but may lead to inaccurate results
    #[arg(long)]
    pub nonblocking: bool,
}

impl SpyArgs {
    /// The rate, once what cannot be done (`--native` without pausing, a zero rate) is
    /// refused.
    pub fn checked_rate(&self) -> Result<u64> {
        if self.native && self.nonblocking {
            bail!("Can't get native stack traces with the --nonblocking option.");
        }
        if self.rate == 0 {
            bail!("--rate must be at least 1 sample per second");
        }
        Ok(self.rate)
    }

    pub fn blocking(&self) -> LockingStrategy {
        if self.nonblocking {
            LockingStrategy::NonBlocking
        } else {
            LockingStrategy::Lock
        }
    }
}

/// Where a core file's binaries are.
#[derive(clap::Args)]
pub struct BinariesArg {
    /// With --core: where to look for the program's executable and libraries before the
    /// paths the core records (a container's or chroot's root, or a folder holding them by
    /// name); may be given more than once
    #[arg(long, value_name = "DIR", requires = "core")]
    pub binaries: Vec<PathBuf>,
}

/// How to sample.
#[derive(clap::Args)]
pub struct SamplingArgs {
    #[command(flatten)]
    pub spy: SpyArgs,
    /// The number of seconds to sample for
    #[arg(short, long, value_name = "duration", default_value = "unlimited")]
    pub duration: String,
    /// Hides progress bar (useful for showing error output on record)
    #[arg(long)]
    pub hideprogress: bool,
}

impl SamplingArgs {
    pub fn options(&self) -> Result<CaptureOptions> {
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
pub struct ViewArgs {
    /// Aggregate samples by function's first line number, instead of current line number
    #[arg(short = 'F', long, conflicts_with = "nolineno")]
    pub function: bool,
    /// Do not show line numbers
    #[arg(long)]
    pub nolineno: bool,
    /// Show thread ids in the output
    #[arg(short, long)]
    pub threads: bool,
    /// Only include traces that are holding on to the GIL
    #[arg(short, long)]
    pub gil: bool,
    /// Include stack traces for idle threads
    #[arg(short, long)]
    pub idle: bool,
    /// Show full Python filenames, instead of shortening to show only the package part
    #[arg(long)]
    pub full_filenames: bool,
    /// Show every sample whose stack could not be read, under a frame naming the reason. By
    /// default those whose innermost frames were read show them under <unreadable caller>
    /// (so what ran keeps its share), and the others are left out and counted
    #[arg(long, conflicts_with = "no_errors")]
    pub errors: bool,
    /// Leave out every sample whose stack could not be read (counted), <unreadable caller>
    /// ones included
    #[arg(long)]
    pub no_errors: bool,
    /// Leave native frames out: a capture taken with --native, seen with its Python frames only
    #[arg(long)]
    pub no_native: bool,
}

impl ViewArgs {
    pub fn view(&self) -> View {
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
            partial_errors: !self.no_errors,
            python_only: self.no_native,
            ..View::default()
        }
    }
}

/// `-f/--format`, shared by `record` and `render`.
#[derive(clap::Args)]
pub struct FormatArg {
    /// Output file format
    #[arg(
        short,
        long,
        value_name = "format",
        value_parser = format_parser(),
        ignore_case = true,
        default_value = "flamegraph"
    )]
    pub format: FileFormat,
}

/// `--format`'s values: the names of `FileFormat::ALL`.
pub fn format_parser() -> impl clap::builder::TypedValueParser<Value = FileFormat> {
    named(FileFormat::ALL, FileFormat::name)
}

/// Which samples to look at: processes, threads and a time window.
#[derive(clap::Args)]
pub struct SelectionArgs {
    /// Only samples of this process (repeat for more)
    #[arg(long = "pid", value_name = "PID")]
    pub only_pids: Vec<i32>,
    /// Only samples of this thread: a name, a Python thread id or an OS thread id (repeat
    /// for more)
    #[arg(long = "thread", value_name = "NAME|ID")]
    pub only_threads: Vec<String>,
    /// Only samples taken at least this many seconds after the capture started
    #[arg(long, value_name = "SECONDS")]
    pub from: Option<f64>,
    /// Only samples taken at most this many seconds after the capture started
    #[arg(long, value_name = "SECONDS")]
    pub to: Option<f64>,
}

impl SelectionArgs {
    /// `view` narrowed to these samples.
    pub fn narrow(self, view: View) -> View {
        View {
            pids: (!self.only_pids.is_empty()).then_some(self.only_pids),
            threads: self.only_threads,
            from_s: self.from,
            to_s: self.to,
            ..view
        }
    }
}

/// A value parser for one of `all`, each known by its `name`.
pub fn named<T: Copy + Send + Sync + 'static, const N: usize>(
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
