//! The library's `Sampler`: yields full stacks at the requested rate and stops at the
//! duration or when the target exits.

mod common;

use common::*;
use py_spy::sampler::Sampler;
use py_spy::{Config, LockingStrategy, RecordDuration};

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
    let samples: Vec<_> = sampler.collect();
    // -d counts samples (rate x seconds), as in py-spy; ticks missed under load are skipped.
    assert!(
        !samples.is_empty() && samples.len() <= 200,
        "{} samples",
        samples.len()
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
    // The iterator ends (it does not hang or panic); errors before the end are reported.
    let rest: Vec<_> = sampler.collect();
    assert!(rest.len() < 10_000);
}
