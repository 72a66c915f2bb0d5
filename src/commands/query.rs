//! `py-spy query`: one SQL statement over a recording, its rows written as a table, CSV or
//! JSON.

use anyhow::Result;
use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use crate::analyze::sql::QuerySession;
use crate::render::query::QueryWriter;
use crate::render::table::TableFormat;

/// Run `sql` on the session at `path`, writing its rows to `out`; returns the row count.
pub fn run(path: &Path, sql: &str, format: TableFormat, out: &mut dyn Write) -> Result<u64> {
    let session = QuerySession::open(path)?;
    let writer = RefCell::new(QueryWriter::new(out, format));
    session.run(
        sql,
        |names| writer.borrow_mut().header(names),
        |values| writer.borrow_mut().row(values),
    )?;
    writer.into_inner().finish()
}
