//! Per-thread activity over time (`analyze --timeline`): for each thread and each time
//! bucket, how many samples there were and how many of them were running, waiting and
//! holding the GIL.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

use super::replay::{select_threads, thread_title};
use crate::store::{SampleFilter, Session};

/// One thread in one bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    pub samples: u64,
    pub active: u64,
    pub gil: u64,
    /// Samples whose stack could not be read (their activity is still counted).
    pub errors: u64,
}

/// The timeline: `cells[thread][bucket]`.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub bucket_s: f64,
    pub buckets: usize,
    /// Thread labels (`NAME (ID)`), in the session's order.
    pub threads: Vec<String>,
    pub cells: Vec<Vec<Cell>>,
}

/// Most buckets a timeline may have (a tiny bucket over a long capture).
pub const MAX_BUCKETS: usize = 100_000;

/// The timeline of `session` with buckets of `bucket_s` seconds (by default the capture cut
/// in 60), only for the threads matching `threads` (all when empty).
pub fn timeline(session: &Session, bucket_s: Option<f64>, threads: &[String]) -> Result<Timeline> {
    let span_us = match session.meta.end.as_ref() {
        Some(end) => end.end_us,
        None => session.time_span_us()?.map_or(0, |(_, last)| last),
    }
    .max(1);
    let bucket_s = match bucket_s {
        Some(b) if !(b.is_finite() && b > 0.0) => {
            bail!("--bucket must be a positive number of seconds (got {b})")
        }
        Some(b) => b,
        None => (span_us as f64 / 1e6 / 60.0).max(0.001),
    };
    let bucket_us = (bucket_s * 1e6).max(1.0);
    let buckets = ((span_us as f64 / bucket_us).ceil() as usize).max(1);
    if buckets > MAX_BUCKETS {
        bail!(
            "--bucket {bucket_s} s makes {buckets} buckets over {:.1} s; at most {MAX_BUCKETS}",
            span_us as f64 / 1e6
        );
    }
    let filter = SampleFilter {
        threads: select_threads(session, threads)?,
        ..SampleFilter::default()
    };
    let mut per_thread: BTreeMap<u32, Vec<Cell>> = BTreeMap::new();
    for s in session.samples(&filter)? {
        let s = s.context("could not read the session's samples")?;
        let b = ((s.t_us as f64 / bucket_us) as usize).min(buckets - 1);
        let row = per_thread
            .entry(s.thread)
            .or_insert_with(|| vec![Cell::default(); buckets]);
        let cell = &mut row[b];
        cell.samples += 1;
        cell.active += s.active() as u64;
        cell.gil += s.gil() as u64;
        cell.errors += s.error() as u64;
    }
    let mut labels = Vec::new();
    let mut cells = Vec::new();
    for (thread, row) in per_thread {
        let label = session.threads.get(thread as usize).map_or_else(
            || format!("thread {thread}"),
            |t| thread_title(t, t.names.last().map(|(_, name)| name.as_str())),
        );
        labels.push(label);
        cells.push(row);
    }
    Ok(Timeline {
        bucket_s,
        buckets,
        threads: labels,
        cells,
    })
}
