//! Benchmark one thing: the profiler's CPU time and memory reads per sample against a live
//! process, with the library API (no output, no storage).
//!
//!     cargo run --release --example sample_cost -- PID [SAMPLES] [--blocking] [--raw]
//!
//! Prints µs of CPU (user+sys of this process) per sample, reads (process_vm_readv calls)
//! per sample, and frames per sample.

use py_spy::{Config, LockingStrategy, PythonSpy};

fn cpu_seconds() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(pid) = args.get(1).and_then(|a| a.parse().ok()) else {
        eprintln!("usage: sample_cost PID [SAMPLES] [--blocking]");
        std::process::exit(2);
    };
    let samples: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let blocking = args.iter().any(|a| a == "--blocking");
    // --raw: the capture path (`PythonSpy::sample`, no strings built), as `capture` uses it.
    let raw = args.iter().any(|a| a == "--raw");
    // --sleep-us N: sleep between samples, as a sampler does (cold caches, wake-ups).
    let sleep_us: u64 = args
        .iter()
        .position(|a| a == "--sleep-us")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let config = Config {
        blocking: if blocking {
            LockingStrategy::Lock
        } else {
            LockingStrategy::NonBlocking
        },
        ..Config::default()
    };
    let mut spy = PythonSpy::new(pid, &config)?;
    for _ in 0..20 {
        spy.get_stack_traces()?;
    }
    let (reads0, cpu0) = (spy.stats.reads, cpu_seconds());
    let mut frames = 0usize;
    let mut stacks = 0usize;
    let mut empty = 0usize;
    let stats0 = spy.stats.clone();
    let mut threads = Vec::new();
    for _ in 0..samples {
        if sleep_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(sleep_us));
        }
        if raw {
            spy.sample(&mut threads)?;
            for t in &threads {
                frames += t.frames.len();
                stacks += 1;
                empty += (t.frames.is_empty() && t.fault.is_none()) as usize;
            }
        } else {
            for t in spy.get_stack_traces()? {
                frames += t.frames.len();
                stacks += 1;
                empty += t.frames.is_empty() as usize;
            }
        }
    }
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{} snapshots ({} stacks, {} mode): {:.1} µs CPU per stack, {:.2} reads per snapshot, {:.1} frames per stack",
        samples,
        stacks,
        match (blocking, raw) {
            (true, false) => "blocking",
            (false, false) => "nonblocking",
            (true, true) => "blocking, raw",
            (false, true) => "nonblocking, raw",
        },
        cpu * 1e6 / stacks.max(1) as f64,
        (spy.stats.reads - reads0) as f64 / samples as f64,
        frames as f64 / stacks.max(1) as f64
    );
    let s = &spy.stats;
    println!(
        "empty stacks {empty}, code loads {}, invalidations {}, bad frames {}, truncated {}, retries {}, faults {}",
        s.code_loads - stats0.code_loads,
        s.code_invalidations - stats0.code_invalidations,
        s.bad_frames - stats0.bad_frames,
        s.truncated_stacks - stats0.truncated_stacks,
        s.retries - stats0.retries,
        s.faults - stats0.faults,
    );
    Ok(())
}
