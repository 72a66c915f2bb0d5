//! The live `top` table: samples aggregated as they arrive, with no file behind them.
//!
//! As py-spy 0.4's console view counts: for each function (or line, with line numbers on),
//! its own samples (the innermost frame) and total samples (anywhere in the stack, once per
//! stack), both since the last refresh ("current", shown as shares of the snapshots taken
//! since) and since the start or the last reset ("overall", shown as time). Counts are kept
//! per thread, so one thread can be looked at alone. Which samples count (`--idle`, `--gil`)
//! is decided as they arrive, as py-spy does.

use std::collections::HashMap;
use std::time::Duration;

use crate::model::fasthash::FastMap;
use crate::model::intern::{FrameKey, ThreadKey};

/// Which samples count.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveOptions {
    /// Idle threads count too (`--idle`).
    pub idle: bool,
    /// Only samples of the thread holding the GIL (`--gil`).
    pub gil_only: bool,
    /// Full file names rather than package-relative ones (`--full-filenames`).
    pub full_filenames: bool,
}

/// A column to sort by: py-spy's keys 1 to 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSort {
    /// `%Own`: own samples since the last refresh.
    CurrentOwn,
    /// `%Total`: total samples since the last refresh.
    CurrentTotal,
    /// `OwnTime`: own samples overall (py-spy's default).
    OverallOwn,
    /// `TotalTime`: total samples overall.
    OverallTotal,
}

/// Counts of one row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub current_own: u64,
    pub current_total: u64,
    pub overall_own: u64,
    pub overall_total: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.current_own += other.current_own;
        self.current_total += other.current_total;
        self.overall_own += other.overall_own;
        self.overall_total += other.overall_total;
    }

    fn key(&self, sort: LiveSort) -> u64 {
        match sort {
            LiveSort::CurrentOwn => self.current_own,
            LiveSort::CurrentTotal => self.current_total,
            LiveSort::OverallOwn => self.overall_own,
            LiveSort::OverallTotal => self.overall_total,
        }
    }
}

/// A row's counts for one thread: the interval being counted, the last complete interval
/// (what `%Own`/`%Total` show) and the overall counts.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    own: u64,
    total: u64,
    shown_own: u64,
    shown_total: u64,
    overall_own: u64,
    overall_total: u64,
}

/// A thread seen so far.
#[derive(Debug, Clone)]
pub struct LiveThread {
    pub key: ThreadKey,
    pub os_thread_id: Option<u64>,
    pub name: Option<String>,
    /// Snapshots of the interval being counted in which it held the GIL, or was active,
    /// and the same for the last complete interval.
    gil: u64,
    active: u64,
    shown_gil: u64,
    shown_active: u64,
}

impl LiveThread {
    /// `NAME (ID)` or the id alone, the OS id when known.
    pub fn title(&self) -> String {
        let id = match self.os_thread_id {
            Some(t) => t.to_string(),
            None => format!("{:#x}", self.key.thread_id),
        };
        match &self.name {
            Some(n) => format!("{n} ({id})"),
            None => id,
        }
    }
}

/// One row of the table, as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    /// `function (file)` or `function (file:line)`.
    pub label: String,
    pub counts: Counts,
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct LiveQuery {
    /// Rows by line rather than by function.
    pub lines: bool,
    pub sort: Option<LiveSort>,
    /// Only this thread (an index into [`LiveTop::threads`]).
    pub thread: Option<usize>,
    /// Only rows whose label holds this text (case-insensitive).
    pub filter: String,
}

/// The table and the header's figures, for one refresh.
#[derive(Debug, Clone, Default)]
pub struct LiveTable {
    pub rows: Vec<LiveRow>,
    /// Snapshots since the last refresh, and since the start (or last reset).
    pub current_snapshots: u64,
    pub overall_snapshots: u64,
    /// Shares of the current snapshots in which the shown threads held the GIL, or one of
    /// them was active (0–100).
    pub gil_percent: f64,
    pub active_percent: f64,
    /// Threads and processes in the last snapshot.
    pub threads: usize,
    pub processes: usize,
    /// Thread samples whose stack could not be read, overall, and the last reason.
    pub error_samples: u64,
    pub overall_samples: u64,
    pub last_error: Option<String>,
    /// How late the last snapshot was, and the worst since the start (or last reset).
    pub last_lag: Duration,
    pub worst_lag: Duration,
}

/// Interned labels: a dense id per distinct label.
#[derive(Debug, Clone, Default)]
struct Labels {
    ids: HashMap<String, u32>,
    text: Vec<String>,
}

impl Labels {
    fn id(&mut self, label: String) -> u32 {
        if let Some(id) = self.ids.get(&label) {
            return *id;
        }
        let id = self.text.len() as u32;
        self.ids.insert(label.clone(), id);
        self.text.push(label);
        id
    }
}

