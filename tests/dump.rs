//! `py-spy dump` and the library API against real Python processes: exact thread names,
//! statuses, functions, files, lines and locals, on every supported interpreter found here.

mod common;

use common::*;
use py_spy::{Config, LockingStrategy, PythonSpy, StackTrace};
use serde_json::Value;

const SCRIPT: &str = "four_threads.py";

/// (function, short file, line) of one frame.
type FrameKey = (String, String, i32);

/// (name, short file, line) of each frame, innermost first.
fn frames_of(trace: &StackTrace) -> Vec<FrameKey> {
    trace
        .frames
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                f.short_filename.clone().unwrap_or_default(),
                f.line,
            )
        })
        .collect()
}

/// What CPython itself reported for the non-main threads (printed by the script).
fn expected_from_python(target: &Target) -> Vec<(String, Vec<FrameKey>)> {
    let v = target
        .printed("EXPECT")
        .expect("script printed its own stacks");
    let mut out = Vec::new();
    for (name, stack) in v.as_object().unwrap() {
        let frames = stack
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f[0].as_str().unwrap().to_string(),
                    f[1].as_str().unwrap().to_string(),
                    f[2].as_i64().unwrap() as i32,
                )
            })
            .collect();
        out.push((name.clone(), frames));
    }
    out
}

/// Check one snapshot against the script's known shape. Returns a description of the first
/// mismatch, so a caller can retry a snapshot caught mid-wakeup.
fn check_snapshot(traces: &[StackTrace], target: &Target) -> Result<(), String> {
    let by_name = |n: &str| {
        traces
            .iter()
            .find(|t| t.thread_name.as_deref() == Some(n))
            .ok_or_else(|| format!("no thread named {n:?} in {:?}", names(traces)))
    };
    if traces.len() != 4 {
        return Err(format!("expected 4 threads, got {:?}", names(traces)));
    }
    for (name, expected) in expected_from_python(target) {
        let t = by_name(&name)?;
        let got = frames_of(t);
        if got != expected {
            return Err(format!(
                "thread {name}: got {got:?}\n expected {expected:?}"
            ));
        }
    }
    let main = by_name("MainThread")?;
    let want_main = vec![
        (
            "main".to_string(),
            SCRIPT.to_string(),
            line_of(SCRIPT, "MAIN_LINE"),
        ),
        (
            "<module>".to_string(),
            SCRIPT.to_string(),
            line_of(SCRIPT, "MODULE_LINE"),
        ),
    ];
    if frames_of(main) != want_main {
        return Err(format!("main thread: got {:?}", frames_of(main)));
    }
    // Shapes the script promises, independent of what Python printed.
    let rec = by_name("recursive-ünicode")?;
    if rec
        .frames
        .iter()
        .filter(|f| f.name == "récursion_ü")
        .count()
        != 21
    {
        return Err("recursive thread should have 21 récursion_ü frames".into());
    }
    if rec.frames[0].line != line_of(SCRIPT, "RECURSION_LEAF_LINE")
        || rec.frames[1].line != line_of(SCRIPT, "RECURSION_LINE")
    {
        return Err(format!("recursive thread lines: {:?}", frames_of(rec)));
    }
    let prod = by_name("producer")?;
    // Qualified names from 3.11 (co_qualname), plain names before.
    let method = |got: &str, name: &str| got == format!("Producer.{name}") || got == name;
    if !method(&prod.frames[0].name, "items")
        || prod.frames[0].line != line_of(SCRIPT, "GENERATOR_LINE")
        || !method(&prod.frames[1].name, "run")
        || prod.frames[1].line != line_of(SCRIPT, "METHOD_LINE")
    {
        return Err(format!("producer thread: {:?}", frames_of(prod)));
    }
    let spin = by_name("spinner")?;
    if spin.frames[0].name != "spin" || spin.frames[0].line != line_of(SCRIPT, "SPIN_LINE") {
        return Err(format!("spinner thread: {:?}", frames_of(spin)));
    }
    // Statuses: the sleepers are idle, the spinner runs.
    for t in traces {
        let want_active = t.thread_name.as_deref() == Some("spinner");
        if t.active != want_active {
            return Err(format!("thread {:?} active={}", t.thread_name, t.active));
        }
        if t.owns_gil && !want_active {
            return Err(format!("sleeping thread {:?} owns the GIL", t.thread_name));
        }
        if t.pid != target.pid || t.os_thread_id.is_none() || t.thread_id == 0 {
            return Err(format!("thread ids missing: {t:?}"));
        }
        if !t.frames.last().is_some_and(|f| f.is_shim_entry) {
            return Err("outermost frame must be marked is_shim_entry".into());
        }
    }
    // The main thread's OS id is the process id.
    if main.os_thread_id != Some(target.pid as u64) {
        return Err(format!("main thread OS id {:?}", main.os_thread_id));
    }
    Ok(())
}

