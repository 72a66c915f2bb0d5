//! A fuzzer for the session reader and every renderer: a seeded mutation loop over a real
//! session (written through the store's writer), damaging it where a file can be damaged —
//! its bytes, and each table's rows through SQL (chunk data and counts, stack blobs, frame
//! text, thread and error ids, meta values). Every mutant is opened and rendered in all four
//! formats into a bounded sink: no panic, no hang, bounded output; a clear error or a render.
//!
//! `cargo test --release --test fuzz_session` runs a short pass (a few hundred mutants);
//! `PYSPY_FUZZ_SECONDS=3600` runs for an hour. A failing seed is printed: add it to `SEEDS`.

mod common;

use common::Rng;
use py_spy::analyze::View;
use py_spy::render::{render, RenderOptions};
use py_spy::store::{CaptureStart, SamplingOptions, Session, SessionWriter, Started};
use py_spy::store::{FrameKey, ThreadKey, FLAG_ACTIVE, FLAG_GIL};
use py_spy::FileFormat;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seeds that once found something, replayed first on every run.
const SEEDS: &[u64] = &[];
/// Most output a render of a damaged file may write (the clean session renders in far less).
const MAX_OUTPUT: usize = 64 << 20;
/// Longest a mutant may take to open and render in all formats.
const MAX_TIME: Duration = Duration::from_secs(20);