/// Live aggregation of samples. Frames are given ids by the caller (dense, from 0) and
/// announced with [`LiveTop::add_frame`] before samples use them. Shares are of the last
/// complete interval ([`LiveTop::end_interval`] ends one), so a view asked for between two
/// refreshes (a key was pressed) shows whole intervals.
#[derive(Debug, Clone, Default)]
pub struct LiveTop {
    options: LiveOptions,
    /// Per frame id: its function row and its line row.
    function_row: Vec<u32>,
    line_row: Vec<u32>,
    functions: Labels,
    lines: Labels,
    threads: Vec<LiveThread>,
    thread_index: FastMap<ThreadKey, usize>,
    /// Per (thread index, row id).
    function_counts: FastMap<(usize, u32), Entry>,
    line_counts: FastMap<(usize, u32), Entry>,
    /// Snapshots of the interval being counted, of the last complete one, and overall.
    snapshots: u64,
    shown_snapshots: u64,
    overall_snapshots: u64,
    /// Snapshots with any counted thread holding the GIL, or active: of the interval being
    /// counted, and of the last complete one.
    gil: u64,
    active: u64,
    shown_gil: u64,
    shown_active: u64,
    /// Threads and processes of the snapshot being taken, and of the last one.
    taking: (usize, Vec<i32>),
    last: (usize, usize),
    snapshot_gil: bool,
    snapshot_active: bool,
    overall_samples: u64,
    error_samples: u64,
    last_error: Option<String>,
    last_lag: Duration,
    worst_lag: Duration,
    /// Per row: the number of the last sample that counted it in total (a stack counts
    /// each row once, however deep its recursion), for functions and for lines.
    function_stamp: Vec<u64>,
    line_stamp: Vec<u64>,
    /// Samples counted since the start, resets included: the next stamp.
    stamps: u64,
    /// An interval is to end with the snapshot being taken (see
    /// [`LiveTop::request_end_interval`]), and how many have ended.
    end_due: bool,
    intervals: u64,
}

impl LiveTop {
    pub fn new(options: LiveOptions) -> LiveTop {
        LiveTop {
            options,
            ..LiveTop::default()
        }
    }

    /// A frame's id, in order: ids must come dense from 0.
    pub fn add_frame(&mut self, id: u32, key: &FrameKey) {
        if id as usize != self.function_row.len() {
            return;
        }
        let file = match (&key.short_filename, self.options.full_filenames) {
            (Some(short), false) => short.to_string(),
            _ => key.filename.to_string(),
        };
        let function = self.functions.id(format!("{} ({file})", key.qualname));
        let line = if key.line != 0 {
            format!("{} ({file}:{})", key.qualname, key.line)
        } else {
            format!("{} ({file})", key.qualname)
        };
        let line = self.lines.id(line);
        self.function_row.push(function);
        self.line_row.push(line);
    }

    /// A new snapshot begins, taken `late` after its due time.
    pub fn begin_snapshot(&mut self, late: Duration) {
        self.taking.0 = 0;
        self.taking.1.clear();
        self.snapshot_gil = false;
        self.snapshot_active = false;
        self.last_lag = late;
        self.worst_lag = self.worst_lag.max(late);
    }

    /// The snapshot is complete.
    pub fn end_snapshot(&mut self) {
        self.snapshots += 1;
        self.overall_snapshots += 1;
        self.gil += self.snapshot_gil as u64;
        self.active += self.snapshot_active as u64;
        self.last = (self.taking.0, self.taking.1.len());
        if std::mem::take(&mut self.end_due) {
            self.end_interval();
        }
    }

    /// End the interval once the snapshot being taken is complete, so that no snapshot is
    /// split between two intervals (the screen asks from another thread than the one that
    /// samples); [`LiveTop::intervals`] then grows.
    pub fn request_end_interval(&mut self) {
        self.end_due = true;
    }

    /// Intervals ended so far.
    pub fn intervals(&self) -> u64 {
        self.intervals
    }

    fn thread(&mut self, key: ThreadKey, os_thread_id: Option<u64>, name: Option<&str>) -> usize {
        self.taking.0 += 1;
        if !self.taking.1.contains(&key.pid) {
            self.taking.1.push(key.pid);
        }
        let index = match self.thread_index.get(&key) {
            Some(i) => *i,
            None => {
                self.threads.push(LiveThread {
                    key,
                    os_thread_id,
                    name: None,
                    gil: 0,
                    active: 0,
                    shown_gil: 0,
                    shown_active: 0,
                });
                self.thread_index.insert(key, self.threads.len() - 1);
                self.threads.len() - 1
            }
        };
        let t = &mut self.threads[index];
        if name.is_some() && t.name.as_deref() != name {
            t.name = name.map(str::to_string);
        }
        index
    }

