//! Replaying a session: the samples a view keeps, as stacks of the frames that view shows.
//!
//! A [`View`] holds the choices py-spy makes while recording (idle threads or not, GIL holders
//! only, thread and process root frames, which line to show, full or short file names) plus
//! the filters (time window, processes, threads). [`Replay`] streams the session's samples
//! through it: each kept sample comes out with a *view stack*, root first, whose frames are
//! interned under the view, so that two stored frames that look the same (say, two lines of
//! one function under `--nolineno`) become one. Stacks are translated once per distinct
//! (stored stack, thread label) and cached, so a million samples cost a million lookups.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

use crate::model::config::LineNo;
use crate::model::fasthash::FastMap;
use crate::store::{SampleFilter, Session, ThreadRow};

/// What to show, and which samples.
#[derive(Debug, Clone)]
pub struct View {
    /// Include samples of threads that were waiting (py-spy `--idle`).
    pub idle: bool,
    /// Only samples of the thread holding the GIL (py-spy `--gil`).
    pub gil_only: bool,
    /// Put a `thread (ID): NAME` frame at the root of each stack (py-spy `--threads`).
    pub thread_frames: bool,
    /// Put `process PID:"CMD"` frames at the root; `None`: when the capture followed
    /// subprocesses (as py-spy does with `--subprocesses`).
    pub process_frames: Option<bool>,
    /// Which line a frame shows: the current one, the function's first (`--function`), none
    /// (`--nolineno`).
    pub lineno: LineNo,
    /// Full file names rather than relative to the package root.
    pub full_filenames: bool,
    /// Only these processes.
    pub pids: Option<Vec<i32>>,
    /// Only threads with one of these names, Python thread ids or OS thread ids.
    pub threads: Vec<String>,
    /// Time window, in seconds from the start of the capture.
    pub from_s: Option<f64>,
    pub to_s: Option<f64>,
    /// Show samples whose stack could not be read (error samples) as a stack of one
    /// `<error: REASON>` frame, rather than leaving them out.
    pub errors: bool,
    /// Without `errors`: show the error samples whose innermost frames were read (a chain
    /// that broke off while it was read: what the thread ran, its callers unknown) as those
    /// frames under one `<unreadable caller>` frame, so that leaf shares stay true; the
    /// other error samples are left out and counted. `false` (`--no-errors`) leaves every
    /// error sample out.
    pub partial_errors: bool,
    /// Leave native frames out (a `--native` capture seen with its Python frames only).
    pub python_only: bool,
}

impl Default for View {
    fn default() -> Self {
        View {
            idle: false,
            gil_only: false,
            thread_frames: false,
            process_frames: None,
            lineno: LineNo::LastInstruction,
            full_filenames: false,
            pids: None,
            threads: Vec::new(),
            from_s: None,
            to_s: None,
            errors: false,
            partial_errors: true,
            python_only: false,
        }
    }
}

/// The frame under which an error sample's innermost frames are shown by default: the
/// callers of a chain that broke off while it was read are not known.
pub const UNREADABLE_CALLER: &str = "<unreadable caller>";

/// A frame as a view shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewFrame {
    /// Qualified function name, or the label of a thread or process frame.
    pub name: String,
    /// The file as the target named it ("" for thread and process frames).
    pub filename: String,
    /// The file as shown: relative to its package root unless full file names were asked for.
    pub display_file: String,
    /// The line shown; `None` under `--nolineno` and for thread and process frames.
    pub line: Option<i32>,
}

impl ViewFrame {
    /// py-spy's collapsed-stack label: `name (file:line)`, `name (file)` or `name`.
    pub fn label(&self) -> String {
        match self.line {
            Some(line) if line != 0 => format!("{} ({}:{})", self.name, self.display_file, line),
            _ if !self.display_file.is_empty() => format!("{} ({})", self.name, self.display_file),
            _ => self.name.clone(),
        }
    }
}

/// One kept sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayedSample {
    /// Microseconds since the start of the capture.
    pub t_us: u64,
    /// Row of the thread in the session (`Session::threads`).
    pub thread: u32,
    /// Index in [`Replay::stacks`].
    pub stack: u32,
    /// The stored flags (`store::FLAG_*`).
    pub flags: u8,
}

