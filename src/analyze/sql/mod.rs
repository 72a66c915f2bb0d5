//! SQL over a recording (`py-spy query`): a read-only SQLite connection to the session file
//! with two virtual tables over what the file stores compressed — [`samples`] (one row per
//! sample, decoded chunk by chunk while SQLite reads it) and [`stack_frames`] (one row per
//! frame of each stack) — beside the file's own `frames`, `stacks`, `threads`,
//! `thread_names`, `processes`, `errors` and `meta` tables.
//!
//! Nothing a query does can change the file: it is opened read-only, with `query_only` set,
//! and an authorizer refuses every statement that would write, attach another database or
//! change a setting (reading pragmas such as `table_info` stay allowed).

pub mod samples;
pub mod stack_frames;

use anyhow::{bail, Context, Result};
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::rc::Rc;

use crate::store::Session;

/// A value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// Pragmas a query may use: they only read.
const READING_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "database_list",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
];

/// A session opened for queries.
pub struct QuerySession {
    conn: Connection,
}

impl QuerySession {
    pub fn open(path: &Path) -> Result<QuerySession> {
        // Checks that it is a session file of a version we read, and loads its tables once.
        let session = Rc::new(Session::open(path)?);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("could not open {} for queries", path.display()))?;
        conn.create_module("samples", samples::module(), Some(session.clone()))?;
        conn.create_module("stack_frames", stack_frames::module(), Some(session))?;
        conn.pragma_update(None, "query_only", true)?;
        conn.authorizer(Some(authorize));
        Ok(QuerySession { conn })
    }

    /// Run one statement; `row` is called with the column names once, then with each row.
    pub fn run(
        &self,
        sql: &str,
        mut header: impl FnMut(&[String]) -> Result<()>,
        mut row: impl FnMut(&[SqlValue]) -> Result<()>,
    ) -> Result<()> {
        let mut batch = rusqlite::Batch::new(&self.conn, sql);
        let Some(mut stmt) = batch.next().map_err(explain)? else {
            bail!("no SQL statement given");
        };
        if !matches!(batch.next(), Ok(None)) {
            bail!("one SQL statement at a time, please (this holds more than one)");
        }
        if !stmt.readonly() {
            bail!("only statements that read are allowed: the session file is never changed");
        }
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        header(&names)?;
        let n = names.len();
        let mut rows = stmt.query([]).map_err(explain)?;
        let mut values = Vec::with_capacity(n);
        while let Some(r) = rows.next().map_err(explain)? {
            values.clear();
            for i in 0..n {
                values.push(match r.get_ref(i)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(v) => SqlValue::Integer(v),
                    ValueRef::Real(v) => SqlValue::Real(v),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                });
            }
            row(&values)?;
        }
        Ok(())
    }
}

/// Allow what reads; refuse what writes, attaches or changes a setting.
fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive => Authorization::Allow,
        // Reading pragmas, as statements or table-valued functions (their argument names
        // what to read).
        AuthAction::Pragma { pragma_name, .. }
            if READING_PRAGMAS.contains(&pragma_name.to_ascii_lowercase().as_str()) =>
        {
            Authorization::Allow
        }
        _ => Authorization::Deny,
    }
}

/// SQLite's error, with what a refusal means.
fn explain(e: rusqlite::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("not authorized") {
        anyhow::anyhow!(
            "{text}: queries may only read (no writing, attaching or changing settings); the \
             session file is never changed"
        )
    } else {
        anyhow::Error::from(e)
    }
}
