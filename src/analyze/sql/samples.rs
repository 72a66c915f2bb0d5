//! The `samples` virtual table: one row per stored sample, decoded chunk by chunk while
//! SQLite reads it (never every sample in memory at once). Constraints on `time_us`,
//! `thread` and `pid` are handed to the scan, so that only chunks that can match are
//! decoded (by time) and only matching samples come out.

use rusqlite::ffi;
use rusqlite::vtab::{
    eponymous_only_module, Context, IndexConstraintOp, IndexInfo, Module, VTab, VTabConnection,
    VTabCursor, Values,
};
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::rc::Rc;

use crate::store::reader::SampleIter;
use crate::store::{Sample, SampleFilter, Session};

/// The table's columns, in order.
pub const COLUMNS: [&str; 14] = [
    "time_us",
    "pid",
    "thread",
    "thread_name",
    "os_thread_id",
    "stack",
    "error",
    "active",
    "gil",
    "truncated",
    "paused",
    "late_us",
    "process",
    "leaf_frame",
];
const TIME: c_int = 0;
const PID: c_int = 1;
const THREAD: c_int = 2;

pub fn module() -> &'static Module<'static, SamplesTab> {
    eponymous_only_module::<SamplesTab>()
}

#[repr(C)]
pub struct SamplesTab {
    base: ffi::sqlite3_vtab,
    session: Rc<Session>,
}

unsafe impl<'vtab> VTab<'vtab> for SamplesTab {
    /// The session, shared with the other tables.
    type Aux = Rc<Session>;
    type Cursor = SamplesCursor<'vtab>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Rc<Session>>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, SamplesTab)> {
        let session = aux.cloned().ok_or_else(|| module_error("no session"))?;
        let schema = format!("CREATE TABLE x({})", COLUMNS.join(", "));
        Ok((
            schema,
            SamplesTab {
                base: ffi::sqlite3_vtab::default(),
                session,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        // The usable constraints, as codes in `idx_str` in the order of their arguments.
        let mut codes = Vec::new();
        let mut used = Vec::new();
        for (i, c) in info.constraints().enumerate() {
            if !c.is_usable() {
                continue;
            }
            let code = match (c.column(), c.operator()) {
                (TIME, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ) => "t=",
                (TIME, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GT) => "t>",
                (TIME, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_GE) => "t>=",
                (TIME, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LT) => "t<",
                (TIME, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_LE) => "t<=",
                (THREAD, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ) => "th=",
                (PID, IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ) => "p=",
                _ => continue,
            };
            codes.push(code);
            used.push(i);
        }
        for (n, &i) in used.iter().enumerate() {
            let mut usage = info.constraint_usage(i);
            usage.set_argv_index(n as c_int + 1);
            // SQLite checks every row again: our filter only has to keep what matches.
            usage.set_omit(false);
        }
        let narrowing = codes.len() as f64;
        info.set_estimated_cost(1e9 / (1.0 + 10.0 * narrowing));
        info.set_idx_str(&codes.join(","));
        // Rows come in time order.
        let mut by_time = false;
        if let Some(o) = info.order_bys().next() {
            by_time = o.column() == TIME && !o.is_order_by_desc();
        }
        if by_time && info.num_of_order_by() == 1 {
            info.set_order_by_consumed(true);
        }
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<SamplesCursor<'vtab>> {
        Ok(SamplesCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            session: &self.session,
            iter: None,
            current: None,
            row: 0,
            phantom: PhantomData,
        })
    }
}

pub(super) fn module_error(message: &str) -> rusqlite::Error {
    rusqlite::Error::ModuleError(message.to_string())
}

#[repr(C)]
pub struct SamplesCursor<'vtab> {
    base: ffi::sqlite3_vtab_cursor,
    session: &'vtab Session,
    iter: Option<SampleIter<'vtab>>,
    current: Option<Sample>,
    row: i64,
    phantom: PhantomData<&'vtab SamplesTab>,
}

impl SamplesCursor<'_> {
    fn advance(&mut self) -> rusqlite::Result<()> {
        self.current = match self.iter.as_mut().and_then(Iterator::next) {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => return Err(module_error(&format!("{e:#}"))),
            None => None,
        };
        self.row += 1;
        Ok(())
    }
}

