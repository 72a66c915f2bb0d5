//! The `analyze` table: for each function (or line, file, module, thread, process), the
//! samples it was running itself (own: the innermost frame) and the samples it was on the
//! stack at all (total: a recursive function counts once per sample), as py-spy's `top`
//! counts them, over a whole recording.

use anyhow::Result;
use std::collections::HashMap;

use super::replay::{thread_title, Replay, View, ViewFrame};
use crate::model::config::LineNo;
use crate::store::Session;

/// What a row of the table stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// A function: its name, file and first line.
    Function,
    /// A line of a function.
    Line,
    File,
    /// A module, from the file name as shown (`pkg/mod.py` → `pkg.mod`).
    Module,
    Thread,
    Process,
}

impl GroupBy {
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Function,
        GroupBy::Line,
        GroupBy::File,
        GroupBy::Module,
        GroupBy::Thread,
        GroupBy::Process,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Function => "function",
            GroupBy::Line => "line",
            GroupBy::File => "file",
            GroupBy::Module => "module",
            GroupBy::Thread => "thread",
            GroupBy::Process => "process",
        }
    }
}

/// How rows are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Own samples, most first (ties: total, then name).
    Own,
    /// Total samples, most first (ties: own, then name).
    Total,
    /// By name.
    Name,
}

impl SortBy {
    pub const ALL: [SortBy; 3] = [SortBy::Own, SortBy::Total, SortBy::Name];

    pub fn name(self) -> &'static str {
        match self {
            SortBy::Own => "own",
            SortBy::Total => "total",
            SortBy::Name => "name",
        }
    }
}

/// One row. The fields that do not apply to the grouping are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TopRow {
    pub function: Option<String>,
    /// The file as shown (see [`View::full_filenames`]).
    pub filename: Option<String>,
    pub line: Option<i32>,
    pub module: Option<String>,
    pub thread: Option<String>,
    pub process: Option<String>,
    pub own_samples: u64,
    pub total_samples: u64,
}

impl TopRow {
    /// How the row is named in a table: `function (file:line)`, a file, a module, a thread.
    /// A line of 0 (a native frame without line information) is not shown.
    pub fn label(&self) -> String {
        match (&self.function, &self.filename, self.line) {
            (Some(f), Some(file), Some(line)) if line != 0 => format!("{f} ({file}:{line})"),
            (Some(f), Some(file), _) => format!("{f} ({file})"),
            (Some(f), None, _) => f.clone(),
            (None, Some(file), _) => file.clone(),
            (None, None, _) => self
                .module
                .clone()
                .or_else(|| self.thread.clone())
                .or_else(|| self.process.clone())
                .unwrap_or_default(),
        }
    }
}

/// The table, with what the shares are shares of.
#[derive(Debug, Clone)]
pub struct TopTable {
    pub by: GroupBy,
    pub rows: Vec<TopRow>,
    /// Samples that passed the view: the 100% of the shares.
    pub samples: u64,
    /// What one sample stands for: one sampling period of one thread.
    pub seconds_per_sample: f64,
    /// Samples left out by the idle and GIL rules, and error samples left out.
    pub dropped: u64,
    pub errors_left_out: u64,
    /// Why no sample passed the view, when none did.
    pub nothing_kept: Option<String>,
}

impl TopTable {
    pub fn percent(&self, n: u64) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            100.0 * n as f64 / self.samples as f64
        }
    }

    pub fn seconds(&self, n: u64) -> f64 {
        n as f64 * self.seconds_per_sample
    }

    /// Order the rows.
    pub fn sort(&mut self, by: SortBy) {
        let label = |r: &TopRow| r.label();
        match by {
            SortBy::Own => self.rows.sort_by(|a, b| {
                (b.own_samples, b.total_samples)
                    .cmp(&(a.own_samples, a.total_samples))
                    .then_with(|| label(a).cmp(&label(b)))
            }),
            SortBy::Total => self.rows.sort_by(|a, b| {
                (b.total_samples, b.own_samples)
                    .cmp(&(a.total_samples, a.own_samples))
                    .then_with(|| label(a).cmp(&label(b)))
            }),
            SortBy::Name => self.rows.sort_by_key(label),
        }
    }
}

