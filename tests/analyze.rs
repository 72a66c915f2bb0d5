//! `py-spy analyze` on real recordings of `tests/scripts/phases.py` (its main thread spends
//! two thirds of its time in `heavy` and one third in `light`; `napper` sleeps): totals agree
//! with `render -f raw` exactly, shares are the program's, each grouping gives its rows.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

const SCRIPT: &str = "phases.py";

fn capture(py: &Interpreter, session: &Path) -> u64 {
    let target = spawn(&py.path, SCRIPT, &["60"]);
    let pid = target.pid.to_string();
    let s = session.to_str().unwrap();
    let (code, _, err) = run_py_spy(&["capture", "--pid", &pid, "-r", "200", "-d", "2", "-o", s]);
    assert_eq!(code, 0, "{err}");
    let (snapshots, _) = capture_counts(&err);
    enough_snapshots(snapshots, 400, &py.label);
    snapshots
}

/// `analyze SESSION ARGS --format json`, parsed.
fn analyze_json(session: &Path, args: &[&str]) -> Vec<Value> {
    let mut argv = vec!["analyze", session.to_str().unwrap(), "--format", "json"];
    argv.extend_from_slice(args);
    let (code, out, err) = run_py_spy(&argv);
    assert_eq!(code, 0, "analyze {args:?}: {err}");
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("analyze {args:?}: not JSON ({e}): {out}"))
        .as_array()
        .expect("a list of rows")
        .clone()
}

fn num(row: &Value, key: &str) -> u64 {
    row[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

fn find<'a>(rows: &'a [Value], function: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["function"] == function)
        .unwrap_or_else(|| panic!("no row for {function} in {rows:?}"))
}

#[test]
fn analyze_agrees_with_render_and_with_the_program() {
    let dir = tmpdir("analyze");
    on_each_supported("analyze", |py| {
        let session = dir.join(format!("{}.pyspy", py.label.replace(' ', "-")));
        capture(py, &session);
        // Totals: every path counts the same samples.
        let raw: u64 = parse_collapsed(&render_raw(&session, &["--idle"]))
            .iter()
            .map(|(_, n)| n)
            .sum();
        let by_thread = analyze_json(&session, &["--by", "thread", "--idle"]);
        let own: u64 = by_thread.iter().map(|r| num(r, "own_samples")).sum();
        assert_eq!(
            own, raw,
            "{}: analyze --by thread against render -f raw",
            py.label
        );
        let napper = by_thread
            .iter()
            .find(|r| {
                r["thread"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("napper ("))
            })
            .unwrap_or_else(|| panic!("{}: no napper row in {by_thread:?}", py.label));
        assert!(napper["function"].is_null() && napper["line"].is_null());

        // The main thread's shares: heavy about two thirds, light one third (of its samples).
        let rows = analyze_json(&session, &["--thread", "MainThread"]);
        let main = find(&rows, "main");
        let main_total = num(main, "total_samples");
        assert_eq!(main_total, num(find(&rows, "<module>"), "total_samples"));
        let heavy = find(&rows, "heavy");
        let light = find(&rows, "light");
        let share = |r: &Value| num(r, "own_samples") as f64 / main_total as f64;
        assert!(
            (0.5..0.8).contains(&share(heavy)) && (0.2..0.45).contains(&share(light)),
            "{}: heavy {:.2}, light {:.2} of main's time",
            py.label,
            share(heavy),
            share(light)
        );
        // --by function shows a function's first line; its own time is the sum of its lines.
        assert_eq!(heavy["line"], line_of(SCRIPT, "HEAVY_DEF"));
        assert!(heavy["filename"].as_str().unwrap().ends_with("phases.py"));
        let lines = analyze_json(&session, &["--thread", "MainThread", "--by", "line"]);
        let heavy_lines: u64 = lines
            .iter()
            .filter(|r| r["function"] == "heavy")
            .map(|r| num(r, "own_samples"))
            .sum();
        assert_eq!(heavy_lines, num(heavy, "own_samples"));
        let heavy_line = lines
            .iter()
            .find(|r| r["function"] == "heavy" && r["line"] == line_of(SCRIPT, "HEAVY_LINE"))
            .unwrap_or_else(|| panic!("{}: no heavy row at HEAVY_LINE in {lines:?}", py.label));
        assert!(num(heavy_line, "own_samples") * 10 >= num(heavy, "own_samples") * 9);
        // --nolineno: one row per function, no line.
        let nolines = analyze_json(
            &session,
            &["--thread", "MainThread", "--by", "line", "--nolineno"],
        );
        let heavy_rows: Vec<_> = nolines
            .iter()
            .filter(|r| r["function"] == "heavy")
            .collect();
        assert_eq!(heavy_rows.len(), 1, "{nolines:?}");
        assert!(heavy_rows[0]["line"].is_null());
        // A recursive function would count once per sample: main's total is every sample of
        // the thread, and never more.
        let main_samples: u64 = rows.iter().map(|r| num(r, "own_samples")).sum();
        assert_eq!(
            main_total, main_samples,
            "{}: totals count a sample once",
            py.label
        );
        // Percent and seconds follow from the samples and the rate.
        let pct = heavy["own_percent"].as_f64().unwrap();
        let want = 100.0 * num(heavy, "own_samples") as f64 / main_samples as f64;
        assert!((pct - want).abs() < 0.01, "{pct} against {want}");
        let secs = heavy["own_seconds"].as_f64().unwrap();
        assert!((secs - num(heavy, "own_samples") as f64 / 200.0).abs() < 1e-6);

        // Files and modules.
        let files = analyze_json(&session, &["--by", "file", "--thread", "MainThread"]);
        assert!(files
            .iter()
            .any(|r| r["filename"] == "phases.py" && r["function"].is_null()));
        let modules = analyze_json(&session, &["--by", "module", "--thread", "MainThread"]);
        assert!(
            modules.iter().any(|r| r["module"] == "phases"),
            "{modules:?}"
        );
    });
}

