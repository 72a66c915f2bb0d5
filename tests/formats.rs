//! Every output format parsed back: speedscope JSON validated against the schema the
//! speedscope npm package ships (and py-spy 0.4.3's own output shown to fail it, so the check
//! has teeth), Chrome trace events checked as a well-nested Trace Event Format file, the
//! flamegraph SVG parsed as XML. Also py-spy's own integration test script, run against our
//! binary.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPT: &str = "phases.py";

/// A capture of phases.py and what it took.
struct Captured {
    session: PathBuf,
    pid: i32,
    /// Snapshots taken (at most the 400 asked for).
    snapshots: u64,
    /// Thread stacks stored as error samples.
    errors: u64,
}

/// A 2-second capture of phases.py, 200 Hz, with `extra` capture options.
fn session_with(py: &Interpreter, dir: &Path, extra: &[&str]) -> Captured {
    let session = dir.join("run.pyspy");
    let target = spawn(&py.path, SCRIPT, &["60"]);
    let pid = target.pid.to_string();
    let mut argv = vec!["capture", "--pid", &pid, "-o", session.to_str().unwrap()];
    argv.extend_from_slice(&["-r", "200", "-d", "2"]);
    argv.extend_from_slice(extra);
    let (code, _, err) = run_py_spy(&argv);
    assert_eq!(code, 0, "{err}");
    let (snapshots, errors) = capture_counts(&err);
    enough_snapshots(snapshots, 400, &py.label);
    Captured {
        session,
        pid: target.pid,
        snapshots,
        errors,
    }
}

fn session(py: &Interpreter, dir: &Path) -> Captured {
    session_with(py, dir, &[])
}

fn render_file(session: &Path, format: &str, out: &Path, args: &[&str]) {
    let mut argv = vec![
        "render",
        session.to_str().unwrap(),
        "-f",
        format,
        "-o",
        out.to_str().unwrap(),
    ];
    argv.extend_from_slice(args);
    let (code, _, err) = run_py_spy(&argv);
    assert_eq!(code, 0, "render {format} {args:?}: {err}");
}