/// A row of two tables compared (`analyze NEW --diff BASE`): shares in each, in percent of
/// its own samples.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffRow {
    /// What the row stands for (its counts are the new table's).
    pub row: TopRow,
    pub base_own_samples: u64,
    pub base_own_percent: f64,
    pub new_own_percent: f64,
    pub base_total_percent: f64,
    pub new_total_percent: f64,
}

impl DiffRow {
    /// Change of the own share, in percentage points.
    pub fn own_change(&self) -> f64 {
        self.new_own_percent - self.base_own_percent
    }

    pub fn total_change(&self) -> f64 {
        self.new_total_percent - self.base_total_percent
    }
}

/// Every row of either table, with its shares in both, largest change of own share first.
pub fn diff(base: &TopTable, new: &TopTable) -> Vec<DiffRow> {
    let key = |r: &TopRow| TopRow {
        own_samples: 0,
        total_samples: 0,
        ..r.clone()
    };
    let mut rows: Vec<DiffRow> = Vec::new();
    let mut index: HashMap<TopRow, usize> = HashMap::new();
    for r in &new.rows {
        index.insert(key(r), rows.len());
        rows.push(DiffRow {
            row: r.clone(),
            base_own_samples: 0,
            base_own_percent: 0.0,
            new_own_percent: new.percent(r.own_samples),
            base_total_percent: 0.0,
            new_total_percent: new.percent(r.total_samples),
        });
    }
    for r in &base.rows {
        let i = *index.entry(key(r)).or_insert_with(|| {
            rows.push(DiffRow {
                row: key(r),
                base_own_samples: 0,
                base_own_percent: 0.0,
                new_own_percent: 0.0,
                base_total_percent: 0.0,
                new_total_percent: 0.0,
            });
            rows.len() - 1
        });
        rows[i].base_own_samples = r.own_samples;
        rows[i].base_own_percent = base.percent(r.own_samples);
        rows[i].base_total_percent = base.percent(r.total_samples);
    }
    rows.sort_by(|a, b| {
        b.own_change()
            .abs()
            .total_cmp(&a.own_change().abs())
            .then_with(|| a.row.label().cmp(&b.row.label()))
    });
    rows
}

/// The module a file belongs to, from its name as shown: `pkg/sub/mod.py` → `pkg.sub.mod`,
/// `pkg/__init__.py` → `pkg`; a name that is not a Python file stays as it is.
pub fn module_of(display_file: &str) -> String {
    let Some(stem) = display_file.strip_suffix(".py") else {
        return display_file.to_string();
    };
    let stem = stem.strip_suffix("/__init__").unwrap_or(stem);
    stem.trim_start_matches('/').replace('/', ".")
}

