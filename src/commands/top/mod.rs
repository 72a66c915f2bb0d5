//! `py-spy top`: a live view of where a running program spends its time, refreshed once a
//! second, as py-spy 0.4's console view shows it; fed by the capture loop on a thread of its
//! own (`sampler`, `sink`), aggregated live (`analyze::live`), laid out by
//! `render::live`, drawn on the terminal (`terminal`), steered by keys (`keys`). With
//! `--session` everything sampled is also kept as a session file.

mod keys;
mod sampler;
mod sink;
mod terminal;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::analyze::live::{LiveOptions, LiveTop};
use crate::capture::os::proc;
use crate::capture::timer::StopReason;
use crate::commands::capture::launch::{attach, attach_spawned, end_child, spawn_quiet};
use crate::commands::capture::Launch;
use crate::model::config::{Config, RecordDuration};
use crate::render::live::{top_screen, TopScreen};
use crate::store::{CaptureStart, SamplingOptions, SessionWriter, Started};
use keys::{Action, ViewState};
use sink::TopSink;
use terminal::{Input, Terminal};

/// How often the view refreshes.
const REFRESH: Duration = Duration::from_secs(1);

/// What `top` is asked to do.
pub struct Top {
    pub launch: Launch,
    /// `sampling_rate`, `blocking`, `subprocesses`, `include_idle`, `gil_only`,
    /// `full_filenames`, `native` as py-spy 0.4 takes them.
    pub config: Config,
    /// Keep everything sampled in this session file.
    pub session: Option<PathBuf>,
}

/// Run `top` until a quit key, a stop signal, or a key after the program ended. Returns the
/// exit status to end with.
pub fn top(req: &Top, signal: &AtomicBool) -> Result<i32> {
    Terminal::check()?;
    if let Some(p) = &req.session {
        crate::store::schema::session_target(p)?;
    }
    let config = Config {
        include_idle: true,
        gil_only: false,
        ..req.config.clone()
    };
    let mut child = None;
    let root = match &req.launch {
        Launch::Attach(pid) => attach(*pid, &config)?,
        Launch::Spawn(argv) => {
            let c = spawn_quiet(argv)?;
            let pid = c.id() as i32;
            child = Some(c);
            match attach_spawned(pid, &config, child.as_mut().unwrap(), signal) {
                Ok(spy) => spy,
                Err(e) => {
                    end_child(&mut child);
                    return Err(e);
                }
            }
        }
    };
    let watched = watch(req, &config, root, signal);
    let program_exit = end_child(&mut child);
    watched.map(|()| program_exit.unwrap_or(0))
}

/// Sample the attached `root` and show it until the screen is quit; then keep the session.
fn watch(
    req: &Top,
    config: &Config,
    root: crate::capture::spy::PythonSpy,
    signal: &AtomicBool,
) -> Result<()> {
    let pid = root.pid;
    let command = root.command_line();
    let python = root.version.to_string();
    let writer = match &req.session {
        Some(path) => Some(
            SessionWriter::create(path, &session_start(&req.launch, config, &root))
                .with_context(|| format!("could not create session file {}", path.display()))?,
        ),
        None => None,
    };
    let live = Arc::new(Mutex::new(LiveTop::new(LiveOptions {
        idle: req.config.include_idle,
        gil_only: req.config.gil_only,
        full_filenames: req.config.full_filenames,
    })));
    let mut sink = TopSink::new(live.clone(), writer);
    let stop = Arc::new(AtomicBool::new(false));
    let outcome: Arc<Mutex<Option<String>>> = Arc::default();
    let sampling = {
        let (stop, outcome) = (stop.clone(), outcome.clone());
        let config = config.clone();
        std::thread::Builder::new()
            .name("py-spy-top-sampler".into())
            .spawn(move || {
                let sampled = sampler::sample(root, &config, &mut sink, &stop);
                let why = match &sampled {
                    Ok(s) if s.stop == StopReason::ProcessExited => {
                        Some(format!("process {pid} ended"))
                    }
                    Ok(_) => None,
                    Err(e) => Some(format!("sampling stopped: {e:#}")),
                };
                *outcome.lock().unwrap_or_else(|e| e.into_inner()) = why;
                (sampled, sink)
            })
            .context("could not start the sampling thread")?
    };
    let screen = Screen {
        command: &command,
        python: &python,
        subprocesses: config.subprocesses,
        rate: config.sampling_rate,
        live: &live,
    };
    let shown = screen.run(signal, &sampling, &outcome);
    stop.store(true, Ordering::SeqCst);
    let (sampled, sink) = sampling
        .join()
        .map_err(|_| anyhow::anyhow!("the sampling thread panicked"))?;
    let sampled = sampled?;
    if let (Some(writer), Some(path)) = (sink.writer, &req.session) {
        let mut writer = writer;
        let end = sampled
            .tally
            .end(sampled.end_us, sampled.skipped, sampled.stop);
        writer.set_end(&end)?;
        writer.finish()?;
        eprintln!(
            "Kept the session in '{}': `py-spy analyze {}` or `py-spy render {}` show it again",
            path.display(),
            path.display(),
            path.display()
        );
    }
    shown?;
    if sampled.stop == StopReason::ProcessExited {
        eprintln!("\nprocess {pid} ended");
    }
    Ok(())
}