/// Streams a session through a [`View`].
pub struct Replay<'s> {
    session: &'s Session,
    view: View,
    filter: SampleFilter,
    process_frames: bool,
    /// Frames and stacks (root first) of this view.
    pub frames: Vec<ViewFrame>,
    pub stacks: Vec<Vec<u32>>,
    frame_ids: HashMap<ViewFrame, u32>,
    /// Stored frame id → view frame id.
    stored_frames: Vec<Option<u32>>,
    /// (stored stack, thread label frame or u32::MAX) → view stack.
    stack_ids: FastMap<(u32, u32), u32>,
    /// (thread row, name) → thread label frame.
    thread_labels: HashMap<(u32, Option<String>), u32>,
    /// Process row → its frames (ancestors first).
    process_labels: HashMap<u32, Vec<u32>>,
    /// Samples dropped by the idle and GIL rules.
    pub dropped: u64,
    /// Samples handed on (passed every rule).
    pub kept: u64,
    /// Error samples (stack unknown) that passed the view's rules and were left out, by
    /// `errors.id`; with `View::errors` they are shown instead.
    pub errors_left_out: Vec<u64>,
    /// (error id, thread label frame or u32::MAX) → view stack.
    error_stacks: FastMap<(u32, u32), u32>,
    /// Error samples shown by default as their innermost frames under `<unreadable caller>`.
    pub partial_shown: u64,
}

impl<'s> Replay<'s> {
    pub fn new(session: &'s Session, view: &View) -> Result<Replay<'s>> {
        let to_us = |s: f64, what: &str| -> Result<u64> {
            if !s.is_finite() || s < 0.0 {
                bail!("--{what} must be a number of seconds, 0 or more (got {s})");
            }
            Ok((s * 1e6) as u64)
        };
        if let (Some(from), Some(to)) = (view.from_s, view.to_s) {
            if from >= to {
                bail!("--from {from} s is not before --to {to} s: no sample can be in between");
            }
        }
        let mut filter = SampleFilter {
            from_us: view.from_s.map(|s| to_us(s, "from")).transpose()?,
            to_us: view.to_s.map(|s| to_us(s, "to")).transpose()?,
            pids: view.pids.clone(),
            threads: None,
        };
        if let Some(pids) = &view.pids {
            for pid in pids {
                if !session.processes.iter().any(|p| p.pid == *pid) {
                    let known: Vec<String> = session
                        .processes
                        .iter()
                        .map(|p| p.pid.to_string())
                        .collect();
                    bail!(
                        "process {pid} is not in this session (processes: {})",
                        known.join(", ")
                    );
                }
            }
        }
        filter.threads = select_threads(session, &view.threads)?;
        let process_frames = view
            .process_frames
            .unwrap_or_else(|| session.meta.subprocesses());
        Ok(Replay {
            session,
            view: view.clone(),
            filter,
            process_frames,
            frames: Vec::new(),
            stacks: Vec::new(),
            frame_ids: HashMap::new(),
            stored_frames: vec![None; session.frames.len()],
            stack_ids: FastMap::default(),
            thread_labels: HashMap::new(),
            process_labels: HashMap::new(),
            dropped: 0,
            kept: 0,
            errors_left_out: vec![0; session.errors.len()],
            error_stacks: FastMap::default(),
            partial_shown: 0,
        })
    }

    pub fn session(&self) -> &'s Session {
        self.session
    }

    /// Why nothing passed the view, for a user: the session's time span when a window was
    /// asked for, and what the rules left out.
    pub fn nothing_kept_reason(&self) -> String {
        let session = self.session;
        let mut why = Vec::new();
        if self.view.from_s.is_some() || self.view.to_s.is_some() {
            match session.time_span_us() {
                Ok(Some((first, last))) => why.push(format!(
                    "the session's samples span {:.2} s to {:.2} s",
                    first as f64 / 1e6,
                    last as f64 / 1e6
                )),
                _ => why.push("the session holds no samples".to_string()),
            }
        }
        if self.dropped > 0 {
            let mut rule = format!("{} samples were idle", self.dropped);
            if self.view.gil_only {
                rule.push_str(" or not holding the GIL (without --gil they count)");
            }
            if !self.view.idle {
                rule.push_str(" (--idle includes idle threads)");
            }
            why.push(rule);
        }
        let errors = self.errors_left_out_total();
        if errors > 0 {
            why.push(format!(
                "{errors} samples are errors, whose stack could not be read (--errors shows them)"
            ));
        }
        if why.is_empty() {
            why.push("the selection matches no sample".to_string());
        }
        format!("no samples to write: {}", why.join("; "))
    }

