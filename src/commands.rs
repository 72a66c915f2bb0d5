//! What the `capture`, `render`, `record` and `dump` commands do, apart from parsing
//! arguments: stopping cleanly on Ctrl-C, naming output files, chaining capture and render.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::capture::spy::PythonSpy;
use crate::recording::{self as recorder, format_bytes, CaptureOptions, CaptureSummary, Launch};
use crate::render::dump::DumpHeader;
use crate::render::{self, RenderOptions, RenderSummary};
use crate::settings::{Config, FileFormat};
use crate::store::Session;
use crate::trace::Pid;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Make SIGINT (Ctrl-C) and SIGTERM end a capture cleanly instead of killing the process;
/// returns the flag they set.
pub fn install_stop_handler() -> &'static AtomicBool {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    &STOP
}

/// The usual file extension of a format.
pub fn extension(format: FileFormat) -> &'static str {
    match format {
        FileFormat::flamegraph => "svg",
        FileFormat::speedscope | FileFormat::chrometrace => "json",
        FileFormat::raw => "txt",
    }
}

/// Local time as `YYYY-MM-DDTHH:MM:SS±HH:MM`, for default file names (as py-spy names them).
pub fn local_timestamp() -> String {
    // SAFETY: localtime_r writes only into `tm`.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return now.to_string();
        }
        let off = tm.tm_gmtoff / 60;
        let zone = if off == 0 {
            "Z".to_string()
        } else {
            format!(
                "{}{:02}:{:02}",
                if off < 0 { '-' } else { '+' },
                off.abs() / 60,
                off.abs() % 60
            )
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

/// py-spy's default output name: `PROGRAM-TIME.EXT` or `PID-TIME.EXT`.
pub fn default_output(launch: &Launch, ext: &str) -> PathBuf {
    let name = match launch {
        Launch::Spawn(argv) => argv
            .first()
            .map(|p| {
                Path::new(p)
                    .file_name()
                    .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "unknown".into()),
        Launch::Attach(pid) => pid.to_string(),
    };
    PathBuf::from(format!("{name}-{}.{ext}", local_timestamp()))
}

/// Render `session` into `output` ("-": standard output).
pub fn render_to(session: &Session, opts: &RenderOptions, output: &Path) -> Result<RenderSummary> {
    if output == Path::new("-") {
        let stdout = std::io::stdout();
        let mut out = BufWriter::new(stdout.lock());
        let summary = render::render(session, opts, &mut out)?;
        out.flush()?;
        return Ok(summary);
    }
    let file = File::create(output)
        .with_context(|| format!("could not create output file {}", output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let summary = render::render(session, opts, &mut out)?;
    out.flush()
        .with_context(|| format!("could not write output file {}", output.display()))?;
    Ok(summary)
}

/// One line on how a capture went.
pub fn describe_capture(path: &Path, s: &CaptureSummary) -> String {
    let mut text = format!(
        "Wrote session '{}': {} samples of process {} (Python {}), {} snapshots in {:.1} s, \
         {} errors ({} thread stacks unreadable), {} ({:.1} bytes/sample)",
        path.display(),
        s.samples,
        s.pid,
        s.python,
        s.snapshots,
        s.elapsed.as_secs_f64(),
        s.errors,
        s.error_samples,
        format_bytes(s.file_bytes),
        s.file_bytes as f64 / s.samples.max(1) as f64,
    );
    if s.late > 0 || s.skipped > 0 {
        text.push_str(&format!(
            "; {} snapshots more than a period late (worst {:.1?}), {} ticks skipped: try a lower rate",
            s.late, s.max_late, s.skipped
        ));
    }
    text
}

/// What `record` is asked to do.
pub struct Record {
    pub launch: Launch,
    pub capture: CaptureOptions,
    pub render: RenderOptions,
    pub output: Option<PathBuf>,
    /// Keep the session file here (otherwise a temporary file is used and removed).
    pub session: Option<PathBuf>,
}

/// `py-spy record`: capture into a session file, then render it, printing what py-spy prints.
pub fn record(req: &Record, stop: &AtomicBool) -> Result<()> {
    let output = req
        .output
        .clone()
        .unwrap_or_else(|| default_output(&req.launch, extension(req.render.format)));
    let (session_path, temporary) = match &req.session {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!(
                "py-spy-{}-{}.pyspy",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            )),
            true,
        ),
    };
    let cleanup = |p: &Path| {
        if temporary {
            let _ = std::fs::remove_file(p);
            for side in crate::store::schema::side_files(p) {
                let _ = std::fs::remove_file(side);
            }
        }
    };
    match &req.capture.duration {
        crate::settings::RecordDuration::Unlimited => println!(
            "Sampling process {} times a second. Press Control-C to exit.",
            req.capture.rate
        ),
        crate::settings::RecordDuration::Seconds(s) => println!(
            "Sampling process {} times a second for {s} seconds. Press Control-C to exit.",
            req.capture.rate
        ),
    }
    println!();
    let summary = match recorder::capture(&req.launch, &req.capture, &session_path, stop) {
        Ok(s) => s,
        Err(e) => {
            cleanup(&session_path);
            return Err(e);
        }
    };
    match summary.stop {
        recorder::StopReason::Interrupted => {
            println!("\nStopped sampling because Control-C pressed")
        }
        recorder::StopReason::ProcessExited => {
            println!("\nStopped sampling because process exited")
        }
        recorder::StopReason::Duration => {}
    }
    if summary.late > 0 || summary.skipped > 0 {
        println!(
            "{} of {} sampling ticks were missed because sampling fell behind, and {} snapshots \
             were more than a sampling period late (worst {:.2?}): results may be inaccurate. \
             Try reducing the sampling rate.",
            summary.skipped,
            summary.snapshots + summary.skipped,
            summary.late,
            summary.max_late
        );
    }
    let rendered =
        Session::open(&session_path).and_then(|session| render_to(&session, &req.render, &output));
    cleanup(&session_path);
    let rendered = rendered?;
    // py-spy's "Errors": samples that could not be taken (here: thread stacks that could
    // not be read, failed snapshots included).
    let (samples, errors) = (rendered.samples, summary.error_samples);
    let out = output.display();
    match req.render.format {
        FileFormat::flamegraph => {
            println!("Wrote flamegraph data to '{out}'. Samples: {samples} Errors: {errors}")
        }
        FileFormat::speedscope => {
            println!("Wrote speedscope file to '{out}'. Samples: {samples} Errors: {errors}");
            println!("Visit https://www.speedscope.app/ to view");
        }
        FileFormat::raw => {
            println!("Wrote raw flamegraph data to '{out}'. Samples: {samples} Errors: {errors}");
            println!(
                "You can use the flamegraph.pl script from \
                 https://github.com/brendangregg/flamegraph to generate a SVG"
            );
        }
        FileFormat::chrometrace => {
            println!("Wrote chrome trace to '{out}'. Samples: {samples} Errors: {errors}");
            println!("Visit chrome://tracing or https://ui.perfetto.dev/ to view");
        }
    }
    if let Some(note) = &rendered.errors_note {
        println!("{note}");
    }
    if let Some(p) = &req.session {
        println!(
            "Kept the session in '{}': `py-spy render {}` renders it again",
            p.display(),
            p.display()
        );
    }
    Ok(())
}

/// `py-spy dump`: one snapshot of every thread of `pid` (capture), printed as py-spy 0.4
/// prints it (render).
pub fn dump(pid: Pid, config: &Config, json: bool, out: &mut dyn Write) -> Result<()> {
    let mut spy = PythonSpy::new(pid, config)?;
    let traces = spy
        .get_stack_traces()
        .context("failed to get stack traces")?;
    let header = DumpHeader {
        pid: spy.pid,
        command_line: &spy.command_line(),
        python: &spy.version.to_string(),
        executable: spy.exe(),
    };
    render::dump::write_dump(out, &header, &traces, json)
}