/// A sink that fails past [`MAX_OUTPUT`] bytes.
struct Bounded(usize);

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 > MAX_OUTPUT {
            return Err(std::io::Error::other("output bound reached"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("py-spy-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A clean session: three threads, deep and shallow stacks, errors, renames, several chunks.
fn seed_session(path: &Path) {
    let start = CaptureStart {
        tool_version: "fuzz".into(),
        command_line: "python app.py".into(),
        started: Started::Spawned,
        pid: 77,
        python: "3.12.1".into(),
        host: "fuzz".into(),
        options: SamplingOptions::default(),
    };
    let mut w = SessionWriter::create(path, &start).unwrap();
    w.add_process(77, None, "python app.py", Some("3.12.1"))
        .unwrap();
    let frame = |name: &str, line: i32| FrameKey {
        function: Arc::from(name),
        qualname: Arc::from(name),
        filename: Arc::from("/srv/app.py"),
        short_filename: Some(Arc::from("app.py")),
        line,
        first_line: 1,
        module: None,
    };
    for tick in 0..3000u64 {
        for t in 0..3u64 {
            let key = ThreadKey {
                pid: 77,
                thread_id: t,
            };
            let depth = 1 + ((tick + t) % 40) as i32;
            let stack: Vec<FrameKey> = (0..depth).map(|d| frame(&format!("f{d}"), d + 1)).collect();
            let name = if tick < 1500 { "worker" } else { "renamed" };
            let flags = if t == 0 {
                FLAG_ACTIVE | FLAG_GIL
            } else {
                (tick % 2) as u8
            };
            if tick % 97 == 5 {
                w.add_error_sample(
                    tick * 1000,
                    key,
                    Some(100 + t),
                    Some(name),
                    "stack_changed",
                    "moved",
                    &[],
                    flags,
                    0,
                )
                .unwrap();
            } else {
                w.add_sample(
                    tick * 1000,
                    key,
                    Some(100 + t),
                    Some(name),
                    &stack,
                    flags,
                    0,
                )
                .unwrap();
            }
        }
        if tick % 700 == 0 {
            w.flush().unwrap();
        }
    }
    w.finish().unwrap();
}

/// Damage `path` one way, chosen by `rng`.
fn mutate(path: &Path, rng: &mut Rng) {
    if rng.below(4) == 0 {
        // Raw bytes: flips, overwrites, truncation.
        let mut bytes = std::fs::read(path).unwrap();
        match rng.below(3) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = rng.below(bytes.len() as u64) as usize;
                let end = (at + 1 + rng.below(4096) as usize).min(bytes.len());
                for b in &mut bytes[at..end] {
                    *b = rng.next() as u8;
                }
            }
            _ => bytes.truncate(rng.below(bytes.len() as u64) as usize),
        }
        std::fs::write(path, bytes).unwrap();
        return;
    }
    let conn = rusqlite::Connection::open(path).unwrap();
    let n = rng.next() as i64;
    let small = rng.below(40) as i64 - 5;
    let blob: Vec<u8> = (0..rng.below(2048)).map(|_| rng.next() as u8).collect();
    let sql: &[(&str, &dyn rusqlite::ToSql)] = &[
        ("UPDATE chunks SET data = ?1 WHERE id = (SELECT id FROM chunks ORDER BY random() LIMIT 1)", &blob),
        ("UPDATE chunks SET samples = ?1 WHERE id = (SELECT id FROM chunks ORDER BY random() LIMIT 1)", &n),
        ("UPDATE chunks SET samples = samples + ?1", &small),
        ("UPDATE chunks SET start_us = ?1 WHERE id = (SELECT id FROM chunks ORDER BY random() LIMIT 1)", &n),
        ("UPDATE stacks SET frames = ?1 WHERE id = (SELECT id FROM stacks ORDER BY random() LIMIT 1)", &blob),
        ("UPDATE frames SET function = ?1 WHERE id = (SELECT id FROM frames ORDER BY random() LIMIT 1)", &blob),
        ("UPDATE frames SET line = ?1", &n),
        ("UPDATE threads SET process = ?1", &small),
        ("UPDATE threads SET id = id + ?1", &small),
        ("UPDATE errors SET stack = ?1", &n),
        ("UPDATE meta SET value = ?1 WHERE key = 'rate'", &n),
        ("UPDATE meta SET value = ?1 WHERE key = 'options'", &blob),
        ("DELETE FROM frames WHERE id = (SELECT MAX(id) FROM frames) - ?1", &small),
        ("UPDATE thread_names SET since_us = ?1", &n),
    ];
    let (statement, value) = sql[rng.below(sql.len() as u64) as usize];
    let _ = conn.execute(statement, [value]);
}

/// Open and render `path` in every format; panics (with the seed) on a panic or a bound.
/// Returns whether it opened, and the renders that succeeded.
fn exercise(path: &Path, seed: u64) -> (bool, u64) {
    let begin = Instant::now();
    let result = std::panic::catch_unwind(|| {
        let Ok(session) = Session::open(path) else {
            return (false, 0);
        };
        let mut rendered = 0;
        for format in FileFormat::ALL {
            for view in [
                View::default(),
                View {
                    idle: true,
                    errors: true,
                    thread_frames: true,
                    ..View::default()
                },
            ] {
                let opts = RenderOptions {
                    format,
                    view,
                    title: None,
                };
                rendered += render(&session, &opts, &mut Bounded(0)).is_ok() as u64;
            }
        }
        (true, rendered)
    });
    let Ok(outcome) = result else {
        panic!("seed {seed}: panicked");
    };
    assert!(
        begin.elapsed() < MAX_TIME,
        "seed {seed}: took {:?}",
        begin.elapsed()
    );
    outcome
}

#[test]
fn damaged_sessions_never_panic_hang_or_overflow() {
    let dir = dir();
    let clean = dir.join("clean.pyspy");
    seed_session(&clean);
    let budget = std::env::var("PYSPY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let begin = Instant::now();
    let (mut tried, mut opened, mut rendered) = (0u64, 0u64, 0u64);
    let random_seeds = (1u64..).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for seed in SEEDS.iter().copied().chain(random_seeds) {
        match budget {
            Some(b) if begin.elapsed() >= b => break,
            None if tried >= 300 => break,
            _ => {}
        }
        let mutant = dir.join("mutant.pyspy");
        std::fs::copy(&clean, &mutant).unwrap();
        let mut rng = Rng(seed);
        for _ in 0..1 + rng.below(3) {
            mutate(&mutant, &mut rng);
        }
        let (open, renders) = exercise(&mutant, seed);
        tried += 1;
        opened += open as u64;
        rendered += renders;
    }
    println!(
        "{tried} damaged sessions: {opened} opened, {rendered} renders of 8 each succeeded; \
         no panic, no bound passed"
    );
    // The damage must reach the renderers, not only the checks at open.
    assert!(opened * 4 >= tried, "only {opened} of {tried} opened");
    let _ = std::fs::remove_dir_all(&dir);
}
