//! Record-then-analyze against real Python processes: capture a scripted program into a
//! session file, render it with each of py-spy's record-time options, and check the exact
//! stacks (names, files, lines) and their proportions; compare with py-spy 0.4.3 recording
//! the same process with the same options; kill a capture with SIGKILL and render what it
//! left; stop `record` with Ctrl-C.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = "phases.py";

fn render(session: &Path, args: &[&str]) -> String {
    render_raw(session, args)
}

/// Shares of each stack, and the total.
fn shares(stacks: &[(String, u64)]) -> (HashMap<String, f64>, u64) {
    let total: u64 = stacks.iter().map(|(_, c)| c).sum();
    let mut m = HashMap::new();
    for (s, c) in stacks {
        *m.entry(s.clone()).or_insert(0.0) += *c as f64 / total.max(1) as f64;
    }
    (m, total)
}

struct Lines {
    heavy: i32,
    light: i32,
    call_heavy: i32,
    call_light: i32,
    call_main: i32,
    nap: i32,
    heavy_def: i32,
    light_def: i32,
    main_def: i32,
}

fn lines() -> Lines {
    Lines {
        heavy: line_of(SCRIPT, "HEAVY_LINE"),
        light: line_of(SCRIPT, "LIGHT_LINE"),
        call_heavy: line_of(SCRIPT, "CALL_HEAVY"),
        call_light: line_of(SCRIPT, "CALL_LIGHT"),
        call_main: line_of(SCRIPT, "CALL_MAIN"),
        nap: line_of(SCRIPT, "NAP_LINE"),
        heavy_def: line_of(SCRIPT, "HEAVY_DEF"),
        light_def: line_of(SCRIPT, "LIGHT_DEF"),
        main_def: line_of(SCRIPT, "MAIN_DEF"),
    }
}

/// Capture `pid` into `session`; returns (snapshots taken, thread stacks stored as errors).
fn capture_pid(pid: i32, session: &Path, rate: &str, seconds: &str, extra: &[&str]) -> (u64, u64) {
    let pid = pid.to_string();
    let mut argv = vec![
        "capture",
        "--pid",
        &pid,
        "-o",
        session.to_str().unwrap(),
        "-r",
        rate,
        "-d",
        seconds,
    ];
    argv.extend_from_slice(extra);
    let (code, _, err) = run_py_spy(&argv);
    assert_eq!(code, 0, "capture failed: {err}");
    assert!(err.contains("Wrote session"), "capture said: {err}");
    capture_counts(&err)
}

