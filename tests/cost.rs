//! What a sample costs in memory reads (process_vm_readv calls): a fixed handful, whatever
//! the depth. Reported, and bounded so a regression to per-frame reads fails.

mod common;

use common::*;
use py_spy::{Config, LockingStrategy, PythonSpy};

fn reads_per_sample(py: &Interpreter, depth: usize) -> f64 {
    let target = spawn(&py.path, "deep.py", &[&depth.to_string()]);
    let config = Config {
        blocking: LockingStrategy::NonBlocking,
        ..Config::default()
    };
    let mut spy = PythonSpy::new(target.pid, &config).unwrap();
    // Warm up: code objects and thread names are read once, then cached.
    for _ in 0..10 {
        spy.get_stack_traces().unwrap();
    }
    let before = spy.stats.reads;
    let n = 200;
    let mut exact = 0;
    for _ in 0..n {
        let traces = spy.get_stack_traces().unwrap();
        let t = &traces[0];
        if t.frames.len() == depth && t.frames[0].name == "busy_leaf" {
            exact += 1;
        }
    }
    let per_sample = (spy.stats.reads - before) as f64 / n as f64;
    assert!(
        exact * 100 >= n * 95,
        "{}: only {exact}/{n} samples had the full {depth}-frame stack",
        py.label
    );
    per_sample
}

#[test]
fn a_sample_costs_a_few_reads_at_any_depth() {
    on_each_supported("a_sample_costs_a_few_reads_at_any_depth", |py| {
        for depth in [30, 300] {
            let reads = reads_per_sample(py, depth);
            eprintln!(
                "[cost] {}: {depth} frames: {reads:.2} reads per sample",
                py.label
            );
            // Steady state: one batched read (thread list, GIL, thread states, each thread's
            // frame pointer and frame stack where it was last time, older chunks included,
            // and the re-check of cached code objects). A stack that moved costs one more.
            let bound = 1.2;
            assert!(
                reads <= bound,
                "{}: {reads} reads per sample at depth {depth}",
                py.label
            );
        }
    });
}