fn names(traces: &[StackTrace]) -> Vec<Option<String>> {
    traces.iter().map(|t| t.thread_name.clone()).collect()
}

/// Take snapshots until one matches (a sleeper can be caught awake for a few microseconds);
/// fails with the last mismatch after several tries.
fn check_with_retries(
    mut take: impl FnMut() -> Vec<StackTrace>,
    target: &Target,
) -> Vec<StackTrace> {
    let mut last = String::new();
    for _ in 0..5 {
        let traces = take();
        match check_snapshot(&traces, target) {
            Ok(()) => return traces,
            Err(e) => last = e,
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("snapshot never matched: {last}");
}

/// The main thread's locals, exactly: names, argument flags and text.
fn check_main_locals(traces: &[StackTrace]) {
    let main = traces
        .iter()
        .find(|t| t.thread_name.as_deref() == Some("MainThread"))
        .unwrap();
    let locals = main.frames[0].locals.as_ref().expect("locals requested");
    let got: Vec<(&str, bool, &str)> = locals
        .iter()
        .map(|l| (l.name.as_str(), l.arg, l.repr.as_deref().unwrap_or("")))
        .collect();
    let long = format!("\"{}...\"", "x".repeat(123));
    let fixed = [
        ("count", "42"),
        ("big", "-1267650600228229401496703205376"),
        ("ratio", "0.25"),
        ("flag", "True"),
        ("nothing", "None"),
        ("text", "\"héllo wörld\""),
        ("empty", "\"\""),
        ("long_text", long.as_str()),
        ("blob", "b'ab\\x00'"),
        ("pair", "(1, \"two\")"),
        ("items", "[1, 2, 3]"),
        ("mapping", "{\"a\": 1}"),
        // Control characters escaped (a dump must not drive the terminal), a list that
        // holds itself shown once.
        ("control", "\"a\\x00b\\x1b[2Jc\\x7f\""),
        ("nested", "[1, [...]]"),
        // Floats as Python writes them, in containers too (py-spy 0.4.3: `(3, 10000000000000000, -0, 0.00001)`).
        ("floats", "(3.0, 1e+16, -0.0, 1e-05)"),
    ];
    for (i, (name, repr)) in fixed.iter().enumerate() {
        assert_eq!(got[i], (*name, false, *repr), "local {i}");
    }
    // threads: a list of three Thread objects; t: the last of them, shown by address.
    let threads = &locals[fixed.len()];
    assert_eq!(threads.name, "threads");
    let repr = threads.repr.as_deref().unwrap();
    assert!(
        repr.starts_with("[<Thread at 0x") && repr.matches("<Thread at 0x").count() == 3,
        "{repr}"
    );
    let t = &locals[fixed.len() + 1];
    assert_eq!(t.name, "t");
    assert_eq!(
        t.repr.as_deref().unwrap(),
        format!("<Thread at {:#x}>", t.addr)
    );
    assert!(
        repr.contains(&format!("{:#x}>]", t.addr)),
        "t is the last thread of {repr}"
    );
    assert_eq!(locals[fixed.len() + 2].name, "parent");
    assert_eq!(locals.len(), fixed.len() + 3);
    // Arguments are flagged: the recursive frames' `depth`.
    let rec = traces
        .iter()
        .find(|t| t.thread_name.as_deref() == Some("recursive-ünicode"))
        .unwrap();
    for (i, f) in rec.frames.iter().take(21).enumerate() {
        let l = &f.locals.as_ref().unwrap()[0];
        assert_eq!((l.name.as_str(), l.arg), ("depth", true));
        assert_eq!(l.repr.as_deref(), Some(i.to_string().as_str()));
    }
}

#[test]
fn library_api_reads_every_thread() {
    on_each_supported_from("library_api_reads_every_thread", (3, 6), |py| {
        for blocking in [LockingStrategy::Lock, LockingStrategy::NonBlocking] {
            let target = spawn(&py.path, SCRIPT, &[]);
            let config = Config {
                blocking,
                dump_locals: 1,
                ..Config::default()
            };
            let mut spy = PythonSpy::new(target.pid, &config)
                .unwrap_or_else(|e| panic!("{}: attach failed: {e:#}", py.label));
            assert_eq!(
                (spy.version.major, spy.version.minor, spy.version.patch),
                py.version
            );
            let traces = check_with_retries(|| spy.get_stack_traces().unwrap(), &target);
            check_main_locals(&traces);
        }
    });
}

#[test]
fn dump_binary_text_and_json() {
    on_each_supported_from("dump_binary_text_and_json", (3, 6), |py| {
        let target = spawn(&py.path, SCRIPT, &[]);
        let pid = target.pid.to_string();
        let traces = check_with_retries(
            || {
                let (code, out, err) = run_py_spy(&["dump", "--pid", &pid, "--json", "--locals"]);
                assert_eq!(code, 0, "{err}");
                serde_json::from_str(&out).expect("dump --json prints StackTrace JSON")
            },
            &target,
        );
        check_main_locals(&traces);

        // Text: header lines, then threads oldest first, frames and locals indented.
        // The main thread wakes every 50 ms (and a pause wakes it too): like the JSON checks,
        // retry a few times for a snapshot that catches it asleep.
        let idle_main = format!("Thread {pid} (idle): \"MainThread\"");
        let mut out = String::new();
        for _ in 0..5 {
            let (code, o, err) = run_py_spy(&["dump", "--pid", &pid, "--locals"]);
            assert_eq!(code, 0, "{err}");
            out = o;
            if out.lines().nth(3) == Some(idle_main.as_str()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with(&format!("Process {pid}: ")) && lines[0].contains(SCRIPT));
        let (a, b, c) = py.version;
        assert!(
            lines[1].starts_with(&format!("Python v{a}.{b}.{c} (")),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], format!("Thread {pid} (idle): \"MainThread\""));
        assert_eq!(
            lines[4],
            format!("    main ({SCRIPT}:{})", line_of(SCRIPT, "MAIN_LINE"))
        );
        assert_eq!(lines[5], "        Locals:");
        assert_eq!(lines[6], "            count: 42");
        assert!(
            out.contains("            control: \"a\\x00b\\x1b[2Jc\\x7f\"\n")
                && !out.contains('\x1b')
                && !out.contains('\0'),
            "control characters reach the terminal: {out}"
        );
        assert!(out.contains("            nested: [1, [...]]\n"), "{out}");
        assert!(out.contains(&format!(
            "    récursion_ü ({SCRIPT}:{})\n        Arguments:\n            depth: 0\n",
            line_of(SCRIPT, "RECURSION_LEAF_LINE")
        )));
        assert!(out.contains(": \"recursive-ünicode\"\n"));

        // --full-filenames shows the path the target uses.
        let (code, out, _) = run_py_spy(&["dump", "--pid", &pid, "--full-filenames"]);
        assert_eq!(code, 0);
        let full = script(SCRIPT);
        assert!(
            out.contains(&format!("    main ({}:", full.display())),
            "{out}"
        );
    });
}

/// Ours and py-spy 0.4.3's `dump --json --locals` of the same process agree thread by thread
/// and frame by frame, but where we deliberately show more (see objects.rs).
#[test]
fn agrees_with_py_spy_043() {
    let Some(reference) = reference_py_spy("agrees_with_py_spy_043") else {
        return;
    };
    on_each_supported_from("agrees_with_py_spy_043", (3, 6), |py| {
        let target = spawn(&py.path, SCRIPT, &[]);
        let pid = target.pid.to_string();
        let args = ["dump", "--pid", &pid, "--json", "--locals"];
        let mut last = String::new();
        let mut agreed = false;
        for _ in 0..5 {
            let (c1, ours, e1) = run_py_spy(&args);
            let (c2, theirs, e2) = run(&reference, &args);
            assert_eq!((c1, c2), (0, 0), "ours: {e1}\ntheirs: {e2}");
            let ours: Value = serde_json::from_str(&ours).unwrap();
            let theirs: Value = serde_json::from_str(&theirs).unwrap();
            // Counters that move between two dumps: the spinner's `n`, the producer's `n`/`item`;
            // and where py-spy 0.4.3 is wrong: it prints control characters raw, expands a
            // list that holds itself 14 levels deep, and writes floats as Rust does (`3`).
            let moving = |thread: &Value, local: &Value| {
                (thread == "spinner" && local == "n")
                    || (thread == "producer" && (local == "n" || local == "item"))
                    || (thread == "MainThread"
                        && (local == "control" || local == "nested" || local == "floats"))
            };
            let (ours, theirs) = (ours.as_array().unwrap(), theirs.as_array().unwrap());
            match compare_dumps(ours, theirs, "spinner", moving) {
                Ok(()) => {
                    agreed = true;
                    break;
                }
                Err(e) => last = e,
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(agreed, "{}: differs from py-spy 0.4.3: {last}", py.label);
    });
}

/// `dump --session S` keeps the snapshot, locals included: `analyze S --dump` prints exactly
/// what `dump` printed, as text and as JSON.
#[test]
fn a_kept_dump_prints_again_exactly() {
    on_each_supported_from("a_kept_dump_prints_again_exactly", (3, 6), |py| {
        let target = spawn(&py.path, SCRIPT, &[]);
        let pid = target.pid.to_string();
        let dir = tmpdir("kept-dump");
        for json in [false, true] {
            let session = dir.join(format!("dump-{json}.pyspy"));
            let s = session.to_str().unwrap();
            let mut args = vec!["dump", "--pid", &pid, "--locals", "--session", s];
            let mut again = vec!["analyze", s, "--dump"];
            if json {
                args.push("--json");
                again.push("--json");
            }
            let (code, printed, err) = run_py_spy(&args);
            assert_eq!(code, 0, "{}: {err}", py.label);
            let (code, replayed, err) = run_py_spy(&again);
            assert_eq!(code, 0, "{}: {err}", py.label);
            assert_eq!(printed, replayed, "{}: json={json}", py.label);
            // What was kept is the whole dump: locals and every thread.
            if json {
                let traces: Vec<StackTrace> = serde_json::from_str(&replayed).unwrap();
                assert_eq!(traces.len(), 4, "{}: {replayed}", py.label);
                check_main_locals(&traces);
                assert!(traces
                    .iter()
                    .all(|t| t.frames.iter().all(|f| f.locals.is_some())));
            } else {
                assert!(replayed.contains("            count: 42\n"), "{replayed}");
                assert!(replayed.contains(": \"recursive-ünicode\"\n"), "{replayed}");
            }
        }
        // Without --locals nothing is read, and nothing is shown.
        let session = dir.join("plain.pyspy");
        let s = session.to_str().unwrap();
        let (code, printed, err) = run_py_spy(&["dump", "--pid", &pid, "--session", s]);
        assert_eq!(code, 0, "{err}");
        let (_, replayed, _) = run_py_spy(&["analyze", s, "--dump"]);
        assert_eq!(printed, replayed);
        assert!(!printed.contains("Locals:") && !printed.contains("Arguments:"));
        let (code, info, err) = run_py_spy(&["info", s]);
        assert_eq!(code, 0, "{err}");
        assert!(
            info.contains("Duration     one snapshot, taken by `dump` (pausing the program)"),
            "{info}"
        );
        assert!(info.contains("Snapshots    1; 4 samples"), "{info}");
        // Counts of one are said in the singular.
        assert!(
            info.contains("\"MainThread\": 1 sample\n") || info.contains("MainThread: 1 sample\n"),
            "{info}"
        );
        let raw = dir.join("main.txt");
        let (code, _, err) = run_py_spy(&[
            "render",
            s,
            "-f",
            "raw",
            "--idle",
            "--thread",
            "MainThread",
            "-o",
            raw.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        assert!(err.starts_with("Wrote 1 sample to "), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// The blocks of a `dump --subprocesses` text, by the pid of their `Process PID:` line.
fn process_blocks(out: &str) -> Vec<(i32, String)> {
    let mut blocks: Vec<(i32, String)> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Process ") {
            let pid = rest.split(':').next().unwrap().parse().unwrap();
            blocks.push((pid, String::new()));
        }
        if let Some((_, text)) = blocks.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    blocks
}

/// `dump --subprocesses`: every Python process of the tree once, under its own header, with
/// its threads; a program that is not Python is passed over.
#[test]
fn dump_subprocesses_shows_each_process_once() {
    on_each_supported("dump_subprocesses_shows_each_process_once", |py| {
        let target = spawn(&py.path, "tree.py", &[]);
        let pids = target.printed("PIDS").expect("the tree's pids");
        let (child, grandchild, sleep) = (
            pids["child"].as_i64().unwrap() as i32,
            pids["grandchild"].as_i64().unwrap() as i32,
            pids["sleep"].as_i64().unwrap() as i32,
        );
        let pid = target.pid.to_string();
        let (code, out, err) = run_py_spy(&["dump", "--pid", &pid, "--subprocesses"]);
        assert_eq!(code, 0, "{}: {err}", py.label);
        let blocks = process_blocks(&out);
        let order: Vec<i32> = blocks.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            order,
            [target.pid, child, grandchild],
            "{}: {out}",
            py.label
        );
        assert!(!out.contains(&format!("Process {sleep}:")));
        let wait = line_of("tree.py", "WAIT_LINE");
        let root = &blocks[0].1;
        assert!(
            root.contains(&format!(
                "    parent (tree.py:{})\n",
                line_of("tree.py", "PARENT_LINE")
            )),
            "{}: {root}",
            py.label
        );
        let child_block = &blocks[1].1;
        assert!(child_block.contains(&format!("Parent Process {}: ", target.pid)));
        assert_eq!(child_block.matches("Thread ").count(), 2, "{child_block}");
        assert!(child_block.contains("\"child-helper\"\n"), "{child_block}");
        assert!(
            child_block.contains(&format!(
                "    wait_for_parent (tree.py:{wait})\n    child_helper (tree.py:"
            )),
            "{}: {child_block}",
            py.label
        );
        assert!(child_block.contains(&format!(
            "    wait_for_parent (tree.py:{wait})\n    child (tree.py:"
        )));
        let grand_block = &blocks[2].1;
        assert!(grand_block.contains(&format!("Parent Process {child}: ")));
        assert!(grand_block.contains(&format!(
            "    wait_for_parent (tree.py:{wait})\n    grandchild (tree.py:"
        )));
        // JSON: one array of every thread, each naming its process.
        let (code, out, err) = run_py_spy(&["dump", "--pid", &pid, "-s", "--json"]);
        assert_eq!(code, 0, "{err}");
        let traces: Vec<StackTrace> = serde_json::from_str(&out).unwrap();
        let count = |p: i32| traces.iter().filter(|t| t.pid == p).count();
        assert_eq!(
            (count(target.pid), count(child), count(grandchild)),
            (1, 2, 1),
            "{}: {out}",
            py.label
        );
    });
}