/// One capture, rendered with each of py-spy's record-time options: exact stacks and the
/// proportions the script sets up.
#[test]
fn one_capture_every_view() {
    let l = lines();
    on_each_supported("one_capture_every_view", |py| {
        let dir = tmpdir("views");
        let session = dir.join("run.pyspy");
        let target = spawn(&py.path, SCRIPT, &["60"]);
        // Without pausing: a pause wakes the sleeping thread (CPython retakes the GIL to check
        // for signals), and a later sample may catch it running. py-spy does the same.
        let (snapshots, errors) = capture_pid(target.pid, &session, "200", "3", &["--nonblocking"]);
        enough_snapshots(snapshots, 600, &py.label);
        let main_tid = target.pid.to_string();
        drop(target);

        let heavy = format!(
            "<module> (phases.py:{});main (phases.py:{});heavy (phases.py:{})",
            l.call_main, l.call_heavy, l.heavy
        );
        let light = format!(
            "<module> (phases.py:{});main (phases.py:{});light (phases.py:{})",
            l.call_main, l.call_light, l.light
        );

        // Default: active threads only, current lines, short file names.
        let stacks = parse_collapsed(&render(&session, &[]));
        let (s, total) = shares(&stacks);
        // The main thread is busy throughout: active in (nearly) every snapshot.
        assert!(
            total * 100 >= (snapshots - errors) * 97,
            "{}: {total} active samples of {snapshots} snapshots ({errors} errors)",
            py.label
        );
        let h = s.get(&heavy).copied().unwrap_or(0.0);
        let li = s.get(&light).copied().unwrap_or(0.0);
        assert!(
            (h - 2.0 / 3.0).abs() < 0.12 && (li - 1.0 / 3.0).abs() < 0.12,
            "heavy {h:.3} light {li:.3} (expected ~0.67 / ~0.33) in {stacks:?}"
        );
        assert!(
            h + li > 0.9,
            "other stacks took {:.3}: {stacks:?}",
            1.0 - h - li
        );
        // The sleeping thread is idle and left out by default.
        assert!(
            stacks.iter().all(|(st, _)| !st.contains("nap (")),
            "the sleeping thread is idle and left out by default: {stacks:?}"
        );

        // --idle: the napper thread too, once per snapshot.
        let idle = parse_collapsed(&render(&session, &["--idle"]));
        let nap_stack = idle
            .iter()
            .find(|(st, _)| st.ends_with(&format!("nap (phases.py:{})", l.nap)))
            .unwrap_or_else(|| panic!("no napper stack with --idle: {idle:?}"));
        // The thread's root: `Thread._bootstrap` from 3.11 (qualified names), `_bootstrap`
        // before, `__bootstrap` in 2.7.
        let root = nap_stack.0.split(" (").next().unwrap_or("");
        assert!(
            ["Thread._bootstrap", "_bootstrap", "__bootstrap"].contains(&root)
                && nap_stack.0[root.len()..].starts_with(" (threading.py:"),
            "napper stack root: {}",
            nap_stack.0
        );
        let idle_total: u64 = idle.iter().map(|(_, c)| c).sum();
        assert!(
            nap_stack.1 * 2 >= idle_total - 10 && nap_stack.1 * 2 <= idle_total + 10,
            "napper has {} of {idle_total} samples; one per snapshot expected",
            nap_stack.1
        );

        // --gil: only the main thread (it holds the GIL while it spins).
        let gil = parse_collapsed(&render(&session, &["--gil"]));
        let (gs, gtotal) = shares(&gil);
        assert!(
            gtotal as f64 >= total as f64 * 0.8,
            "--gil kept {gtotal} of {total}"
        );
        assert!(gil.iter().all(|(st, _)| !st.contains("nap (")), "{gil:?}");
        assert!(gs.get(&heavy).copied().unwrap_or(0.0) > 0.5, "{gil:?}");

        // --threads: a thread root frame, named as py-spy names it.
        let threads = parse_collapsed(&render(&session, &["--threads", "--idle"]));
        let main_prefix = format!("thread ({main_tid}): MainThread;");
        for (st, _) in &threads {
            assert!(
                st.starts_with(&main_prefix)
                    || (st.starts_with("thread (") && st.contains("): napper;")),
                "stack without its thread frame: {st}"
            );
        }
        assert!(threads
            .iter()
            .any(|(st, _)| *st == format!("{main_prefix}{heavy}")));

        // --nolineno: lines merge.
        let nolineno = parse_collapsed(&render(&session, &["--nolineno"]));
        let (ns, _) = shares(&nolineno);
        let h2 = ns
            .get("<module> (phases.py);main (phases.py);heavy (phases.py)")
            .copied()
            .unwrap_or(0.0);
        assert!(
            (h2 - h).abs() < 0.03,
            "nolineno heavy {h2} vs {h}: {nolineno:?}"
        );
        assert!(nolineno.iter().all(|(st, _)| !st.contains(".py:")));

        // --function: first lines of the functions.
        let function = parse_collapsed(&render(&session, &["--function"]));
        // The module's "first line" is CPython's own co_firstlineno (2.7: its first statement).
        let module_first = module_first_line(py);
        let want = format!(
            "<module> (phases.py:{module_first});main (phases.py:{});heavy (phases.py:{})",
            l.main_def, l.heavy_def
        );
        let want_light = format!(
            "<module> (phases.py:{module_first});main (phases.py:{});light (phases.py:{})",
            l.main_def, l.light_def
        );
        let (fs, _) = shares(&function);
        let hf = fs.get(&want).copied().unwrap_or(0.0);
        let lf = fs.get(&want_light).copied().unwrap_or(0.0);
        assert!(hf + lf > 0.95, "--function: {function:?}");

        // --full-filenames.
        let full = render(&session, &["--full-filenames"]);
        let path = script(SCRIPT);
        assert!(
            full.contains(&format!("heavy ({}:{})", path.display(), l.heavy)),
            "{full}"
        );

        // Filters: --thread by name, --from/--to, --pid.
        let only_napper = parse_collapsed(&render(&session, &["--idle", "--thread", "napper"]));
        assert!(!only_napper.is_empty());
        assert!(
            only_napper.iter().all(|(st, _)| st.contains("nap (")),
            "{only_napper:?}"
        );
        let first_second = parse_collapsed(&render(&session, &["--to", "1"]));
        let n1: u64 = first_second.iter().map(|(_, c)| c).sum();
        assert!(
            n1 as f64 > total as f64 * 0.2 && (n1 as f64) < total as f64 * 0.45,
            "--to 1 kept {n1} of {total}"
        );
        let windowed = parse_collapsed(&render(&session, &["--from", "1", "--to", "2"]));
        let n2: u64 = windowed.iter().map(|(_, c)| c).sum();
        assert!(
            n2 as f64 > total as f64 * 0.2 && (n2 as f64) < total as f64 * 0.45,
            "--from 1 --to 2 kept {n2} of {total}"
        );
        let pid = main_tid.clone();
        let by_pid = parse_collapsed(&render(&session, &["--pid", &pid]));
        assert_eq!(by_pid, stacks);
        let (code, _, err) = run_py_spy(&[
            "render",
            session.to_str().unwrap(),
            "-f",
            "raw",
            "-o",
            "-",
            "--thread",
            "no-such-thread",
        ]);
        assert_eq!(code, 1);
        assert!(
            err.contains("no thread matches 'no-such-thread'") && err.contains("napper"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// The same process recorded at the same time by py-spy 0.4.3 with each record-time option,
/// and by one capture of ours rendered with that option: the same stacks, in the same
/// proportions (both sides sample the same process without pausing it, at 100 Hz for 3 s).
#[test]
fn views_match_py_spy_at_record_time() {
    let Some(reference) = reference_py_spy("views_match_py_spy_at_record_time") else {
        return;
    };
    let option_sets: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--idle"],
        vec!["--gil", "--idle"],
        vec!["--threads", "--idle"],
        vec!["--nolineno"],
        vec!["--function"],
    ];
    on_each_supported("views_match_py_spy_at_record_time", |py| {
        let dir = tmpdir("vs-py-spy");
        let session = dir.join("run.pyspy");
        let target = spawn(&py.path, SCRIPT, &["60"]);
        let pid = target.pid.to_string();
        let mut theirs = Vec::new();
        for (i, opts) in option_sets.iter().enumerate() {
            let out = dir.join(format!("py-spy-{i}.txt"));
            let mut cmd = Command::new(&reference);
            cmd.args([
                "record",
                "--pid",
                &pid,
                "--nonblocking",
                "-r",
                "100",
                "-d",
                "3",
            ])
            .args(["-f", "raw", "--hideprogress", "-o"])
            .arg(&out)
            .args(opts)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            theirs.push((out, cmd.spawn().expect("run py-spy 0.4.3")));
        }
        capture_pid(target.pid, &session, "100", "3", &["--nonblocking"]);
        for (i, (out, mut child)) in theirs.into_iter().enumerate() {
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "py-spy 0.4.3 failed with {:?}",
                option_sets[i]
            );
            let reference_text = std::fs::read_to_string(&out).unwrap();
            let ours_text = render(&session, &option_sets[i]);
            let mut reference = parse_collapsed(&reference_text);
            let mut ours = parse_collapsed(&ours_text);
            // Without pausing, py-spy 0.4.3 has no OS thread id before 3.11 (thread states
            // lack one until then; ours reads it from glibc's struct pthread). So it labels
            // threads by pthread id (`thread (0x7F..)`): compare those views without the
            // label; and it counts sleeping threads as active (it shows the napper without
            // --idle): ours leaves them out, as one_capture_every_view checks.
            let no_tid = (py.version.0, py.version.1) < (3, 11);
            if no_tid && option_sets[i].contains(&"--threads") {
                for (st, _) in reference.iter_mut().chain(ours.iter_mut()) {
                    if let Some((_, rest)) = st.split_once(';') {
                        *st = rest.to_string();
                    }
                }
            }
            if no_tid && !option_sets[i].contains(&"--idle") {
                reference.retain(|(st, _)| !st.contains("nap (phases.py"));
            }
            let (a, na) = shares(&ours);
            let (b, nb) = shares(&reference);
            assert!(
                na > 0 && nb > 0,
                "{:?}: ours {na} samples, py-spy {nb}",
                option_sets[i]
            );
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (
                    a.get(k).copied().unwrap_or(0.0),
                    b.get(k).copied().unwrap_or(0.0),
                );
                if x.max(y) < 0.05 {
                    continue;
                }
                assert!(
                    (x - y).abs() < 0.12 && x > 0.0 && y > 0.0,
                    "{}: {:?}: stack {k} has share {x:.3} in ours, {y:.3} in py-spy 0.4.3's\n\
                     ours:\n{ours_text}\npy-spy:\n{reference_text}",
                    py.label,
                    option_sets[i]
                );
            }
        }
        drop(target);
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// A capture killed with SIGKILL after 4 s leaves a session that renders at least 3 s of
/// samples.
#[test]
fn capture_killed_with_sigkill_keeps_its_samples() {
    let py = first_supported();
    let dir = tmpdir("sigkill");
    let session = dir.join("killed.pyspy");
    let target = spawn(&py.path, SCRIPT, &["60"]);
    let mut capture = Command::new(py_spy_bin())
        .args([
            "capture",
            "--pid",
            &target.pid.to_string(),
            "-r",
            "100",
            "-o",
        ])
        .arg(&session)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    unsafe {
        libc::kill(capture.id() as i32, libc::SIGKILL);
    }
    let _ = capture.wait();
    drop(target);
    let s = py_spy::store::Session::open(&session).expect("a killed capture's file opens");
    let mut first = None;
    let mut last = 0;
    let mut n = 0u64;
    for sample in s.samples(&Default::default()).unwrap() {
        let sample = sample.expect("every stored chunk decodes");
        first.get_or_insert(sample.t_us);
        last = sample.t_us;
        n += 1;
    }
    let span = (last - first.unwrap_or(0)) as f64 / 1e6;
    eprintln!("[capture_killed_with_sigkill_keeps_its_samples] {n} samples over {span:.2} s");
    assert!(span >= 3.0, "only {span:.2} s of samples survived the kill");
    let raw = render(&session, &["--idle"]);
    let total: u64 = parse_collapsed(&raw).iter().map(|(_, c)| c).sum();
    assert_eq!(total, n);
    assert!(raw.contains("heavy (phases.py:"), "{raw}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `record -- python prog`, stopped with Ctrl-C (SIGINT): it still writes its output, and
/// `--session` keeps the session for another render.
#[test]
fn record_stopped_with_ctrl_c_writes_output() {
    let py = first_supported();
    let dir = tmpdir("ctrl-c");
    let out = dir.join("out.txt");
    let session = dir.join("kept.pyspy");
    let rec = Command::new(py_spy_bin())
        .args(["record", "-f", "raw", "-r", "100", "--hideprogress", "-o"])
        .arg(&out)
        .arg("--session")
        .arg(&session)
        .arg("--")
        .arg(&py.path)
        .arg(script(SCRIPT))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    unsafe {
        libc::kill(rec.id() as i32, libc::SIGINT);
    }
    let begin = Instant::now();
    let o = rec.wait_with_output().unwrap();
    assert!(
        begin.elapsed() < Duration::from_secs(10),
        "record took too long to stop"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("Stopped sampling because Control-C pressed"),
        "{stdout}"
    );
    assert!(stdout.contains("Wrote raw flamegraph data to"), "{stdout}");
    let text = std::fs::read_to_string(&out).unwrap();
    let stacks = parse_collapsed(&text);
    let total: u64 = stacks.iter().map(|(_, c)| c).sum();
    assert!(total >= 100, "{total} samples in {text}");
    assert!(text.contains(&format!(
        "heavy (phases.py:{})",
        line_of(SCRIPT, "HEAVY_LINE")
    )));
    assert_eq!(
        render(&session, &[]),
        text,
        "the kept session renders the same"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Errors a user can act on, for files that are not sessions.
#[test]
fn render_rejects_what_is_not_a_session() {
    let dir = tmpdir("not-session");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello, this is not a database\n").unwrap();
    let (code, _, err) = run_py_spy(&["render", text.to_str().unwrap(), "-o", "-"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: ") && err.contains("notes.txt"),
        "{err}"
    );
    let missing = dir.join("missing.pyspy");
    let (code, _, err) = run_py_spy(&["render", missing.to_str().unwrap(), "-o", "-"]);
    assert_eq!(code, 1);
    assert!(err.contains("missing.pyspy"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--subprocesses`: a child Python process started by the target is found and sampled;
/// its stacks sit under the parent's and its own process frames, as py-spy draws them.
#[test]
fn subprocesses_are_followed() {
    let py = first_supported();
    let dir = tmpdir("subprocesses");
    let out = dir.join("out.txt");
    let o = Command::new(py_spy_bin())
        .args([
            "record",
            "-s",
            "-f",
            "raw",
            "-r",
            "100",
            "-d",
            "3",
            "--hideprogress",
            "-o",
        ])
        .arg(&out)
        .arg("--")
        .arg(&py.path)
        .arg(script("parent_child.py"))
        .arg("20")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stacks = parse_collapsed(&std::fs::read_to_string(&out).unwrap());
    let parent_line = line_of("parent_child.py", "PARENT_LINE");
    let child_line = line_of("parent_child.py", "CHILD_LINE");
    let in_parent: u64 = stacks
        .iter()
        .filter(|(s, _)| {
            s.starts_with("process ")
                && s.contains(&format!("parent_work (parent_child.py:{parent_line})"))
        })
        .map(|(_, c)| c)
        .sum();
    let child: Vec<&(String, u64)> = stacks
        .iter()
        .filter(|(s, _)| s.contains(&format!("child_work (parent_child.py:{child_line})")))
        .collect();
    let in_child: u64 = child.iter().map(|(_, c)| c).sum();
    assert!(in_parent >= 50, "parent samples {in_parent}: {stacks:?}");
    assert!(in_child >= 50, "child samples {in_child}: {stacks:?}");
    for (s, _) in child {
        let frames: Vec<&str> = s.split(';').collect();
        assert!(
            frames[0].starts_with("process ") && frames[0].ends_with("parent_child.py 20\""),
            "root is the parent process: {s}"
        );
        assert!(
            frames[1].starts_with("process ") && frames[1].contains("parent_child.py child 20"),
            "then the child process: {s}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Errors of `record` and `capture` that a user can act on: one line, exit status 1, no
/// output file left behind, and no hang.
#[test]
fn record_and_capture_errors() {
    let dir = tmpdir("record-errors");
    let out = dir.join("out.svg");
    let out_s = out.to_str().unwrap();

    let (code, _, err) = run_py_spy(&["record", "--pid", "999999", "-o", out_s, "-d", "1"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: ") && err.contains("999999"),
        "{err}"
    );

    let begin = Instant::now();
    let (code, _, err) = run_py_spy(&["record", "-o", out_s, "-d", "1", "--", "/bin/sleep", "30"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a Python program"), "{err}");
    assert!(
        begin.elapsed() < Duration::from_secs(15),
        "gave up after {:?}",
        begin.elapsed()
    );

    let (code, _, err) = run_py_spy(&["record", "-o", out_s, "--", "/no/such/program"]);
    assert_eq!(code, 1);
    assert!(err.contains("could not start '/no/such/program'"), "{err}");

    let py = first_supported();
    let target = spawn(&py.path, SCRIPT, &["60"]);
    let pid = target.pid.to_string();
    let session = dir.join("s.pyspy");
    let (code, _, err) = run_py_spy(&[
        "capture",
        "--pid",
        &pid,
        "--native",
        "--nonblocking",
        "-o",
        session.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Can't get native stack traces with the --nonblocking option."),
        "{err}"
    );
    // Refused before anything starts: no banner as if it were sampling.
    let (code, said, err) = run_py_spy(&[
        "record",
        "--pid",
        &pid,
        "--native",
        "--nonblocking",
        "-o",
        out_s,
    ]);
    assert_eq!(code, 1);
    assert!(
        said.is_empty(),
        "record printed {said:?} before refusing --native --nonblocking"
    );
    assert!(err.contains("--nonblocking"), "{err}");
    let (code, _, err) = run_py_spy(&[
        "capture",
        "--pid",
        &pid,
        "-d",
        "0",
        "-o",
        session.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("--duration"), "{err}");
    assert!(
        !out.exists(),
        "no output file is written when nothing was recorded"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `co_firstlineno` of phases.py's module code, as the interpreter itself compiles it.
fn module_first_line(py: &Interpreter) -> i32 {
    let code = format!(
        "import sys; p = {:?}; sys.stdout.write(str(compile(open(p).read(), p, 'exec').co_firstlineno))",
        script(SCRIPT).display().to_string()
    );
    let out = std::process::Command::new(&py.path)
        .args(["-c", &code])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `capture -s` says how many processes it sampled, and counts in words that agree with
/// their numbers.
#[test]
fn capture_summary_counts_every_process() {
    let py = first_supported();
    let dir = tmpdir("capture-summary");
    let session = dir.join("s.pyspy");
    let o = std::process::Command::new(py_spy_bin())
        .args(["capture", "-s", "-d", "2", "--hideprogress", "-o"])
        .arg(&session)
        .arg("--")
        .arg(&py.path)
        .arg(script("parent_child.py"))
        .arg("20")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("Wrote session"))
        .unwrap();
    assert!(
        line.contains(" of 2 processes (process ") && line.contains(" and 1 subprocess)"),
        "{line}"
    );
    assert!(
        !line.contains(" 1 snapshots") && !line.contains(" 1 errors"),
        "{line}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
