//! py-spy 0.4's library entry points for dumping, used as code written against py-spy's
//! crate uses them: `py_spy::dump::{print_traces, write_traces}` with py-spy's signatures.

mod common;

use common::*;
use py_spy::{Config, Pid};

/// py-spy 0.4's signatures, checked by the compiler.
type Print = fn(Pid, &Config, Option<Pid>) -> Result<(), anyhow::Error>;
type Write = fn(&mut Vec<u8>, Pid, &Config, Option<Pid>) -> Result<(), anyhow::Error>;

#[test]
fn write_traces_finds_each_process_once() {
    let _: Print = py_spy::dump::print_traces;
    let _: Write = py_spy::dump::write_traces::<Vec<u8>>;
    let py = first_supported();
    let target = spawn(&py.path, "tree.py", &[]);
    let pids = target.printed("PIDS").expect("the tree's pids");
    let child = pids["child"].as_i64().unwrap() as Pid;
    let grandchild = pids["grandchild"].as_i64().unwrap() as Pid;

    let config = Config {
        subprocesses: true,
        ..Config::default()
    };
    let mut out = Vec::new();
    py_spy::dump::write_traces(&mut out, target.pid as Pid, &config, None)
        .unwrap_or_else(|e| panic!("{}: {e:#}", py.label));
    let text = String::from_utf8(out).unwrap();
    for pid in [target.pid as Pid, child, grandchild] {
        let header = format!("Process {pid}: ");
        assert_eq!(
            text.lines().filter(|l| l.starts_with(&header)).count(),
            1,
            "{}: {text}",
            py.label
        );
    }

    // JSON, and a parent named by the caller, for a child alone.
    let config = Config {
        dump_json: true,
        ..Config::default()
    };
    let mut out = Vec::new();
    py_spy::dump::write_traces(&mut out, child, &config, Some(target.pid as Pid)).unwrap();
    let traces: Vec<py_spy::StackTrace> = serde_json::from_slice(&out).unwrap();
    assert_eq!(traces.len(), 2);
    assert!(traces.iter().all(|t| t.pid == child));
    let mut out = Vec::new();
    let config = Config::default();
    py_spy::dump::write_traces(&mut out, grandchild, &config, Some(child)).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.lines()
            .nth(2)
            .unwrap()
            .starts_with(&format!("Parent Process {child}: ")),
        "{text}"
    );
}
