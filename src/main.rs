//! The `py-spy` command line: parses arguments and calls the library.

use clap::{Parser, Subcommand};
use std::io::Write;

use py_spy::capture::trace::Pid;
use py_spy::{Config, LockingStrategy, PythonSpy};

#[derive(Parser)]
#[command(
    name = "py-spy",
    version,
    about = "Sampling profiler for Python programs",
    long_about = "Sampling profiler for Python programs.\n\n\
                  Reads a running CPython process's memory from outside, so it profiles \
                  production code without restarting or changing it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dumps stack traces for a target program to stdout
    Dump(DumpArgs),
}

#[derive(clap::Args)]
struct DumpArgs {
    /// PID of a running python program to spy on
    #[arg(short, long, value_name = "pid")]
    pid: Pid,
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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dump(args) => dump(args),
    };
    if let Err(e) = result {
        let _ = std::io::stdout().flush();
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn dump(args: DumpArgs) -> anyhow::Result<()> {
    let config = Config {
        command: "dump".into(),
        pid: Some(args.pid),
        dump_json: args.json,
        dump_locals: args.locals as u64,
        full_filenames: args.full_filenames,
        blocking: if args.nonblocking {
            LockingStrategy::NonBlocking
        } else {
            LockingStrategy::Lock
        },
        ..Config::default()
    };
    let mut spy = PythonSpy::new(args.pid, &config)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    py_spy::render::dump::write_dump(&mut out, &mut spy, args.json)
}
