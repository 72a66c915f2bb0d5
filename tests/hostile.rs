//! Hostile targets (`tests/scripts/hostile.py`): a profiler must not freeze, crash on or lie
//! about a production process, whatever it does.
//!
//! - Thousands of threads: blocking mode pauses every thread for a snapshot, one ptrace stop
//!   at a time, which froze a 2000-thread program for most of a second. The pause is bounded:
//!   a snapshot that would pause longer than `MAX_PAUSE` is taken without pausing, counted and
//!   reported; the longest stall is measured from inside the target by a native thread
//!   (`tests/scripts/stallmeter.c`, built here with `cc`), against the same program's
//!   stalls before the capture.
//! - Threads started and ended every millisecond; functions compiled and freed all the time
//!   (a frame's name and file must still agree); `sys.modules` and `threading._active`
//!   replaced by odd objects; a target that exits while it is sampled.

mod common;

use common::*;
use py_spy::capture::spy::MAX_PAUSE;
use py_spy::store::{SampleFilter, Session};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One hostile test at a time: each measures timing, and the targets load the machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("py-spy-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `tests/scripts/stallmeter.c`, built once.
fn meter_lib() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = dir().join("stallmeter.so");
            let src = script("stallmeter.c");
            let (code, _, err) = run(
                Path::new("cc"),
                &[
                    "-O2",
                    "-shared",
                    "-fPIC",
                    "-pthread",
                    "-o",
                    out.to_str().unwrap(),
                    src.to_str().unwrap(),
                ],
            );
            assert_eq!(code, 0, "could not build the stall meter with cc: {err}");
            out
        })
        .clone()
}

/// CLOCK_MONOTONIC in seconds, the clock the stall meter writes.
fn monotonic_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// The longest stall (ms) the meter wrote for the time between `from` and `to`.
fn longest_stall(log: &Path, from: f64, to: f64) -> f64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (t, ms) = l.split_once(' ')?;
            Some((t.parse::<f64>().ok()?, ms.parse::<f64>().ok()?))
        })
        .filter(|&(t, _)| from <= t && t <= to)
        .map(|(_, ms)| ms)
        .fold(0.0, f64::max)
}

/// Start `hostile.py MODE ARGS` under `python`, with the stall meter writing to `stalls`.
fn hostile(python: &Path, args: &[&str], stalls: Option<&Path>) -> Target {
    let mut env = Vec::new();
    if let Some(log) = stalls {
        env.push(("HOSTILE_METER", meter_lib()));
        env.push(("HOSTILE_STALLS", log.to_path_buf()));
    }
    spawn_env(python, "hostile.py", args, &env)
}

