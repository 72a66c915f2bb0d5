//! Benchmark the session file and the renderers on a large session (not a timed test):
//! writes N samples (default 1 million) through `SessionWriter` with a realistic shape, then
//! renders the file in every format, and prints bytes per sample, writer CPU per sample and
//! render times.
//!
//!     cargo run --release --example session_bench -- [SAMPLES] [DIR] [--write-only]
//!
//! `--write-only` writes the session and stops (a large file for `query`/`analyze`
//! figures, without outputs of gigabytes).
//!
//! The shape: 10 threads, 30-frame stacks built from 300 functions, the leaf and the two
//! frames above it varying over 40 lines each, thread 0 hot (half the samples), the others
//! evenly spread; every thread sampled each tick at 100 Hz; half the threads idle. Thread
//! names change once. This gives thousands of distinct stacks, like a real service.

use anyhow::Result;
use py_spy::analyze::View;
use py_spy::render::{render, RenderOptions};
use py_spy::store::{CaptureStart, SamplingOptions, Started};
use py_spy::store::{FrameKey, Session, SessionWriter, ThreadKey, FLAG_ACTIVE, FLAG_GIL};
use py_spy::FileFormat;
use std::sync::Arc;
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// xorshift: reproducible choices.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(
        args.get(2)
            .cloned()
            .unwrap_or_else(|| "target/session-bench".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.pyspy");
    let write_only = args.iter().any(|a| a == "--write-only");

    let files: Vec<Arc<str>> = (0..20)
        .map(|i| Arc::from(format!("/srv/app/pkg{i}/module{i}.py")))
        .collect();
    let names: Vec<Arc<str>> = (0..300).map(|i| Arc::from(format!("func_{i}"))).collect();
    let frame = |f: usize, line: i32| FrameKey {
        function: names[f].clone(),
        qualname: Arc::from(format!("Handler{}.{}", f % 7, names[f])),
        filename: files[f % files.len()].clone(),
        short_filename: Some(Arc::from(format!("pkg{}/module{}.py", f % 20, f % 20))),
        line,
        first_line: (f as i32 % 50) * 10 + 1,
        module: None,
    };

    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let start = CaptureStart {
        tool_version: env!("CARGO_PKG_VERSION").into(),
        command_line: "python service.py".into(),
        started: Started::Attached,
        pid: 1234,
        python: "3.11.7".into(),
        host: "bench".into(),
        options: SamplingOptions::default(),
    };
    let mut w = SessionWriter::create(&path, &start)?;
    w.add_process(1234, None, "python service.py", Some("3.11.7"))?;
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let threads = 10u64;
    let mut ids = Vec::with_capacity(30);
    let mut keys = Vec::with_capacity(30);
    let mut fl_keys: Vec<(usize, i32)> = Vec::with_capacity(30);
    let mut cache: std::collections::HashMap<(usize, i32), u32> = Default::default();
    let placeholder = frame(0, 0);
    let mut written = 0u64;
    let mut tick = 0u64;
    while written < n {
        let t_us = tick * 10_000;
        for th in 0..threads {
            if written >= n {
                break;
            }
            // Thread 0 is sampled on every tick like the others but is the hot one: its
            // stacks vary the most.
            let base = (th as usize * 29) % 270;
            keys.clear();
            fl_keys.clear();
            for depth in 0..30usize {
                let f = base + depth % 30;
                let line = if depth < 3 {
                    let spread = if th == 0 { 40 } else { 8 };
                    (f as i32 % 50) * 10 + 2 + rng.below(spread) as i32
                } else {
                    (f as i32 % 50) * 10 + 5
                };
                fl_keys.push((f, line));
                if !cache.contains_key(&(f, line)) {
                    keys.push(frame(f, line));
                } else {
                    keys.push(placeholder.clone());
                }
            }
            // As `capture` does: frame ids cached by (code object, line), so the strings of a
            // frame are hashed only the first time it is seen.
            ids.clear();
            for (k, fl) in keys.iter().zip(&fl_keys) {
                let id = match cache.get(fl) {
                    Some(id) => *id,
                    None => {
                        let id = w.intern_frame(k)?;
                        cache.insert(*fl, id);
                        id
                    }
                };
                ids.push(id);
            }
            let active = th < threads / 2;
            let name = if tick < 3000 {
                format!("worker-{th}")
            } else {
                format!("worker-{th}-renamed")
            };
            w.add_sample_ids(
                t_us,
                ThreadKey {
                    pid: 1234,
                    thread_id: 0x7f00_0000_0000 + th * 0x1000,
                },
                Some(1234 + th),
                Some(&name),
                &ids,
                if active { FLAG_ACTIVE } else { 0 } | if th == 0 { FLAG_GIL } else { 0 },
                0,
            )?;
            written += 1;
        }
        tick += 1;
    }
    let stats = w.finish()?;
    let write_cpu = cpu_seconds() - cpu0;
    let write_wall = t0.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path)?.len();
    println!(
        "session: {written} samples, {} frames, {} stacks, {} chunks",
        stats.frames, stats.stacks, stats.chunks
    );
    println!(
        "  file {:.1} MiB = {:.2} bytes/sample (sample chunks alone {:.2} bytes/sample)",
        size as f64 / (1 << 20) as f64,
        size as f64 / written as f64,
        stats.chunk_bytes as f64 / written as f64
    );
    println!(
        "  writing: {:.2} s wall, {:.3} µs CPU per sample (interning, encoding, compression, SQLite)",
        write_wall,
        write_cpu * 1e6 / written as f64
    );

    let session = Session::open(&path)?;
    if write_only {
        return Ok(());
    }
    for (format, view) in [
        (FileFormat::raw, View::default()),
        (
            FileFormat::raw,
            View {
                idle: true,
                thread_frames: true,
                ..View::default()
            },
        ),
        (
            FileFormat::flamegraph,
            View {
                idle: true,
                ..View::default()
            },
        ),
        (
            FileFormat::speedscope,
            View {
                idle: true,
                ..View::default()
            },
        ),
        (
            FileFormat::chrometrace,
            View {
                idle: true,
                ..View::default()
            },
        ),
    ] {
        let out = dir.join(format!("out-{format:?}"));
        let opts = RenderOptions {
            format,
            view: view.clone(),
            title: Some("session_bench".into()),
        };
        let t = Instant::now();
        let cpu = cpu_seconds();
        let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
        let summary = render(&session, &opts, &mut f)?;
        drop(f);
        println!(
            "render {:<11} idle={:<5} threads={:<5}: {:>6.2} s wall, {:>6.2} s CPU, {} samples, output {:.1} MiB",
            format!("{format:?}"),
            view.idle,
            view.thread_frames,
            t.elapsed().as_secs_f64(),
            cpu_seconds() - cpu,
            summary.samples,
            std::fs::metadata(&out)?.len() as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