/// The session's start record for a `top` that keeps one.
fn session_start(
    launch: &Launch,
    config: &Config,
    root: &crate::capture::spy::PythonSpy,
) -> CaptureStart {
    CaptureStart {
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        command_line: root.command_line(),
        started: match launch {
            Launch::Attach(_) => Started::Attached,
            Launch::Spawn(_) => Started::Spawned,
        },
        pid: root.pid,
        python: root.version.to_string(),
        host: proc::hostname(),
        options: SamplingOptions {
            rate: config.sampling_rate,
            duration: RecordDuration::Unlimited,
            blocking: config.blocking,
            native: false,
            subprocesses: config.subprocesses,
        },
    }
}

/// The screen's side: the live table and what the header names.
struct Screen<'a> {
    command: &'a str,
    python: &'a str,
    subprocesses: bool,
    rate: u64,
    live: &'a Mutex<LiveTop>,
}

type Sampling = std::thread::JoinHandle<(Result<sampler::Sampled>, TopSink)>;

impl Screen<'_> {
    /// Draw and handle keys until quit; the terminal is restored before this returns.
    fn run(
        &self,
        signal: &AtomicBool,
        sampling: &Sampling,
        outcome: &Mutex<Option<String>>,
    ) -> Result<()> {
        let mut term = Terminal::open()?;
        let mut view = ViewState::new(false);
        let mut frozen: Option<LiveTop> = None;
        let mut ended: Option<String> = None;
        let mut next_refresh = Instant::now() + REFRESH;
        // A refresh waits for the sampler to end the interval with a whole snapshot.
        let mut awaiting: Option<u64> = None;
        self.draw(&mut term, &view, frozen.as_ref(), ended.as_deref())?;
        while !signal.load(Ordering::Relaxed) {
            if ended.is_none() && sampling.is_finished() {
                let why = outcome.lock().unwrap_or_else(|e| e.into_inner()).clone();
                ended = Some(why.unwrap_or_else(|| "sampling ended".to_string()));
                self.lock().end_interval();
                awaiting = None;
                self.draw(&mut term, &view, frozen.as_ref(), ended.as_deref())?;
            }
            if let Some(n) = awaiting {
                if self.lock().intervals() > n {
                    awaiting = None;
                    if !view.paused {
                        self.draw(&mut term, &view, frozen.as_ref(), ended.as_deref())?;
                    }
                }
            }
            let now = Instant::now();
            let timeout = if awaiting.is_some() {
                Duration::from_millis(2)
            } else {
                next_refresh
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(100))
            };
            match term.wait(timeout)? {
                Some(Input::Key(_)) if ended.is_some() => break,
                Some(Input::Key(key)) => {
                    let threads = match &frozen {
                        Some(f) => f.threads().len(),
                        None => self.lock().threads().len(),
                    };
                    match view.key(key, threads) {
                        Action::Quit => break,
                        Action::Nothing => continue,
                        Action::Reset => {
                            self.lock().reset();
                            frozen = None;
                            view.paused = false;
                        }
                        Action::Pause(true) => frozen = Some(self.lock().clone()),
                        Action::Pause(false) => frozen = None,
                        Action::Redraw => {}
                    }
                    self.draw(&mut term, &view, frozen.as_ref(), ended.as_deref())?;
                }
                Some(Input::Resized) => {
                    self.draw(&mut term, &view, frozen.as_ref(), ended.as_deref())?
                }
                None => {}
            }
            if ended.is_none() && Instant::now() >= next_refresh {
                next_refresh += REFRESH;
                let mut live = self.lock();
                awaiting = Some(live.intervals());
                live.request_end_interval();
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveTop> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn draw(
        &self,
        term: &mut Terminal,
        view: &ViewState,
        frozen: Option<&LiveTop>,
        ended: Option<&str>,
    ) -> Result<()> {
        let guard;
        let live = match frozen {
            Some(f) => f,
            None => {
                guard = self.lock();
                &*guard
            }
        };
        let table = live.table(&view.query);
        let thread = view
            .query
            .thread
            .and_then(|t| live.threads().get(t))
            .map(|t| t.title());
        let filter = view.editing.as_deref().unwrap_or(&view.query.filter);
        let screen = TopScreen {
            command: self.command,
            python: self.python,
            subprocesses: self.subprocesses,
            rate: self.rate,
            table: &table,
            lines: view.query.lines,
            sort: view
                .query
                .sort
                .unwrap_or(crate::analyze::live::LiveSort::OverallOwn),
            thread,
            filter,
            editing_filter: view.editing.is_some(),
            paused: view.paused,
            help: view.help,
            ended,
        };
        let (width, height) = term.size();
        let lines = top_screen(&screen, width, height);
        term.draw(&lines)
    }
}