/// `Ok(())` if `file` validates against the speedscope schema, else the validator's message.
fn validate_speedscope(python: &Path, schema: &Path, file: &Path) -> Result<(), String> {
    let code = "import json, sys, jsonschema\n\
                schema = json.load(open(sys.argv[1]))\n\
                doc = json.load(open(sys.argv[2]))\n\
                jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)\n\
                print('valid')";
    let o = Command::new(python)
        .args(["-c", code])
        .arg(schema)
        .arg(file)
        .output()
        .expect("run the schema validator");
    if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("valid") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn speedscope_validates_against_the_schema() {
    let test = "speedscope_validates_against_the_schema";
    let Some(schema) = ci_input(test, "PYSPY_SPEEDSCOPE_SCHEMA") else {
        return;
    };
    let Some(validator) = ci_input(test, "PYSPY_SCHEMA_PYTHON") else {
        return;
    };
    let heavy_line = line_of(SCRIPT, "HEAVY_LINE");
    on_each_supported(test, |py| {
        let dir = tmpdir("speedscope");
        let Captured {
            session,
            pid,
            snapshots,
            errors,
        } = session(py, &dir);
        for args in [
            vec![],
            vec!["--idle", "--threads"],
            vec!["--nolineno"],
            vec!["--gil"],
        ] {
            let out = dir.join("out.json");
            render_file(&session, "speedscope", &out, &args);
            validate_speedscope(&validator, &schema, &out)
                .unwrap_or_else(|e| panic!("{args:?}: our speedscope file fails the schema: {e}"));
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
            let frames = doc["shared"]["frames"].as_array().unwrap();
            let profiles = doc["profiles"].as_array().unwrap();
            assert!(!profiles.is_empty());
            for f in frames {
                // py-spy's own readers build namedtuples from exactly these keys.
                let keys: Vec<&str> = f.as_object().unwrap().keys().map(|k| k.as_str()).collect();
                if args.contains(&"--nolineno") {
                    assert!(!keys.contains(&"line"), "{f}");
                } else {
                    assert_eq!(keys, ["col", "file", "line", "name"], "{f}");
                }
            }
            let main = profiles
                .iter()
                .find(|p| p["name"] == format!("Thread {pid} \"MainThread\""))
                .unwrap_or_else(|| {
                    panic!(
                        "no MainThread profile in {:?}",
                        profiles.iter().map(|p| &p["name"]).collect::<Vec<_>>()
                    )
                });
            let samples = main["samples"].as_array().unwrap();
            let weights = main["weights"].as_array().unwrap();
            assert_eq!(samples.len(), weights.len());
            // The main thread is always busy: one sample per snapshot (but for a stack that
            // could not be read, left out by default), and with --gil nearly always.
            let n = samples.len() as u64;
            let expected = if args.contains(&"--gil") {
                snapshots * 9 / 10
            } else {
                snapshots - errors
            };
            assert!(
                n >= expected,
                "{} {args:?}: {n} main-thread samples of {snapshots} snapshots ({errors} errors)",
                py.label
            );
            // Each profile spans real time, from its first sample to one period after its
            // last. Snapshots are stamped when taken: the first may be late by up to a period
            // (later would have been a skipped tick) and the last on time, so n samples span
            // more than n - 1 periods (CI saw 1.999967 s for 400 samples on 3.15).
            let span = main["endValue"].as_f64().unwrap() - main["startValue"].as_f64().unwrap();
            assert!(
                span > (n - 1) as f64 / 200.0 && span < n as f64 / 200.0 + 1.0,
                "{} {args:?}: {n} samples span {span} s",
                py.label
            );
            // The file opens on the busiest thread.
            let active = doc["activeProfileIndex"].as_u64().unwrap() as usize;
            let most = profiles
                .iter()
                .map(|p| p["samples"].as_array().unwrap().len())
                .max();
            assert_eq!(
                Some(profiles[active]["samples"].as_array().unwrap().len()),
                most
            );
            let mut heavy = 0;
            let mut heavy_at_loop = 0;
            for s in samples {
                let stack: Vec<&Value> = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| &frames[i.as_u64().unwrap() as usize])
                    .collect();
                let leaf = stack.last().unwrap();
                if leaf["name"] == "heavy" {
                    heavy += 1;
                    assert!(leaf["file"].as_str().unwrap().ends_with("/phases.py"));
                    if !args.contains(&"--nolineno") {
                        // The loop's line, or (a sample that caught the call as it began,
                        // every 30 ms for a few µs) the function's first statement.
                        let line = leaf["line"].as_i64().unwrap();
                        assert!(
                            line == heavy_line as i64 || line == heavy_line as i64 - 1,
                            "heavy at line {line}"
                        );
                        heavy_at_loop += (line == heavy_line as i64) as usize;
                    }
                }
                // Profiles are the threads: --threads adds no root frame.
                assert!(
                    !stack[0]["name"].as_str().unwrap().starts_with("thread ("),
                    "{args:?}: {}",
                    stack[0]
                );
            }
            if !args.contains(&"--nolineno") {
                assert!(
                    heavy_at_loop * 100 >= heavy * 98,
                    "only {heavy_at_loop} of {heavy} heavy samples on its loop line"
                );
            }
            assert!(
                heavy * 2 > samples.len(),
                "{heavy} of {} in heavy",
                samples.len()
            );
        }
        // The same check on py-spy 0.4.3's output fails: the validator is not a rubber stamp.
        if let Some(reference) = reference_py_spy(test) {
            let target = spawn(&py.path, SCRIPT, &["60"]);
            let out = dir.join("py-spy-043.json");
            let o = Command::new(reference)
                .args([
                    "record",
                    "--pid",
                    &target.pid.to_string(),
                    "-d",
                    "1",
                    "-f",
                    "speedscope",
                ])
                .args(["--nonblocking", "--hideprogress", "-o"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(o.status.success());
            assert!(
                validate_speedscope(&validator, &schema, &out).is_err(),
                "py-spy 0.4.3's speedscope output was expected to fail the schema"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn chrometrace_is_well_nested_trace_event_json() {
    let py = first_supported();
    let dir = tmpdir("chrometrace");
    let Captured { session, pid, .. } = session(&py, &dir);
    let out = dir.join("trace.json");
    render_file(&session, "chrometrace", &out, &["--idle"]);
    let events: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap())
        .expect("a JSON array of events");
    let mut open: HashMap<(i64, u64), Vec<String>> = HashMap::new();
    let mut last_ts: HashMap<(i64, u64), u64> = HashMap::new();
    let mut thread_names = Vec::new();
    let mut begins = 0;
    let mut main_tid_seen = false;
    for e in &events {
        let ph = e["ph"].as_str().unwrap();
        let key = (e["pid"].as_i64().unwrap(), e["tid"].as_u64().unwrap());
        assert_eq!(key.0, pid as i64);
        // Threads are named by their OS id (the main thread's is the pid), as system tools do.
        assert!(key.1 < 1 << 32, "tid {} is not an OS thread id", key.1);
        main_tid_seen |= key.1 == pid as u64;
        match ph {
            "M" => {
                if e["name"] == "thread_name" {
                    thread_names.push(e["args"]["name"].as_str().unwrap().to_string());
                }
            }
            "B" | "E" => {
                let ts = e["ts"].as_u64().unwrap();
                assert!(
                    ts >= *last_ts.get(&key).unwrap_or(&0),
                    "time went back: {e}"
                );
                last_ts.insert(key, ts);
                assert_eq!(e["cat"], "py-spy");
                assert!(e["args"]["filename"].is_string());
                let name = e["name"].as_str().unwrap().to_string();
                let stack = open.entry(key).or_default();
                if ph == "B" {
                    begins += 1;
                    stack.push(name);
                } else {
                    assert_eq!(stack.pop(), Some(name), "E does not close the innermost B");
                }
            }
            other => panic!("unexpected phase {other}"),
        }
    }
    assert!(
        open.values().all(|s| s.is_empty()),
        "unclosed slices: {open:?}"
    );
    assert!(begins > 10, "{begins} slices");
    assert!(main_tid_seen, "no event on the main thread's OS id {pid}");
    thread_names.sort();
    assert_eq!(thread_names, ["MainThread", "napper"]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("\"name\":\"heavy\"") && text.contains("\"name\":\"nap\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flamegraph_is_an_svg_with_our_frames() {
    let py = first_supported();
    let dir = tmpdir("flamegraph");
    // Without pausing the target, its sleeping thread is never woken, so never active.
    let Captured { session, .. } = session_with(&py, &dir, &["--nonblocking"]);
    let out = dir.join("flame.svg");
    render_file(&session, "flamegraph", &out, &[]);
    let svg = std::fs::read_to_string(&out).unwrap();
    // Parse it as XML with the interpreter's own parser.
    let o = Command::new(&py.path)
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as ET\n\
             root = ET.parse(sys.argv[1]).getroot()\n\
             print(root.tag)\n\
             print('\\n'.join(t.text or '' for t in root.iter('{http://www.w3.org/2000/svg}title')))",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "not XML: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let parsed = String::from_utf8_lossy(&o.stdout);
    assert!(
        parsed.starts_with("{http://www.w3.org/2000/svg}svg"),
        "{parsed}"
    );
    let heavy = format!("heavy (phases.py:{})", line_of(SCRIPT, "HEAVY_LINE"));
    assert!(
        parsed.lines().any(|l| l.starts_with(&heavy)),
        "no frame title for {heavy} in {parsed}"
    );
    assert!(
        svg.contains("py-spy render"),
        "the title is the command line, as py-spy's is"
    );
    assert!(svg.contains("samples"), "subtitle with the sample count");
    // No samples (the napper alone, without --idle): a valid SVG that says so, as every
    // format writes a valid empty output, and a warning saying why.
    let (code, _, err) = run_py_spy(&[
        "render",
        session.to_str().unwrap(),
        "--thread",
        "napper",
        "-o",
        dir.join("none.svg").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Warning: no samples to write") && err.contains("--idle"),
        "{err}"
    );
    let none = std::fs::read_to_string(dir.join("none.svg")).unwrap();
    assert!(
        none.starts_with("<?xml") && none.contains("no samples to write"),
        "{none}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// py-spy's own tests/integration_test.py (from its 0.4.3 source distribution, fetched by
/// .ci/run) drives `record --format speedscope` with --gil, --idle and --threads, and
/// `completions bash`: it must pass against our binary.
#[test]
fn py_spy_integration_script_passes() {
    let test = "py_spy_integration_script_passes";
    let Some(dir) = ci_input(test, "PYSPY_INTEGRATION_TESTS") else {
        return;
    };
    let py = first_supported();
    let bin_dir = py_spy_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(&py.path)
        .arg(dir.join("integration_test.py"))
        .current_dir(&dir)
        .env("PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stdout.contains(&format!("Testing py-spy @ {}", py_spy_bin().display())),
        "the script did not pick our binary: {stdout}"
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Ran 4 tests") && stderr.contains("OK"),
        "{stderr}"
    );
    report(test, std::slice::from_ref(&py.label), &[]);
}

#[test]
fn completions_for_bash() {
    let (code, out, err) = run_py_spy(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("complete") && out.contains("py-spy") && out.contains("record"));
}

/// A `python -c "…"` command line holds line breaks: the process frame keeps them as `\n`,
/// so every raw line is still one stack and its count.
#[test]
fn a_command_line_with_line_breaks_stays_on_one_line() {
    let py = first_supported();
    let dir = tmpdir("newline-command");
    let session = dir.join("s.pyspy");
    let code = "import time\nwhile True:\n    time.sleep(0.01)\n";
    let o = Command::new(py_spy_bin())
        .args(["capture", "-d", "1", "-s", "-o"])
        .arg(&session)
        .arg("--")
        .arg(&py.path)
        .args(["-c", code])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let raw = render_raw(&session, &["--idle"]);
    assert!(!raw.is_empty());
    for line in raw.lines() {
        let (stack, count) = line.rsplit_once(' ').unwrap();
        assert!(count.parse::<u64>().is_ok(), "{line}");
        assert!(
            stack.starts_with("process ")
                && stack.contains("import time\\nwhile True:\\n    time.sleep(0.01)\\n"),
            "{line}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without `-o`, each format goes to a name of its own beside the session: rendering one
/// session in every format leaves every output.
#[test]
fn each_format_has_its_own_default_name() {
    let py = first_supported();
    let dir = tmpdir("default-names");
    let Captured { session, .. } = session(&py, &dir);
    let s = session.to_str().unwrap();
    for format in ["speedscope", "chrometrace", "raw", "flamegraph"] {
        let (code, _, err) = run_py_spy(&["render", s, "-f", format]);
        assert_eq!(code, 0, "{format}: {err}");
    }
    let read = |suffix: &str| std::fs::read_to_string(session.with_extension(suffix)).unwrap();
    assert!(read("speedscope.json").contains("speedscope"));
    let trace: Value = serde_json::from_str(&read("trace.json")).unwrap();
    assert!(trace.is_array());
    assert!(read("svg").starts_with("<?xml"));
    assert!(!read("txt").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `render -o - | head -1`: a reader that goes away ends the render quietly, as other Unix
/// tools end (status 141, as if SIGPIPE had ended it), with nothing on standard error.
#[test]
fn a_closed_pipe_ends_quietly() {
    let py = first_supported();
    let dir = tmpdir("closed-pipe");
    let Captured { session, .. } = session(&py, &dir);
    let s = session.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["render", s, "-f", "raw", "-o", "-", "--idle"],
        &["render", s, "-f", "flamegraph", "-o", "-", "--idle"],
        &["render", s, "-f", "speedscope", "-o", "-", "--idle"],
        &["render", s, "-f", "chrometrace", "-o", "-", "--idle"],
        &["analyze", s, "--idle"],
        &["query", s, "SELECT * FROM samples"],
    ];
    let mut ended_by_the_pipe = 0;
    for args in commands {
        let mut child = Command::new(py_spy_bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the command writes anything. (A child that another test's thread
        // forks in that instant holds the pipe's read end until it execs: a small output
        // then fits in the pipe and the command ends normally, as it should.)
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !err.contains("Error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        match o.status.code() {
            Some(141) => ended_by_the_pipe += 1,
            Some(0) => {}
            other => panic!("{args:?}: status {other:?}: {err}"),
        }
    }
    assert!(
        ended_by_the_pipe >= 3,
        "only {ended_by_the_pipe} of 6 saw the closed pipe"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