    /// One thread's stack (frame ids, innermost first) with its flags (store's `FLAG_*`).
    pub fn add_sample(
        &mut self,
        key: ThreadKey,
        os_thread_id: Option<u64>,
        name: Option<&str>,
        frames: &[u32],
        active: bool,
        gil: bool,
    ) {
        let thread = self.thread(key, os_thread_id, name);
        self.overall_samples += 1;
        if !(self.options.idle || active) || (self.options.gil_only && !gil) {
            return;
        }
        self.snapshot_gil |= gil;
        self.snapshot_active |= active;
        let t = &mut self.threads[thread];
        t.gil += gil as u64;
        t.active += active as u64;
        self.stamps += 1;
        let stamp = self.stamps;
        for (rows, counts, stamps, n) in [
            (
                &self.function_row,
                &mut self.function_counts,
                &mut self.function_stamp,
                self.functions.text.len(),
            ),
            (
                &self.line_row,
                &mut self.line_counts,
                &mut self.line_stamp,
                self.lines.text.len(),
            ),
        ] {
            stamps.resize(n, 0);
            for (depth, id) in frames.iter().enumerate() {
                let Some(&row) = rows.get(*id as usize) else {
                    continue;
                };
                let c = counts.entry((thread, row)).or_default();
                if depth == 0 {
                    c.own += 1;
                    c.overall_own += 1;
                }
                if stamps[row as usize] != stamp {
                    stamps[row as usize] = stamp;
                    c.total += 1;
                    c.overall_total += 1;
                }
            }
        }
    }

    /// A thread whose stack could not be read.
    pub fn add_error(
        &mut self,
        key: ThreadKey,
        os_thread_id: Option<u64>,
        name: Option<&str>,
        message: &str,
    ) {
        self.thread(key, os_thread_id, name);
        self.overall_samples += 1;
        self.error_samples += 1;
        if self.last_error.as_deref() != Some(message) {
            self.last_error = Some(message.to_string());
        }
    }

    /// The threads seen since the start (or the last reset), in order of appearance.
    pub fn threads(&self) -> &[LiveThread] {
        &self.threads
    }

    /// The table as `query` asks for it.
    pub fn table(&self, query: &LiveQuery) -> LiveTable {
        let (counts, labels) = if query.lines {
            (&self.line_counts, &self.lines)
        } else {
            (&self.function_counts, &self.functions)
        };
        let mut by_row: FastMap<u32, Counts> = FastMap::default();
        for ((thread, row), e) in counts {
            if query.thread.is_none_or(|t| t == *thread) {
                by_row.entry(*row).or_default().add(&Counts {
                    current_own: e.shown_own,
                    current_total: e.shown_total,
                    overall_own: e.overall_own,
                    overall_total: e.overall_total,
                });
            }
        }
        let needle = query.filter.to_lowercase();
        let mut rows: Vec<LiveRow> = by_row
            .into_iter()
            .filter(|(_, c)| c.overall_total > 0)
            .map(|(row, counts)| LiveRow {
                label: labels.text[row as usize].clone(),
                counts,
            })
            .filter(|r| needle.is_empty() || r.label.to_lowercase().contains(&needle))
            .collect();
        let sort = query.sort.unwrap_or(LiveSort::OverallOwn);
        rows.sort_by(|a, b| {
            b.counts
                .key(sort)
                .cmp(&a.counts.key(sort))
                .then_with(|| b.counts.overall_total.cmp(&a.counts.overall_total))
                .then_with(|| a.label.cmp(&b.label))
        });
        let (gil, active) = match query.thread.and_then(|t| self.threads.get(t)) {
            Some(t) => (t.shown_gil, t.shown_active),
            None => (self.shown_gil, self.shown_active),
        };
        let share = |n: u64| 100.0 * n as f64 / self.shown_snapshots.max(1) as f64;
        LiveTable {
            rows,
            current_snapshots: self.shown_snapshots,
            overall_snapshots: self.overall_snapshots,
            gil_percent: share(gil),
            active_percent: share(active),
            threads: self.last.0,
            processes: self.last.1,
            error_samples: self.error_samples,
            overall_samples: self.overall_samples,
            last_error: self.last_error.clone(),
            last_lag: self.last_lag,
            worst_lag: self.worst_lag,
        }
    }

    /// The interval being counted is complete (a refresh is due): its counts become the
    /// shown ones, and a new interval begins.
    pub fn end_interval(&mut self) {
        for e in self
            .function_counts
            .values_mut()
            .chain(self.line_counts.values_mut())
        {
            e.shown_own = std::mem::take(&mut e.own);
            e.shown_total = std::mem::take(&mut e.total);
        }
        for t in &mut self.threads {
            t.shown_gil = std::mem::take(&mut t.gil);
            t.shown_active = std::mem::take(&mut t.active);
        }
        self.intervals += 1;
        self.shown_snapshots = std::mem::take(&mut self.snapshots);
        self.shown_gil = std::mem::take(&mut self.gil);
        self.shown_active = std::mem::take(&mut self.active);
    }

