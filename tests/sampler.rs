//! The library's `Sampler`: yields full stacks at the requested rate and stops at the
//! duration or when the target exits.

mod common;

use common::*;
use py_spy::sampler::{Sample, Sampler};
use py_spy::{Config, LockingStrategy, RecordDuration};
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

/// Every sample `sampler` yields, with the time it took; fails if the iterator has not
/// ended after `deadline` (a sampler that hangs fails here instead of hanging the tests).
fn collect_within(sampler: Sampler, deadline: Duration) -> (Vec<Sample>, Duration) {
    let (tx, rx) = channel();
    let begin = Instant::now();
    std::thread::spawn(move || {
        let samples: Vec<Sample> = sampler.collect();
        let _ = tx.send(samples);
    });
    let samples = rx
        .recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("the sampler had not ended after {deadline:?}"));
    (samples, begin.elapsed())
}

fn config(seconds: Option<u64>) -> Config {
    Config {
        blocking: LockingStrategy::NonBlocking,
        sampling_rate: 200,
        duration: seconds.map_or(RecordDuration::Unlimited, RecordDuration::Seconds),
        ..Config::default()
    }
}

#[test]
fn samples_full_stacks_until_the_duration() {
    let python = first_supported();
    let target = spawn(&python.path, "deep.py", &["30"]);
    let sampler = Sampler::new(target.pid, &config(Some(1))).unwrap();
    assert_eq!(
        sampler.version.as_deref().map(|v| v.starts_with("3.11")),
        Some(true)
    );
    let (samples, took) = collect_within(sampler, Duration::from_secs(5));
    // -d counts samples (rate x seconds), as in py-spy; ticks missed under load are skipped,
    // so the count is at most 200 and the time about a second.
    assert!(samples.len() <= 200, "{} samples", samples.len());
    enough_snapshots(samples.len() as u64, 200, "Sampler at 200 Hz for 1 s");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "1 s at 200 Hz took {took:?}"
    );
    // The rate: samples come one period apart on average, not in bursts or slower.
    let achieved = samples.len() as f64 / took.as_secs_f64();
    assert!(
        (50.0..=230.0).contains(&achieved),
        "{achieved:.0} samples/s for 200 requested"
    );
    let full = samples
        .iter()
        .filter(|s| s.traces.len() == 1 && s.traces[0].frames.len() == 30)
        .count();
    assert!(
        full * 100 >= samples.len() * 95,
        "{full} of {} full",
        samples.len()
    );
    assert!(samples
        .iter()
        .all(|s| s.traces.iter().all(|t| t.frames[0].name == "busy_leaf")));
}

#[test]
fn stops_when_the_target_exits() {
    let python = first_supported();
    let target = spawn(&python.path, "deep.py", &["30"]);
    let mut sampler = Sampler::new(target.pid, &config(None)).unwrap();
    assert!(sampler.next().is_some());
    drop(target);
    // The iterator ends soon (it does not hang or panic); errors before the end are reported.
    let (rest, took) = collect_within(sampler, Duration::from_secs(5));
    assert!(
        took < Duration::from_secs(2),
        "ended {took:?} after the exit"
    );
    assert!(rest.len() < 400, "{} samples after the exit", rest.len());
}
