//! `py-spy record`: capture into a session file (temporary unless `--session` keeps it),
//! then render it, printing what py-spy 0.4 prints.

use anyhow::Result;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::capture::{self as recorder, CaptureOptions, Launch};
use super::default_output;
use super::render::render_to;
use crate::model::config::RecordDuration;
use crate::render::{formats, RenderOptions};
use crate::store::Session;

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
/// Returns the exit status to end with: the spawned program's when it failed (see
/// `CaptureSummary::exit_code`).
pub fn record(req: &Record, stop: &AtomicBool) -> Result<i32> {
    let session = super::SessionPath::new(req.session.as_deref())?;
    let session_path = session.path.clone();
    let output = req
        .output
        .clone()
        .unwrap_or_else(|| default_output(&req.launch, formats::spec(req.render.format).extension));
    match &req.capture.sampling.duration {
        RecordDuration::Unlimited => println!(
            "Sampling process {} times a second. Press Control-C to exit.",
            req.capture.sampling.rate
        ),
        RecordDuration::Seconds(s) => println!(
            "Sampling process {} times a second for {s} seconds. Press Control-C to exit.",
            req.capture.sampling.rate
        ),
    }
    println!();
    let summary = recorder::capture(&req.launch, &req.capture, &session_path, stop)?;
    match summary.stop {
        recorder::StopReason::Interrupted => {
            println!("\nStopped sampling because Control-C pressed")
        }
        recorder::StopReason::ProcessExited => {
            println!("\nStopped sampling because process exited")
        }
        recorder::StopReason::Duration | recorder::StopReason::Snapshot => {}
    }
    if let Some(note) = recorder::unpaused_note(&summary) {
        println!("{note}.");
    }
    if let Some(note) = recorder::lateness_note(&summary) {
        println!("Warning: {note}.");
    }
    let rendered =
        Session::open(&session_path).and_then(|session| render_to(&session, &req.render, &output));
    drop(session);
    let rendered = rendered?;
    // py-spy's "Errors": samples that could not be taken (here: thread stacks that could
    // not be read, failed snapshots included).
    let (samples, errors) = (rendered.samples, summary.error_samples);
    println!(
        "{}",
        formats::spec(req.render.format).wrote(&output, samples, errors)
    );
    if let Some(why) = &rendered.nothing_kept {
        println!("Warning: {why}");
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
    Ok(summary.exit_code())
}