    /// Call `f` with every kept sample, in time order.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(&Self, ReplayedSample) -> Result<()>,
    ) -> Result<()> {
        let session = self.session;
        let filter = self.filter.clone();
        for s in session.samples(&filter)? {
            let s = s.context("could not read the session's samples")?;
            if (!self.view.idle && !s.active()) || (self.view.gil_only && !s.gil()) {
                self.dropped += 1;
                continue;
            }
            if s.error() && !self.view.errors && !self.shows_partial(s.stack) {
                if let Some(n) = self.errors_left_out.get_mut(s.stack as usize) {
                    *n += 1;
                }
                continue;
            }
            let label = if self.view.thread_frames {
                self.thread_label(s.thread, s.t_us)
            } else {
                u32::MAX
            };
            if s.error() && !self.view.errors {
                self.partial_shown += 1;
            }
            let stack = if s.error() {
                match self.error_stacks.get(&(s.stack, label)) {
                    Some(id) => *id,
                    None => self.make_error_stack(s.stack, s.thread, label),
                }
            } else {
                match self.stack_ids.get(&(s.stack, label)) {
                    Some(id) => *id,
                    None => self.make_stack(s.stack, s.thread, label),
                }
            };
            self.kept += 1;
            f(
                self,
                ReplayedSample {
                    t_us: s.t_us,
                    thread: s.thread,
                    stack,
                    flags: s.flags,
                },
            )?;
        }
        Ok(())
    }

    fn intern(&mut self, frame: ViewFrame) -> u32 {
        if let Some(id) = self.frame_ids.get(&frame) {
            return *id;
        }
        let id = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.frame_ids.insert(frame, id);
        id
    }

    /// Whether stored frame `id` is shown: not a native frame under `python_only`.
    fn shows(&self, id: u32) -> bool {
        !self.view.python_only
            || self
                .session
                .frames
                .get(id as usize)
                .is_none_or(|f| f.module.is_none())
    }

    fn stored_frame(&mut self, id: u32) -> u32 {
        if let Some(Some(v)) = self.stored_frames.get(id as usize) {
            return *v;
        }
        let row = &self.session.frames[id as usize];
        let line = match self.view.lineno {
            LineNo::LastInstruction => Some(row.line),
            LineNo::First => Some(row.first_line),
            LineNo::NoLine => None,
        };
        let display_file = match (&row.short_filename, self.view.full_filenames) {
            (Some(short), false) => short.clone(),
            _ => row.filename.clone(),
        };
        let v = self.intern(ViewFrame {
            name: row.qualname.clone(),
            filename: row.filename.clone(),
            display_file,
            line,
        });
        self.stored_frames[id as usize] = Some(v);
        v
    }

    fn pseudo(&mut self, name: String) -> u32 {
        self.intern(ViewFrame {
            name,
            filename: String::new(),
            display_file: String::new(),
            line: None,
        })
    }

    fn thread_label(&mut self, thread: u32, t_us: u64) -> u32 {
        let row = &self.session.threads[thread as usize];
        let name = row.name_at(t_us).map(str::to_string);
        if let Some(id) = self.thread_labels.get(&(thread, name.clone())) {
            return *id;
        }
        let tid = format_threadid(row.os_thread_id, row.thread_id);
        let label = match &name {
            Some(n) => format!("thread ({tid}): {}", one_line(n)),
            None => format!("thread ({tid})"),
        };
        let id = self.pseudo(label);
        self.thread_labels.insert((thread, name), id);
        id
    }

    fn process_frames_of(&mut self, process: u32) -> Vec<u32> {
        if let Some(v) = self.process_labels.get(&process) {
            return v.clone();
        }
        let mut chain = Vec::new();
        let mut cur = Some(process);
        while let Some(p) = cur {
            let Some(row) = self.session.processes.get(p as usize) else {
                break;
            };
            if chain.len() > 64 {
                break;
            }
            chain.push(format!(
                "process {}:\"{}\"",
                row.pid,
                one_line(&row.command_line)
            ));
            cur = row.parent;
        }
        chain.reverse();
        let ids: Vec<u32> = chain.into_iter().map(|l| self.pseudo(l)).collect();
        self.process_labels.insert(process, ids.clone());
        ids
    }

    /// Error samples left out, in all.
    pub fn errors_left_out_total(&self) -> u64 {
        self.errors_left_out.iter().sum()
    }

    /// "N samples whose stack could not be read (REASON: n, ...)", or `None` when no error
    /// sample was left out.
    pub fn errors_note(&self) -> Option<String> {
        let total = self.errors_left_out_total();
        let partial = (self.partial_shown > 0).then(|| {
            format!(
                "{} {} whose callers could not be read shown under {UNREADABLE_CALLER} \
                 (--no-errors leaves them out)",
                self.partial_shown,
                if self.partial_shown == 1 {
                    "sample"
                } else {
                    "samples"
                },
            )
        });
        if total == 0 {
            return partial;
        }
        let mut by_kind: Vec<(String, u64)> = Vec::new();
        for (row, n) in self.session.errors.iter().zip(&self.errors_left_out) {
            if *n == 0 {
                continue;
            }
            match by_kind.iter_mut().find(|(m, _)| *m == row.message) {
                Some(e) => e.1 += n,
                None => by_kind.push((row.message.clone(), *n)),
            }
        }
        let reasons: Vec<String> = by_kind.iter().map(|(m, n)| format!("{m}: {n}")).collect();
        let left_out = format!(
            "{total} {} whose stack could not be read left out ({}); --errors shows them",
            if total == 1 { "sample" } else { "samples" },
            reasons.join(", ")
        );
        Some(match partial {
            Some(p) => format!("{p}; {left_out}"),
            None => left_out,
        })
    }

    /// Whether error `error` is shown, without `--errors`, as its innermost frames under
    /// `<unreadable caller>` ([`View::partial_errors`]).
    fn shows_partial(&self, error: u32) -> bool {
        let session = self.session;
        self.view.partial_errors
            && session
                .errors
                .get(error as usize)
                .and_then(|e| e.stack)
                .and_then(|stack| session.stacks.get(stack as usize))
                .is_some_and(|frames| frames.iter().any(|f| self.shows(*f)))
    }

    fn make_error_stack(&mut self, error: u32, thread: u32, label: u32) -> u32 {
        let mut out = self.roots(thread, label);
        let row = self.session.errors.get(error as usize);
        if self.view.errors {
            let reason = row.map_or("unknown", |e| e.message.as_str());
            out.push(self.pseudo(format!("<error: {reason}>")));
        } else {
            out.push(self.pseudo(UNREADABLE_CALLER.to_string()));
        }
        // The innermost frames read before the chain broke off, callers unknown.
        let session = self.session;
        if let Some(stack) = row.and_then(|e| e.stack) {
            for f in session.stacks[stack as usize].iter().rev() {
                if self.shows(*f) {
                    out.push(self.stored_frame(*f));
                }
            }
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(out);
        self.error_stacks.insert((error, label), id);
        id
    }

    /// The process and thread frames a stack of `thread` starts with under this view.
    fn roots(&mut self, thread: u32, label: u32) -> Vec<u32> {
        let mut out = Vec::new();
        if self.process_frames {
            let process = self.session.threads[thread as usize].process;
            out.extend(self.process_frames_of(process));
        }
        if label != u32::MAX {
            out.push(label);
        }
        out
    }

    fn make_stack(&mut self, stored: u32, thread: u32, label: u32) -> u32 {
        let mut out = self.roots(thread, label);
        let session = self.session;
        for f in session.stacks[stored as usize].iter().rev() {
            if self.shows(*f) {
                out.push(self.stored_frame(*f));
            }
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(out);
        self.stack_ids.insert((stored, label), id);
        id
    }
}

/// py-spy's thread id text: the OS thread id, or the Python id in hex.
pub fn format_threadid(os_thread_id: Option<u64>, thread_id: u64) -> String {
    match os_thread_id {
        Some(t) => t.to_string(),
        None => format!("{thread_id:#X}"),
    }
}

fn parse_id(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Thread rows whose name (at any time), Python id or OS id is `sel`.
pub fn matching_threads(session: &Session, sel: &str) -> Vec<u32> {
    let id = parse_id(sel);
    session
        .threads
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            t.names.iter().any(|(_, n)| n == sel)
                || id.is_some_and(|id| t.thread_id == id || t.os_thread_id == Some(id))
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// The thread rows `--thread` selections name (`None`: no selection, every thread); a
/// selection that matches no thread is an error listing the session's threads.
pub fn select_threads(session: &Session, sels: &[String]) -> Result<Option<Vec<u32>>> {
    if sels.is_empty() {
        return Ok(None);
    }
    let mut rows = Vec::new();
    for sel in sels {
        let matched = matching_threads(session, sel);
        if matched.is_empty() {
            bail!(
                "no thread matches '{sel}' (threads in this session: {})",
                describe_threads(session)
            );
        }
        rows.extend(matched);
    }
    Ok(Some(rows))
}

/// `text` on one line: line breaks, tabs and other control characters written as escapes
/// (`\n`, `\t`, `\x1b`), so a label (a `python -c "…"` command line, a thread name) cannot
/// break a one-stack-per-line format or drive a terminal.
pub fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A thread as tables name it: `NAME (ID)`, or its id alone without a name.
pub fn thread_title(thread: &ThreadRow, name: Option<&str>) -> String {
    let id = format_threadid(thread.os_thread_id, thread.thread_id);
    match name {
        Some(name) => format!("{name} ({id})"),
        None => id,
    }
}

/// "NAME (OS id)" for every thread, for error messages.
pub fn describe_threads(session: &Session) -> String {
    let list: Vec<String> = session
        .threads
        .iter()
        .map(|t| {
            let name = t.names.last().map(|(_, n)| n.as_str()).unwrap_or("?");
            format!("{name} ({})", format_threadid(t.os_thread_id, t.thread_id))
        })
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}