/// Aggregate `session`'s samples kept by `view` into rows grouped `by`.
pub fn top(session: &Session, view: &View, by: GroupBy) -> Result<TopTable> {
    let mut view = view.clone();
    // Frames as the grouping needs them; thread and process frames are not rows.
    view.thread_frames = false;
    view.process_frames = Some(false);
    view.lineno = match (by, view.lineno) {
        (_, LineNo::NoLine) | (GroupBy::File | GroupBy::Module, _) => LineNo::NoLine,
        (GroupBy::Function, _) => LineNo::First,
        _ => LineNo::LastInstruction,
    };
    let mut replay = Replay::new(session, &view)?;
    let mut keys: HashMap<TopRow, u32> = HashMap::new();
    let mut rows: Vec<TopRow> = Vec::new();
    // Per view stack: its own row and its distinct rows.
    let mut per_stack: Vec<Option<(u32, Vec<u32>)>> = Vec::new();
    let mut per_thread: HashMap<u32, u32> = HashMap::new();
    let mut intern = |row: TopRow, rows: &mut Vec<TopRow>| -> u32 {
        *keys.entry(row.clone()).or_insert_with(|| {
            rows.push(row);
            rows.len() as u32 - 1
        })
    };
    let frame_row = |f: &ViewFrame| -> TopRow {
        let empty = TopRow::default();
        let file = (!f.display_file.is_empty()).then(|| f.display_file.clone());
        match by {
            GroupBy::Function | GroupBy::Line => TopRow {
                function: Some(f.name.clone()),
                filename: file,
                line: f.line,
                ..empty
            },
            GroupBy::File => TopRow {
                // An error sample's frame has no file: its reason is the row.
                function: file.is_none().then(|| f.name.clone()),
                filename: file,
                ..empty
            },
            _ => TopRow {
                function: file.is_none().then(|| f.name.clone()),
                module: file.as_deref().map(module_of),
                ..empty
            },
        }
    };
    let mut own = Vec::<u64>::new();
    let mut total = Vec::<u64>::new();
    replay.for_each(|r, s| {
        match by {
            GroupBy::Thread | GroupBy::Process => {
                let id = match per_thread.get(&s.thread) {
                    Some(id) => *id,
                    None => {
                        let row = owner_row(r.session(), s.thread, s.t_us, by);
                        let id = intern(row, &mut rows);
                        per_thread.insert(s.thread, id);
                        id
                    }
                };
                count(id, true, &mut own, &mut total);
            }
            _ => {
                let k = s.stack as usize;
                if per_stack.len() <= k {
                    per_stack.resize(k + 1, None);
                }
                if per_stack[k].is_none() {
                    let frames = &r.stacks[k];
                    let mut ids: Vec<u32> = frames
                        .iter()
                        .map(|&f| intern(frame_row(&r.frames[f as usize]), &mut rows))
                        .collect();
                    let leaf = ids.last().copied().unwrap_or(u32::MAX);
                    ids.sort_unstable();
                    ids.dedup();
                    per_stack[k] = Some((leaf, ids));
                }
                let (leaf, ids) = per_stack[k].as_ref().expect("just made");
                for &id in ids {
                    count(id, id == *leaf, &mut own, &mut total);
                }
            }
        }
        Ok(())
    })?;
    for (i, row) in rows.iter_mut().enumerate() {
        row.own_samples = own.get(i).copied().unwrap_or(0);
        row.total_samples = total.get(i).copied().unwrap_or(0);
    }
    rows.retain(|r| r.total_samples > 0);
    Ok(TopTable {
        by,
        rows,
        samples: replay.kept,
        seconds_per_sample: 1.0 / session.meta.rate() as f64,
        dropped: replay.dropped,
        errors_left_out: replay.errors_left_out_total(),
        nothing_kept: (replay.kept == 0).then(|| replay.nothing_kept_reason()),
    })
}

/// Count one sample for row `id`: in its total, and in its own count when it ran itself.
fn count(id: u32, is_own: bool, own: &mut Vec<u64>, total: &mut Vec<u64>) {
    let i = id as usize;
    if own.len() <= i {
        own.resize(i + 1, 0);
        total.resize(i + 1, 0);
    }
    total[i] += 1;
    own[i] += is_own as u64;
}

/// The row of a thread (`NAME (ID)`, named as at `t_us`) or of its process (`PID CMD`).
fn owner_row(session: &Session, thread: u32, t_us: u64, by: GroupBy) -> TopRow {
    let row = TopRow::default();
    let t = session.threads.get(thread as usize);
    let process = t.and_then(|t| session.processes.get(t.process as usize));
    if by == GroupBy::Process {
        let label = process.map_or_else(
            || "unknown process".to_string(),
            |p| format!("{} {}", p.pid, p.command_line),
        );
        return TopRow {
            process: Some(label),
            ..row
        };
    }
    let label = t.map_or_else(
        || "unknown thread".to_string(),
        |t| thread_title(t, t.name_at(t_us)),
    );
    TopRow {
        thread: Some(label),
        ..row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_from_file_names() {
        assert_eq!(module_of("pkg/sub/mod.py"), "pkg.sub.mod");
        assert_eq!(module_of("pkg/__init__.py"), "pkg");
        assert_eq!(module_of("/abs/x.py"), "abs.x");
        assert_eq!(
            module_of("<frozen importlib._bootstrap>"),
            "<frozen importlib._bootstrap>"
        );
    }
}