    /// Forget every count (`R`); frames and threads stay known.
    pub fn reset(&mut self) {
        self.function_counts.clear();
        self.line_counts.clear();
        self.end_interval();
        self.end_interval();
        self.overall_snapshots = 0;
        self.overall_samples = 0;
        self.error_samples = 0;
        self.last_error = None;
        self.worst_lag = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn frame(name: &str, line: i32) -> FrameKey {
        FrameKey {
            function: Arc::from(name),
            qualname: Arc::from(name),
            filename: Arc::from("/srv/app/prog.py"),
            short_filename: Some(Arc::from("prog.py")),
            line,
            first_line: 1,
            module: None,
        }
    }

    fn thread(id: u64) -> ThreadKey {
        ThreadKey {
            pid: 7,
            thread_id: id,
        }
    }

    #[test]
    fn own_total_shares_threads_and_reset() {
        let mut top = LiveTop::new(LiveOptions::default());
        // 0: spin:3, 1: spin:4, 2: main:10, 3: wait:20
        for (id, (f, l)) in [("spin", 3), ("spin", 4), ("main", 10), ("wait", 20)]
            .iter()
            .enumerate()
        {
            top.add_frame(id as u32, &frame(f, *l));
        }
        for i in 0..10 {
            top.begin_snapshot(Duration::from_micros(i));
            // A recursive spin counts once in total.
            let spin: &[u32] = if i % 2 == 0 { &[0, 1, 2] } else { &[1, 0, 2] };
            top.add_sample(thread(1), Some(11), Some("MainThread"), spin, true, true);
            top.add_sample(thread(2), Some(12), Some("waiter"), &[3, 2], false, false);
            top.end_snapshot();
        }
        let q = LiveQuery::default();
        // Before an interval is complete, no share is shown; overall counts are.
        let t = top.table(&q);
        assert_eq!((t.current_snapshots, t.rows[0].counts.overall_own), (0, 10));
        top.end_interval();
        let t = top.table(&q);
        assert_eq!((t.current_snapshots, t.threads, t.processes), (10, 2, 1));
        assert_eq!((t.gil_percent, t.active_percent), (100.0, 100.0));
        let labels: Vec<&str> = t.rows.iter().map(|r| r.label.as_str()).collect();
        // The idle waiter is left out; by function, spin owns everything.
        assert_eq!(labels, ["spin (prog.py)", "main (prog.py)"]);
        assert_eq!(
            t.rows[0].counts,
            Counts {
                current_own: 10,
                current_total: 10,
                overall_own: 10,
                overall_total: 10
            }
        );
        // By line: each spin line owns half, and is in every stack.
        let t = top.table(&LiveQuery {
            lines: true,
            sort: Some(LiveSort::CurrentTotal),
            ..LiveQuery::default()
        });
        let spin3 = t
            .rows
            .iter()
            .find(|r| r.label == "spin (prog.py:3)")
            .unwrap();
        assert_eq!(
            (spin3.counts.current_own, spin3.counts.current_total),
            (5, 10)
        );
        // One thread alone, and a filter.
        let t = top.table(&LiveQuery {
            thread: Some(1),
            ..LiveQuery::default()
        });
        assert!(t.rows.is_empty());
        assert_eq!(top.threads()[1].title(), "waiter (12)");
        let t = top.table(&LiveQuery {
            filter: "MAIN".into(),
            ..LiveQuery::default()
        });
        assert_eq!(t.rows.len(), 1);
        // An empty interval keeps the overall counts; a reset drops them.
        top.end_interval();
        let t = top.table(&q);
        assert_eq!(
            (t.rows[0].counts.current_own, t.rows[0].counts.overall_own),
            (0, 10)
        );
        // Asked for mid-snapshot, the interval ends with the snapshot.
        let n = top.intervals();
        top.begin_snapshot(Duration::ZERO);
        top.add_sample(thread(1), Some(11), None, &[0, 2], true, true);
        top.request_end_interval();
        top.add_sample(thread(2), Some(12), None, &[0, 2], true, false);
        assert_eq!(top.intervals(), n);
        top.end_snapshot();
        assert_eq!(top.intervals(), n + 1);
        let t = top.table(&q);
        assert_eq!((t.current_snapshots, t.rows[0].counts.current_own), (1, 2));
        top.reset();
        assert!(top.table(&q).rows.is_empty());
        assert_eq!(top.table(&q).overall_snapshots, 0);
    }
}
