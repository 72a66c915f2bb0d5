//! The `py-spy` command line: parses arguments (`cli`) and calls the library's commands.

mod cli;

use anyhow::{bail, Result};
use clap::{CommandFactory, Parser};
use std::io::Write;

use cli::commands::*;
use cli::options::TargetArgs;
use cli::{Cli, Command};
use py_spy::analyze::View;
use py_spy::commands;
use py_spy::commands::capture::{self as recorder};
use py_spy::render::table::TableFormat;
use py_spy::render::RenderOptions;
use py_spy::{Config, LineNo, LockingStrategy};

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
