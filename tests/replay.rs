//! Analyze and render on synthetic sessions, with no live Python: a session written through
//! the store's writer with stacks, flags and times chosen here, replayed through every view
//! choice and format, and compared with the counts that must come out.

use py_spy::analyze::View;
use py_spy::model::intern::{FrameKey, ThreadKey};
use py_spy::render::{render, RenderOptions};
use py_spy::store::{CaptureStart, SamplingOptions, Session, SessionWriter, Started};
use py_spy::store::{FLAG_ACTIVE, FLAG_GIL};
use py_spy::{FileFormat, LineNo};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

fn frame(function: &str, file: &str, line: i32, first_line: i32) -> FrameKey {
    FrameKey {
        function: Arc::from(function),
        qualname: Arc::from(function),
        filename: Arc::from(format!("/srv/app/{file}")),
        short_filename: Some(Arc::from(file)),
        line,
        first_line,
        module: None,
    }
}

/// One second at 100 Hz of a two-thread program, innermost frame first:
/// - `MainThread` (id 1, OS id 101): ticks 0–59 in `leaf` (line 10; 12 on odd ticks) under
///   `mid` and `main`, running and holding the GIL; ticks 60–99 waiting in `wait`, idle.
/// - `worker` (id 2, OS id 102): every tick in `rec` → `rec` → `run`, running without the
///   GIL; renamed `worker-renamed` from tick 50.
fn session(name: &str) -> (Session, PathBuf) {
    let dir = std::env::temp_dir().join(format!("py-spy-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let start = CaptureStart {
        tool_version: "test".into(),
        command_line: "python app.py".into(),
        started: Started::Spawned,
        pid: 4242,
        python: "3.12.1".into(),
        host: "test".into(),
        options: SamplingOptions::default(),
    };
    let mut w = SessionWriter::create(&path, &start).unwrap();
    w.add_process(4242, None, "python app.py", Some("3.12.1"))
        .unwrap();
    let main_t = ThreadKey {
        pid: 4242,
        thread_id: 1,
    };
    let worker_t = ThreadKey {
        pid: 4242,
        thread_id: 2,
    };
    let main = frame("main", "app.py", 30, 28);
    let mid = frame("mid", "app.py", 20, 18);
    let wait = frame("wait", "pkg/sync.py", 5, 1);
    let rec = frame("rec", "pkg/work.py", 7, 6);
    let run = frame("run", "pkg/work.py", 3, 2);
    for tick in 0..100u64 {
        let t = tick * 10_000;
        let (stack, flags) = if tick < 60 {
            let line = if tick % 2 == 1 { 12 } else { 10 };
            (
                vec![frame("leaf", "app.py", line, 9), mid.clone(), main.clone()],
                FLAG_ACTIVE | FLAG_GIL,
            )
        } else {
            (vec![wait.clone(), frame("main", "app.py", 31, 28)], 0)
        };
        w.add_sample(t, main_t, Some(101), Some("MainThread"), &stack, flags, 0)
            .unwrap();
        let name = if tick < 50 {
            "worker"
        } else {
            "worker-renamed"
        };
        let stack = [rec.clone(), rec.clone(), run.clone()];
        w.add_sample(t, worker_t, Some(102), Some(name), &stack, FLAG_ACTIVE, 0)
            .unwrap();
    }
    w.finish().unwrap();
    (Session::open(&path).unwrap(), path)
}

/// The collapsed stacks of a view, as (stack, count).
fn raw(session: &Session, view: View) -> BTreeMap<String, u64> {
    let opts = RenderOptions {
        format: FileFormat::raw,
        view,
        title: None,
    };
    let mut out = Vec::new();
    let summary = render(session, &opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut stacks = BTreeMap::new();
    for line in text.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        *stacks.entry(stack.to_string()).or_insert(0) += count.parse::<u64>().unwrap();
    }
    assert_eq!(stacks.values().sum::<u64>(), summary.samples, "{text}");
    stacks
}

fn map(rows: &[(&str, u64)]) -> BTreeMap<String, u64> {
    rows.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

const HOT: &str = "main (app.py:30);mid (app.py:20);leaf (app.py:10)";
const HOT_ODD: &str = "main (app.py:30);mid (app.py:20);leaf (app.py:12)";
const REC: &str = "run (pkg/work.py:3);rec (pkg/work.py:7);rec (pkg/work.py:7)";
const IDLE: &str = "main (app.py:31);wait (pkg/sync.py:5)";

#[test]
fn idle_gil_and_line_choices() {
    let (s, _) = session("views.pyspy");
    assert_eq!(
        raw(&s, View::default()),
        map(&[(HOT, 30), (HOT_ODD, 30), (REC, 100)])
    );
    let idle = View {
        idle: true,
        ..View::default()
    };
    assert_eq!(
        raw(&s, idle),
        map(&[(HOT, 30), (HOT_ODD, 30), (REC, 100), (IDLE, 40)])
    );
    let gil = View {
        gil_only: true,
        ..View::default()
    };
    assert_eq!(raw(&s, gil), map(&[(HOT, 30), (HOT_ODD, 30)]));
    // --function: each frame at its function's first line, so the two leaf lines merge.
    let function = View {
        lineno: LineNo::First,
        ..View::default()
    };
    assert_eq!(
        raw(&s, function),
        map(&[
            ("main (app.py:28);mid (app.py:18);leaf (app.py:9)", 60),
            (
                "run (pkg/work.py:2);rec (pkg/work.py:6);rec (pkg/work.py:6)",
                100
            )
        ])
    );
    let nolineno = View {
        lineno: LineNo::NoLine,
        idle: true,
        ..View::default()
    };
    assert_eq!(
        raw(&s, nolineno),
        map(&[
            ("main (app.py);mid (app.py);leaf (app.py)", 60),
            ("main (app.py);wait (pkg/sync.py)", 40),
            ("run (pkg/work.py);rec (pkg/work.py);rec (pkg/work.py)", 100)
        ])
    );
    let full = View {
        full_filenames: true,
        gil_only: true,
        ..View::default()
    };
    let stacks = raw(&s, full);
    assert_eq!(stacks.values().sum::<u64>(), 60);
    assert!(
        stacks.keys().all(|k| k.contains("(/srv/app/app.py:")),
        "{stacks:?}"
    );
}

#[test]
fn thread_process_and_time_selections() {
    let (s, _) = session("select.pyspy");
    for sel in ["worker-renamed", "2", "102"] {
        let view = View {
            threads: vec![sel.to_string()],
            ..View::default()
        };
        assert_eq!(raw(&s, view), map(&[(REC, 100)]), "--thread {sel}");
    }
    // A time window: ticks at 0.30 s up to 0.39 s are the ten of [0.3, 0.4).
    let window = View {
        from_s: Some(0.3),
        to_s: Some(0.395),
        ..View::default()
    };
    assert_eq!(raw(&s, window), map(&[(HOT, 5), (HOT_ODD, 5), (REC, 10)]));
    let late = View {
        from_s: Some(0.6),
        ..View::default()
    };
    assert_eq!(raw(&s, late), map(&[(REC, 40)]), "main is idle after 0.6 s");
    let other_pid = RenderOptions {
        format: FileFormat::raw,
        view: View {
            pids: Some(vec![1]),
            ..View::default()
        },
        title: None,
    };
    let err = render(&s, &other_pid, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "process 1 is not in this session (processes: 4242)"
    );
    // Thread and process frames at the root.
    let framed = View {
        thread_frames: true,
        process_frames: Some(true),
        gil_only: true,
        ..View::default()
    };
    let stacks = raw(&s, framed);
    assert_eq!(stacks.len(), 2, "{stacks:?}");
    for k in stacks.keys() {
        assert!(
            k.starts_with("process 4242:\"python app.py\";thread (101): MainThread;main"),
            "{k}"
        );
    }
}

#[test]
fn speedscope_chrometrace_and_flamegraph_hold_the_same_samples() {
    let (s, _) = session("formats.pyspy");
    let write = |format| {
        let opts = RenderOptions {
            format,
            view: View::default(),
            title: Some("synthetic".into()),
        };
        let mut out = Vec::new();
        let summary = render(&s, &opts, &mut out).unwrap();
        assert_eq!(summary.samples, 160, "{format:?}");
        assert_eq!(summary.dropped, 40, "{format:?}: the idle samples");
        out
    };
    let speedscope: serde_json::Value =
        serde_json::from_slice(&write(FileFormat::speedscope)).expect("speedscope output is JSON");
    let profiles = speedscope["profiles"].as_array().unwrap();
    assert_eq!(profiles.len(), 2, "one profile per thread");
    let weights: Vec<u64> = profiles
        .iter()
        .map(|p| p["samples"].as_array().unwrap().len() as u64)
        .collect();
    assert_eq!(weights.iter().sum::<u64>(), 160);
    let names: Vec<&str> = speedscope["shared"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for f in ["main", "mid", "leaf", "rec", "run"] {
        assert!(names.contains(&f), "{f} missing from {names:?}");
    }
    assert!(!names.contains(&"wait"), "idle frames are left out");

    let trace: serde_json::Value = serde_json::from_slice(&write(FileFormat::chrometrace))
        .expect("chrometrace output is JSON");
    let events = trace
        .as_array()
        .or_else(|| trace["traceEvents"].as_array())
        .unwrap();
    let leaf_begins = events
        .iter()
        .filter(|e| e["name"] == "leaf" && e["ph"] == "B")
        .count();
    assert!(leaf_begins >= 1, "no leaf slice in the trace");
    assert!(events.iter().all(|e| e["name"] != "wait"));

    let svg = String::from_utf8(write(FileFormat::flamegraph)).unwrap();
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains("leaf (app.py:10) (30 samples, 18.75%)"),
        "leaf share"
    );
    assert!(svg.contains("rec (pkg/work.py:7) (100 samples, 62.50%)"));
}