/// The state letter of `/proc/PID/stat` (`t`: stopped by a tracer, `T`: stopped).
fn state_of(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

/// Capture `target` (with `threads` threads) for 2 s in blocking mode; returns the session's
/// (longest pause µs, unpaused snapshots, snapshots).
fn capture(target: &Target, threads: usize, out: &Path) -> (u64, u64, u64) {
    let pid = target.pid.to_string();
    let begin = Instant::now();
    let (code, _, err) = run_py_spy(&[
        "capture",
        "--pid",
        &pid,
        "-d",
        "2",
        "--hideprogress",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    // -d is wall time, however long the snapshots take (attaching comes before it).
    let sampled: f64 = err
        .split(" snapshots in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no sampling time in {err}"));
    assert!(sampled < 3.0, "-d 2 sampled for {sampled} s");
    println!(
        "{threads} threads: capture ran {:.1?}, sampled {sampled} s",
        begin.elapsed()
    );
    // Never left stopped or traced.
    let state = state_of(target.pid);
    assert!(!matches!(state, 't' | 'T'), "target left in state {state}");
    let (snapshots, _) = capture_counts(&err);
    if threads < 100 {
        enough_snapshots(snapshots, 200, &format!("{threads} threads"));
    } else {
        // Reading thousands of threads takes longer than a period: the ticks missed are said.
        assert!(snapshots >= 10, "{threads} threads: {snapshots} snapshots");
    }
    if snapshots < 190 {
        assert!(
            err.contains("ticks skipped"),
            "{snapshots} snapshots, and no word: {err}"
        );
    }
    let session = Session::open(out).unwrap();
    let end = session.meta.end.clone().expect("the capture ended cleanly");
    assert_eq!(end.snapshots, snapshots);
    if end.unpaused_snapshots > 0 {
        assert!(err.contains("taken without pausing the program"), "{err}");
    }
    // Each sample says whether its snapshot paused the target; the unpaused ones are as many
    // as the unpaused snapshots' threads.
    let (mut paused, mut unpaused) = (0u64, 0u64);
    for s in session.samples(&SampleFilter::default()).unwrap() {
        if s.unwrap().paused() {
            paused += 1;
        } else {
            unpaused += 1;
        }
    }
    assert_eq!(paused + unpaused, session.sample_count().unwrap());
    assert_eq!(
        unpaused > 0,
        end.unpaused_snapshots > 0,
        "{unpaused} samples flagged unpaused, {} snapshots counted unpaused",
        end.unpaused_snapshots
    );
    assert!(
        unpaused >= end.unpaused_snapshots
            && unpaused <= end.unpaused_snapshots * (threads as u64 + 8),
        "{unpaused} unpaused samples for {} unpaused snapshots of {threads} threads",
        end.unpaused_snapshots
    );
    (end.longest_pause_us, end.unpaused_snapshots, snapshots)
}

/// Blocking capture of a program with `threads` parked threads for 2 s; returns the
/// session's (longest pause µs, unpaused snapshots, snapshots) and the longest stall the
/// program measured during the capture and in as long a time before it (ms).
fn measured_capture(python: &Path, threads: usize, out: &Path) -> ((u64, u64, u64), f64, f64) {
    let stalls = out.with_extension("stalls");
    let _ = std::fs::remove_file(&stalls);
    let target = hostile(python, &["many", &threads.to_string()], Some(&stalls));
    let before = monotonic_s();
    std::thread::sleep(Duration::from_secs(2));
    let start = monotonic_s();
    let counts = capture(&target, threads, out);
    let end = monotonic_s();
    let during = longest_stall(&stalls, start, end);
    let baseline = longest_stall(&stalls, before, start);
    (counts, during, baseline)
}

#[test]
fn blocking_mode_never_freezes_a_target_with_two_thousand_threads() {
    let _one = serial();
    let python = first_supported();
    println!("[test] checking {}", python.label);
    let dir = dir();
    let bound = MAX_PAUSE.as_micros() as u64;

    let ((pause, unpaused, snapshots), during, baseline) =
        measured_capture(&python.path, 2000, &dir.join("many.pyspy"));
    println!(
        "2000 threads: longest pause {pause} µs, {unpaused} of {snapshots} snapshots unpaused; \
         longest stall inside the program {during:.1} ms during the capture, {baseline:.1} ms \
         in the 2 s before it"
    );
    assert!(pause <= bound, "paused {pause} µs, more than {bound}");
    assert!(unpaused > 0, "pausing 2000 threads was not avoided");
    // py-spy 0.4.3 stalls this program for 0.5 s at a time (and pausing every thread took
    // ours up to 1.1 s); its own stalls (2000 threads waking) are tens of milliseconds. On 2
    // cores, a capture taking one of them also delays the meter's thread now and then (one
    // CI run saw 130 ms against 25 ms before, without a single pause): what is checked is
    // that nothing near a pause of all threads happens.
    let allowed = 2.0 * baseline + 200.0;
    assert!(
        during <= allowed,
        "the program stalled {during:.1} ms during the capture, {baseline:.1} ms before it"
    );

    // A few threads: paused as asked, every time, briefly; the program saw about that.
    let ((pause, unpaused, snapshots), during, baseline) =
        measured_capture(&python.path, 4, &dir.join("few.pyspy"));
    println!(
        "4 threads: longest pause {pause} µs, {unpaused} of {snapshots} unpaused; longest \
         stall inside the program {during:.1} ms during the capture, {baseline:.1} ms before"
    );
    assert_eq!(unpaused, 0, "a 4-thread target is paused for each snapshot");
    assert!(pause > 0 && pause <= 4 * bound, "longest pause {pause} µs");
    assert!(
        during <= pause as f64 / 1000.0 + baseline + 20.0,
        "the program stalled {during:.1} ms; the longest pause counted was {pause} µs"
    );
}

/// `capture --pid` of `target` for `seconds` with `extra` flags; returns stderr (asserting
/// success) and the session's path.
fn capture_for(target: &Target, seconds: &str, extra: &[&str], out: &Path) -> String {
    let pid = target.pid.to_string();
    let mut argv = vec![
        "capture",
        "--pid",
        &pid,
        "-d",
        seconds,
        "--hideprogress",
        "-o",
    ];
    argv.push(out.to_str().unwrap());
    argv.extend_from_slice(extra);
    let (code, _, err) = run_py_spy(&argv);
    assert_eq!(code, 0, "capture {extra:?} failed: {err}");
    err
}

/// Collapsed stacks of a session, errors and idle samples included.
fn stacks_of(session: &Path) -> Vec<(String, u64)> {
    parse_collapsed(&render_raw(session, &["--idle", "--errors"]))
}

/// Samples whose innermost frame is the busy loop (on either of its lines).
fn busy_samples(stacks: &[(String, u64)]) -> u64 {
    let in_busy = |stack: &str| {
        stack
            .rsplit(';')
            .next()
            .is_some_and(|leaf| leaf.starts_with("busy (hostile.py:"))
    };
    stacks
        .iter()
        .filter(|(s, _)| in_busy(s))
        .map(|(_, n)| n)
        .sum()
}

#[test]
fn threads_started_and_ended_every_millisecond() {
    let _one = serial();
    let python = first_supported();
    println!("[test] checking {}", python.label);
    let target = hostile(&python.path, &["thread-churn"], None);
    for mode in [&[][..], &["--nonblocking"][..]] {
        let out = dir().join("churn.pyspy");
        let mut flags = vec!["-r", "200"];
        flags.extend_from_slice(mode);
        let begin = Instant::now();
        let err = capture_for(&target, "2", &flags, &out);
        let took = begin.elapsed();
        let (snapshots, error_samples) = capture_counts(&err);
        println!(
            "{mode:?}: {snapshots} snapshots in {took:.1?}, {error_samples} error samples: {err}"
        );
        assert!(took < Duration::from_secs(4), "-d 2 took {took:?}");
        // Ticks not taken are said, as loudly as late ones.
        if snapshots < 390 {
            assert!(
                err.contains("ticks skipped"),
                "{snapshots} snapshots, and no word: {err}"
            );
        }
        enough_snapshots(snapshots, 400, &format!("thread churn {mode:?}"));
        let stacks = stacks_of(&out);
        let total: u64 = stacks.iter().map(|(_, n)| n).sum();
        let busy = busy_samples(&stacks);
        // The long-lived busy thread is in (nearly) every snapshot, read whole.
        assert!(
            busy * 10 >= snapshots * 9,
            "busy in {busy} of {snapshots} snapshots"
        );
        assert!(
            error_samples * 10 <= total,
            "{error_samples} of {total} samples lost"
        );
    }
}

#[test]
fn functions_compiled_and_freed_all_the_time_keep_their_names() {
    let _one = serial();
    let python = first_supported();
    println!("[test] checking {}", python.label);
    let target = hostile(&python.path, &["code-churn"], None);
    for mode in [&[][..], &["--nonblocking"][..]] {
        let out = dir().join("code.pyspy");
        let mut flags = vec!["-r", "500"];
        flags.extend_from_slice(mode);
        capture_for(&target, "2", &flags, &out);
        let mut generated = 0u64;
        for (stack, n) in stacks_of(&out) {
            for frame in stack.split(';') {
                // `f_N (<gen-N>:2)`: a code object freed and its address reused must never
                // be shown under the old one's name or file. (The module code that defines
                // `f_N` runs from `<gen-N>` too.)
                if frame.starts_with("<module> (<gen-") {
                    continue;
                }
                if let Some(rest) = frame.strip_prefix("f_") {
                    let (num, file) = rest.split_once(" (").expect("a file");
                    // Line 2 runs; line 1 (the `def`) while the call starts.
                    assert!(
                        file == format!("<gen-{num}>:2)") || file == format!("<gen-{num}>:1)"),
                        "{frame} in {stack}"
                    );
                    generated += n;
                } else {
                    assert!(
                        !frame.contains("<gen-"),
                        "a generated file under another name: {frame} in {stack}"
                    );
                }
            }
        }
        println!("{mode:?}: {generated} samples in generated functions, each under its own name");
        assert!(
            generated >= 50,
            "only {generated} samples in generated functions"
        );
    }
}

#[test]
fn odd_sys_modules_and_threading_active_are_survived() {
    let _one = serial();
    let cases: &[&[&str]] = &[
        &["odd-modules"],
        &["odd-active", "list"],
        &["odd-active", "selfref"],
        &["odd-active", "strkeys"],
        &["odd-active", "huge"],
    ];
    on_each_supported_from("odd_objects", (3, 6), |py| {
        for case in cases {
            let target = hostile(&py.path, case, None);
            // One snapshot, with locals: the names are read, and the objects.
            let pid = target.pid.to_string();
            let begin = Instant::now();
            let (code, out, err) = run_py_spy(&["dump", "--pid", &pid, "--locals"]);
            assert_eq!(code, 0, "{} {case:?}: dump failed: {err}", py.label);
            assert!(
                out.contains("busy (hostile.py:"),
                "{} {case:?}: {out}",
                py.label
            );
            assert!(
                begin.elapsed() < Duration::from_secs(10),
                "{} {case:?}: dump took {:?}",
                py.label,
                begin.elapsed()
            );
            if py.label == first_supported().label {
                let session = dir().join("odd.pyspy");
                let err = capture_for(&target, "1", &["-r", "200"], &session);
                let (snapshots, _) = capture_counts(&err);
                enough_snapshots(snapshots, 200, &format!("{case:?}"));
                let stacks = stacks_of(&session);
                let busy_n = busy_samples(&stacks);
                assert!(
                    busy_n * 10 >= snapshots * 9,
                    "{case:?}: busy in {busy_n} of {snapshots}"
                );
            }
        }
    });
}

#[test]
fn a_target_that_exits_while_sampled_ends_the_capture_cleanly() {
    let _one = serial();
    let python = first_supported();
    println!("[test] checking {}", python.label);
    let mut rng = Rng(0x5eed_0fe1);
    for round in 0..8 {
        // From READY (the test starts capturing 0.3 s after it) or from the spawn.
        let after = 0.4 + rng.below(1500) as f64 / 1000.0;
        let out = dir().join(format!("exit-{round}.pyspy"));
        let blocking = round % 2 == 0;
        let mut argv: Vec<String> = ["capture", "-r", "1000", "-d", "10", "--hideprogress", "-o"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        argv.push(out.to_str().unwrap().into());
        if !blocking {
            argv.push("--nonblocking".into());
        }
        let target;
        let begin = Instant::now();
        let (code, err) = if round % 4 < 2 {
            // Attached: the program ends by itself mid-capture.
            target = hostile(&python.path, &["exit-after", &after.to_string()], None);
            argv.extend(["--pid".to_string(), target.pid.to_string()]);
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let (code, _, err) = run_py_spy(&args);
            (code, err)
        } else {
            // Spawned.
            argv.extend([
                "--".to_string(),
                python.path.to_str().unwrap().to_string(),
                script("hostile.py").to_str().unwrap().to_string(),
                "exit-after".to_string(),
                after.to_string(),
            ]);
            let args: Vec<&str> = argv.iter().map(String::as_str).collect();
            let (code, _, err) = run_py_spy(&args);
            (code, err)
        };
        let took = begin.elapsed();
        println!("round {round}: exits after {after:.2} s, blocking {blocking}: took {took:.1?}");
        assert_eq!(code, 0, "round {round}: {err}");
        assert!(
            took < Duration::from_secs_f64(after + 5.0),
            "round {round}: took {took:?}"
        );
        let session = Session::open(&out).unwrap_or_else(|e| panic!("round {round}: {e:#}"));
        assert!(
            session.meta.end.is_some(),
            "round {round}: the capture did not end cleanly"
        );
        let stacks = stacks_of(&out);
        assert!(
            stacks.iter().any(|(s, _)| s.contains("busy (hostile.py:")),
            "round {round}: {stacks:?}"
        );
    }
}
