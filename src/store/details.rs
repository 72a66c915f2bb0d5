//! Snapshot details (format version 3): what `dump` shows beyond a sample's stack, kept for
//! the snapshots that asked for it. For each frame of such a snapshot, whether the
//! interpreter entered it from C (`is_entry`, `is_shim_entry`), and its local variables when
//! `--locals` was given. Samples say where time went; these say what one moment looked like,
//! so `analyze --dump` prints a stored snapshot exactly as `dump` printed it live.

use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use std::collections::HashMap;

use crate::model::trace::LocalVariable;

/// Most local variables read back for one snapshot: a dump shows a few hundred; more is a
/// damaged or crafted file, and is cut rather than read into memory.
const MAX_LOCALS: usize = 1 << 20;

/// One frame of a detailed snapshot, in the order of the sample's stack (innermost first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameDetail {
    pub is_entry: bool,
    pub is_shim_entry: bool,
    /// The frame's local variables, arguments first, when they were read.
    pub locals: Option<Vec<LocalVariable>>,
}

/// The details of one snapshot: per thread row, its frames' details by depth (innermost 0).
pub type SnapshotDetails = HashMap<u32, Vec<FrameDetail>>;

/// Write one thread's frame details at `t_us` (inside the writer's open transaction).
pub(super) fn insert(
    conn: &Connection,
    t_us: u64,
    thread: u32,
    frames: &[FrameDetail],
) -> Result<()> {
    let mut frame_row = conn.prepare_cached(
        "INSERT OR REPLACE INTO snapshot_frames (t_us, thread, depth, is_entry, is_shim_entry, \
         locals) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut local_row = conn.prepare_cached(
        "INSERT OR REPLACE INTO snapshot_locals (t_us, thread, depth, position, name, arg, addr, \
         repr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (depth, f) in frames.iter().enumerate() {
        frame_row.execute(params![
            t_us as i64,
            thread,
            depth as i64,
            f.is_entry,
            f.is_shim_entry,
            f.locals.as_ref().map(|l| l.len() as i64)
        ])?;
        for (position, local) in f.locals.iter().flatten().enumerate() {
            local_row.execute(params![
                t_us as i64,
                thread,
                depth as i64,
                position as i64,
                local.name,
                local.arg,
                local.addr as i64,
                local.repr
            ])?;
        }
    }
    Ok(())
}

/// The details stored for the snapshot at `t_us` (empty when it has none, or the file is
/// older than version 3).
pub(super) fn read(conn: &Connection, version: i32, t_us: u64) -> Result<SnapshotDetails> {
    let mut out = SnapshotDetails::new();
    if version < 3 {
        return Ok(out);
    }
    let t = t_us.min(i64::MAX as u64) as i64;
    let mut frames = conn.prepare(
        "SELECT thread, depth, is_entry, is_shim_entry, locals IS NOT NULL FROM snapshot_frames \
         WHERE t_us = ?1 \
         ORDER BY thread, depth",
    )?;
    let rows = frames.query_map(params![t], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, bool>(3)?,
            r.get::<_, bool>(4)?,
        ))
    })?;
    for row in rows {
        let (thread, depth, is_entry, is_shim_entry, has_locals) =
            row.context("could not read the snapshot's frames (damaged file?)")?;
        let (Ok(thread), Ok(depth)) = (u32::try_from(thread), usize::try_from(depth)) else {
            continue;
        };
        if depth >= super::reader::MAX_STACK_DEPTH {
            continue;
        }
        let list = out.entry(thread).or_default();
        if list.len() <= depth {
            list.resize(depth + 1, FrameDetail::default());
        }
        list[depth].is_entry = is_entry;
        list[depth].is_shim_entry = is_shim_entry;
        list[depth].locals = has_locals.then(Vec::new);
    }
    let mut locals = conn.prepare(
        "SELECT thread, depth, name, arg, addr, repr FROM snapshot_locals WHERE t_us = ?1 \
         ORDER BY thread, depth, position LIMIT ?2",
    )?;
    let rows = locals.query_map(params![t, MAX_LOCALS as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            LocalVariable {
                name: r.get(2)?,
                arg: r.get(3)?,
                addr: r.get::<_, i64>(4)? as usize,
                repr: r.get(5)?,
            },
        ))
    })?;
    for row in rows {
        let (thread, depth, local) =
            row.context("could not read the snapshot's local variables (damaged file?)")?;
        let (Ok(thread), Ok(depth)) = (u32::try_from(thread), usize::try_from(depth)) else {
            continue;
        };
        let frame = out.get_mut(&thread).and_then(|l| l.get_mut(depth));
        if let Some(list) = frame.and_then(|f| f.locals.as_mut()) {
            list.push(local);
        }
    }
    Ok(out)
}