/// The filter that the constraints `codes` with values `args` describe; `None` when no row
/// can match.
fn filter_of(codes: &str, args: &Values<'_>) -> rusqlite::Result<Option<SampleFilter>> {
    let mut f = SampleFilter::default();
    let (mut from, mut to) = (0u64, u64::MAX);
    for (i, code) in codes.split(',').filter(|c| !c.is_empty()).enumerate() {
        let Some(v) = args.get::<Option<i64>>(i)? else {
            return Ok(None); // a comparison with NULL matches nothing
        };
        let u = v.max(0) as u64;
        match code {
            "t=" if v < 0 => return Ok(None),
            "t=" => (from, to) = (from.max(u), to.min(u)),
            "t>" => from = from.max(if v < 0 { 0 } else { u.saturating_add(1) }),
            "t>=" => from = from.max(u),
            "t<" if v <= 0 => return Ok(None),
            "t<" => to = to.min(u - 1),
            "t<=" if v < 0 => return Ok(None),
            "t<=" => to = to.min(u),
            "th=" => {
                let Ok(t) = u32::try_from(v) else {
                    return Ok(None);
                };
                match &f.threads {
                    Some(have) if have != &[t] => return Ok(None),
                    _ => f.threads = Some(vec![t]),
                }
            }
            "p=" => {
                let Ok(p) = i32::try_from(v) else {
                    return Ok(None);
                };
                match &f.pids {
                    Some(have) if have != &[p] => return Ok(None),
                    _ => f.pids = Some(vec![p]),
                }
            }
            _ => {}
        }
    }
    if from > to {
        return Ok(None);
    }
    f.from_us = (from > 0).then_some(from);
    f.to_us = (to < u64::MAX).then_some(to);
    Ok(Some(f))
}

unsafe impl VTabCursor for SamplesCursor<'_> {
    fn filter(
        &mut self,
        _idx_num: c_int,
        idx_str: Option<&str>,
        args: &Values<'_>,
    ) -> rusqlite::Result<()> {
        self.iter = match filter_of(idx_str.unwrap_or(""), args)? {
            Some(f) => Some(
                self.session
                    .samples(&f)
                    .map_err(|e| module_error(&format!("{e:#}")))?,
            ),
            None => None,
        };
        self.row = 0;
        self.advance()
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.advance()
    }

    fn eof(&self) -> bool {
        self.current.is_none()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let Some(s) = &self.current else {
            return ctx.set_result(&rusqlite::types::Null);
        };
        let thread = self.session.threads.get(s.thread as usize);
        let flag = |b: bool| b as i64;
        match COLUMNS.get(i as usize).copied().unwrap_or("") {
            "time_us" => ctx.set_result(&(s.t_us as i64)),
            "pid" => ctx.set_result(&self.session.pid_of(s.thread)),
            "thread" => ctx.set_result(&(s.thread as i64)),
            "thread_name" => ctx.set_result(&thread.and_then(|t| t.name_at(s.t_us))),
            "os_thread_id" => {
                ctx.set_result(&thread.and_then(|t| t.os_thread_id).map(|v| v as i64))
            }
            "stack" => ctx.set_result(&(!s.error()).then_some(s.stack as i64)),
            "error" => ctx.set_result(&s.error().then_some(s.stack as i64)),
            "active" => ctx.set_result(&flag(s.active())),
            "gil" => ctx.set_result(&flag(s.gil())),
            "truncated" => ctx.set_result(&flag(s.flags & crate::store::FLAG_TRUNCATED != 0)),
            "paused" => ctx.set_result(&flag(s.paused())),
            "late_us" => ctx.set_result(&(s.late_us as i64)),
            "process" => ctx.set_result(&thread.map(|t| t.process as i64)),
            // The innermost frame: what `stack_frames` gives at depth 0, without the join.
            "leaf_frame" => ctx.set_result(
                &(!s.error())
                    .then(|| self.session.stacks.get(s.stack as usize)?.first().copied())
                    .flatten()
                    .map(i64::from),
            ),
            _ => ctx.set_result(&rusqlite::types::Null),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.row)
    }
}