#[test]
fn analyze_table_and_csv() {
    let dir = tmpdir("analyze-text");
    let py = first_supported();
    let session = dir.join("run.pyspy");
    capture(&py, &session);
    let s = session.to_str().unwrap();
    let (code, out, err) = run_py_spy(&["analyze", s, "--limit", "3"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "a heading and 3 rows: {out}");
    assert!(
        lines[0].contains("%Own") && lines[0].contains("TotalTime"),
        "{out}"
    );
    assert!(
        lines[1].contains(&format!(
            "heavy (phases.py:{})",
            line_of(SCRIPT, "HEAVY_DEF")
        )),
        "{out}"
    );
    assert!(
        err.contains("rows shown (--limit)") && err.contains("idle samples left out"),
        "{err}"
    );
    let (code, out, _) = run_py_spy(&["analyze", s, "--format", "csv", "--sort", "name"]);
    assert_eq!(code, 0);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("function,filename,line,module,thread,process,own_samples,total_samples,own_percent,total_percent,own_seconds,total_seconds")
    );
    let names: Vec<String> = lines
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    // The timeline: napper waits throughout, the main thread runs throughout; the CSV
    // counts every sample once.
    let (code, chart, err) = run_py_spy(&["analyze", s, "--timeline", "--bucket", "0.5"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = chart.lines().collect();
    let napper = lines
        .iter()
        .position(|l| l.starts_with("napper ("))
        .expect(&chart);
    // (A thread asleep can be seen running now and then: pausing wakes it for an instant.)
    let napper_active = lines[napper + 1]
        .trim_start_matches("  active |")
        .trim_end_matches('|');
    assert!(
        napper_active.len() == 4 && napper_active.chars().all(|c| c == '.' || c == '1'),
        "{chart}"
    );
    let main = lines
        .iter()
        .position(|l| l.starts_with("MainThread ("))
        .expect(&chart);
    assert!(
        lines[main + 1].starts_with("  active |#") || lines[main + 1].starts_with("  active |9"),
        "{chart}"
    );
    let (code, csv, _) = run_py_spy(&["analyze", s, "--timeline", "--format", "csv"]);
    assert_eq!(code, 0);
    let in_csv: u64 = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    let stored: u64 = parse_collapsed(&render_raw(&session, &["--idle", "--errors"]))
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(in_csv, stored, "{csv}");
    // Names are taken in any case, as py-spy takes `-f RAW`.
    let (code, out, err) = run_py_spy(&["analyze", s, "--by", "THREAD", "--format", "Json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"thread\": \"MainThread ("), "{out}");
    let (code, out, err) = run_py_spy(&["render", s, "-f", "RAW", "-o", "-"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("heavy (phases.py:"), "{out}");
    // Bad choices are refused with the choices listed.
    let (code, _, err) = run_py_spy(&["analyze", s, "--by", "colour"]);
    assert_ne!(code, 0);
    assert!(err.contains("function") && err.contains("thread"), "{err}");
}

#[test]
fn info_on_a_finished_and_a_killed_capture() {
    let dir = tmpdir("info");
    let py = first_supported();
    let session = dir.join("run.pyspy");
    let snapshots = capture(&py, &session);
    let s = session.to_str().unwrap();
    let (code, out, err) = run_py_spy(&["info", s, "--json"]);
    assert_eq!(code, 0, "{err}");
    let info: Value = serde_json::from_str(&out).unwrap();
    let stored: u64 = parse_collapsed(&render_raw(&session, &["--idle", "--errors"]))
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(info["samples"].as_u64(), Some(stored), "{info}");
    assert_eq!(info["snapshots"].as_u64(), Some(snapshots));
    assert_eq!(info["requested_rate"].as_u64(), Some(200));
    assert_eq!(info["ended_normally"], true);
    assert_eq!(info["stop_reason"], "duration");
    let achieved = info["achieved_rate"].as_f64().unwrap();
    assert!((100.0..=210.0).contains(&achieved), "{achieved}");
    let threads = info["threads"].as_array().unwrap();
    let napper = threads
        .iter()
        .find(|t| t["names"][0][1] == "napper")
        .unwrap_or_else(|| panic!("no napper in {threads:?}"));
    assert!(napper["samples"].as_u64().unwrap() >= snapshots - 1);
    let per_thread: u64 = threads.iter().map(|t| t["samples"].as_u64().unwrap()).sum();
    assert_eq!(per_thread, stored);
    let (code, text, _) = run_py_spy(&["info", s]);
    assert_eq!(code, 0);
    assert!(
        text.contains("ended normally (duration)") && text.contains("napper"),
        "{text}"
    );

    // Killed mid-capture: still described, and said to have not ended normally.
    let target = spawn(&py.path, SCRIPT, &["60"]);
    let killed = dir.join("killed.pyspy");
    let mut child = std::process::Command::new(py_spy_bin())
        .args([
            "capture",
            "--pid",
            &target.pid.to_string(),
            "-r",
            "200",
            "-o",
        ])
        .arg(&killed)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();
    let k = killed.to_str().unwrap();
    let (code, out, err) = run_py_spy(&["info", k, "--json"]);
    assert_eq!(code, 0, "{err}");
    let info: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["ended_normally"], false);
    assert!(info["samples"].as_u64().unwrap() > 100, "{info}");
    assert!(info["snapshots"].as_u64().unwrap() > 50, "{info}");
    let (_, text, _) = run_py_spy(&["info", k]);
    assert!(text.contains("did not end normally"), "{text}");
}

#[test]
fn dump_at_a_time_shows_the_stacks_of_then() {
    let dir = tmpdir("analyze-dump");
    let py = first_supported();
    println!("[test] checking {}", py.label);
    let target = spawn(&py.path, "two_phases.py", &[]);
    let session = dir.join("phases.pyspy");
    let s = session.to_str().unwrap();
    let pid = target.pid.to_string();
    let (code, _, err) = run_py_spy(&["capture", "--pid", &pid, "-r", "100", "-d", "3", "-o", s]);
    assert_eq!(code, 0, "{err}");
    let first = format!(
        "first_phase (two_phases.py:{})",
        line_of("two_phases.py", "FIRST_LINE")
    );
    let second = format!(
        "second_phase (two_phases.py:{})",
        line_of("two_phases.py", "SECOND_LINE")
    );
    let spin = format!(
        "spin (two_phases.py:{})",
        line_of("two_phases.py", "SPIN_LINE")
    );
    // The capture starts 0.3 s after READY: the first phase runs until about 1.2 s.
    let (code, early, err) = run_py_spy(&["analyze", s, "--dump", "--at", "0.4"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Snapshot at 0.4"), "{err}");
    assert!(early.starts_with(&format!("Process {pid}: ")), "{early}");
    assert!(
        early.contains(&first) && early.contains(&spin) && !early.contains(&second),
        "{early}"
    );
    // The last snapshot (the default) and one at 2.5 s: the second phase.
    for args in [&["--dump"][..], &["--dump", "--at", "2.5"][..]] {
        let mut argv = vec!["analyze", s];
        argv.extend_from_slice(args);
        let (code, late, err) = run_py_spy(&argv);
        assert_eq!(code, 0, "{err}");
        assert!(
            late.contains(&second) && !late.contains(&first),
            "{args:?}: {late}"
        );
        assert!(
            late.contains("Thread ") && late.contains("(active"),
            "{late}"
        );
    }
    // As JSON, as `dump --json` writes it.
    let (code, json, err) = run_py_spy(&["analyze", s, "--dump", "--json"]);
    assert_eq!(code, 0, "{err}");
    let traces: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(traces[0]["frames"][1]["name"], "second_phase", "{traces}");
    // --at needs --dump.
    let (code, _, _) = run_py_spy(&["analyze", s, "--at", "1"]);
    assert_ne!(code, 0);
}

#[test]
fn diffs_between_recordings() {
    let dir = tmpdir("analyze-diff");
    let py = first_supported();
    println!("[test] checking {}", py.label);
    let base = dir.join("base.pyspy");
    capture(&py, &base);
    let new = dir.join("new.pyspy");
    {
        let target = spawn(&py.path, "two_phases.py", &[]);
        let pid = target.pid.to_string();
        let n = new.to_str().unwrap();
        let (code, _, err) =
            run_py_spy(&["capture", "--pid", &pid, "-r", "200", "-d", "2", "-o", n]);
        assert_eq!(code, 0, "{err}");
    }
    let (b, n) = (base.to_str().unwrap(), new.to_str().unwrap());
    // A recording against itself: nothing changed.
    let same = analyze_json(&base, &["--diff", b]);
    assert!(!same.is_empty());
    assert!(
        same.iter().all(|r| r["own_change"].as_f64() == Some(0.0)),
        "{same:?}"
    );
    // phases.py's heavy is gone, two_phases.py's spin came.
    let rows = analyze_json(&new, &["--diff", b]);
    let heavy = find(&rows, "heavy");
    assert!(heavy["own_change"].as_f64().unwrap() < -30.0, "{heavy}");
    assert_eq!(heavy["new_own_samples"], 0);
    let spin = find(&rows, "spin");
    assert!(spin["own_change"].as_f64().unwrap() > 30.0, "{spin}");
    assert_eq!(spin["base_own_samples"], 0);
    let first = rows[0]["own_change"].as_f64().unwrap().abs();
    assert!(rows
        .iter()
        .all(|r| r["own_change"].as_f64().unwrap().abs() <= first));
    // The differential collapsed stacks: the new counts are the new recording's.
    let (code, raw, err) = run_py_spy(&["render", n, "--diff", b, "-f", "raw", "-o", "-"]);
    assert_eq!(code, 0, "{err}");
    let mut new_total = 0u64;
    for line in raw.lines() {
        let mut fields = line.rsplitn(3, ' ');
        let after: u64 = fields.next().unwrap().parse().unwrap();
        let _before: u64 = fields.next().unwrap().parse().unwrap();
        let stack = fields.next().unwrap();
        if stack.contains("heavy (phases.py:") {
            assert_eq!(after, 0, "{line}");
        }
        new_total += after;
    }
    let plain: u64 = parse_collapsed(&render_raw(&new, &[]))
        .iter()
        .map(|(_, c)| c)
        .sum();
    assert_eq!(new_total, plain);
    let svg = dir.join("diff.svg");
    let (code, _, err) = run_py_spy(&["render", n, "--diff", b, "-o", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("spin (two_phases.py:"),
        "{}",
        &svg[..200]
    );
    let (code, _, err) = run_py_spy(&["render", n, "--diff", b, "-f", "speedscope", "-o", "-"]);
    assert_ne!(code, 0);
    assert!(err.contains("--diff draws a flamegraph or raw"), "{err}");
}

/// A time window that cannot hold a sample is an error; one past the session's end says
/// what the session spans, and a finished session read leaves no file beside it.
#[test]
fn time_windows_outside_the_session_are_explained() {
    let py = first_supported();
    let dir = tmpdir("time-windows");
    let session = dir.join("run.pyspy");
    capture(&py, &session);
    let s = session.to_str().unwrap();
    let (code, _, err) = run_py_spy(&[
        "render", s, "-f", "raw", "-o", "-", "--from", "4", "--to", "2",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--from 4 s is not before --to 2 s"), "{err}");
    let (code, out, err) = run_py_spy(&["render", s, "-f", "raw", "-o", "-", "--from", "100"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("the session's samples span 0.00 s to "),
        "{err}"
    );
    let sides: Vec<bool> = py_spy::store::schema::side_files(&session)
        .iter()
        .map(|p| p.exists())
        .collect();
    assert_eq!(sides, [false, false, false]);
    let _ = std::fs::remove_dir_all(&dir);
}
