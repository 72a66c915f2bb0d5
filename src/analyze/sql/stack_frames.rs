//! The `stack_frames` virtual table: the frames of every stored stack, one row each
//! (`stack`, `depth`, `frame`; depth 0 is the innermost frame), from the stacks the session
//! holds in memory. A constraint `stack = N` reads only that stack.

use rusqlite::ffi;
use rusqlite::vtab::{
    eponymous_only_module, Context, IndexConstraintOp, IndexInfo, Module, VTab, VTabConnection,
    VTabCursor, Values,
};
use std::marker::PhantomData;
use std::os::raw::c_int;
use std::rc::Rc;

use super::samples::module_error;
use crate::store::Session;

pub const COLUMNS: [&str; 3] = ["stack", "depth", "frame"];

pub fn module() -> &'static Module<'static, StackFramesTab> {
    eponymous_only_module::<StackFramesTab>()
}

#[repr(C)]
pub struct StackFramesTab {
    base: ffi::sqlite3_vtab,
    session: Rc<Session>,
}

unsafe impl<'vtab> VTab<'vtab> for StackFramesTab {
    type Aux = Rc<Session>;
    type Cursor = StackFramesCursor<'vtab>;

    fn connect(
        _db: &mut VTabConnection,
        aux: Option<&Rc<Session>>,
        _args: &[&[u8]],
    ) -> rusqlite::Result<(String, StackFramesTab)> {
        let session = aux.cloned().ok_or_else(|| module_error("no session"))?;
        Ok((
            format!("CREATE TABLE x({})", COLUMNS.join(", ")),
            StackFramesTab {
                base: ffi::sqlite3_vtab::default(),
                session,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<()> {
        let one_stack = info.constraints().enumerate().find_map(|(i, c)| {
            (c.is_usable()
                && c.column() == 0
                && c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ)
                .then_some(i)
        });
        match one_stack {
            Some(i) => {
                let mut usage = info.constraint_usage(i);
                usage.set_argv_index(1);
                usage.set_omit(true);
                info.set_idx_num(1);
                info.set_estimated_cost(10.0);
                info.set_estimated_rows(20);
            }
            None => {
                info.set_idx_num(0);
                info.set_estimated_cost(1e6);
            }
        }
        Ok(())
    }

    fn open(&'vtab mut self) -> rusqlite::Result<StackFramesCursor<'vtab>> {
        Ok(StackFramesCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            stacks: &self.session.stacks,
            stack: 0,
            end: 0,
            depth: 0,
            phantom: PhantomData,
        })
    }
}

#[repr(C)]
pub struct StackFramesCursor<'vtab> {
    base: ffi::sqlite3_vtab_cursor,
    stacks: &'vtab [Vec<u32>],
    /// The stack being read, the one after the last to read, and the frame in it.
    stack: usize,
    end: usize,
    depth: usize,
    phantom: PhantomData<&'vtab StackFramesTab>,
}

impl StackFramesCursor<'_> {
    /// Move past stacks with no frame left.
    fn settle(&mut self) {
        while self.stack < self.end && self.depth >= self.stacks[self.stack].len() {
            self.stack += 1;
            self.depth = 0;
        }
    }
}

unsafe impl VTabCursor for StackFramesCursor<'_> {
    fn filter(
        &mut self,
        idx_num: c_int,
        _: Option<&str>,
        args: &Values<'_>,
    ) -> rusqlite::Result<()> {
        (self.stack, self.end) = if idx_num == 1 {
            match args.get::<Option<i64>>(0)? {
                Some(n) if n >= 0 && (n as usize) < self.stacks.len() => {
                    (n as usize, n as usize + 1)
                }
                _ => (0, 0),
            }
        } else {
            (0, self.stacks.len())
        };
        self.depth = 0;
        self.settle();
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.depth += 1;
        self.settle();
        Ok(())
    }

    fn eof(&self) -> bool {
        self.stack >= self.end
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        match i {
            0 => ctx.set_result(&(self.stack as i64)),
            1 => ctx.set_result(&(self.depth as i64)),
            _ => ctx.set_result(&(self.stacks[self.stack][self.depth] as i64)),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(((self.stack as i64) << 16) | self.depth as i64)
    }
}
