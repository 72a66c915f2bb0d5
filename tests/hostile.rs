//! Hostile targets: a profiler must not freeze a production process. Blocking mode pauses
//! every thread of the target for a snapshot, one ptrace stop at a time; with a thousand
//! threads that froze it for most of a second. The pause is bounded: a snapshot that would
//! pause longer than `MAX_PAUSE` is taken without pausing, counted and reported.

mod common;

use common::*;
use py_spy::capture::spy::MAX_PAUSE;
use py_spy::store::{SampleFilter, Session};
use std::path::Path;

/// The state letter of `/proc/PID/stat` (`t`: stopped by a tracer, `T`: stopped).
fn state_of(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.chars().next().unwrap()
}

/// Capture `threads` parked threads for 2 s in blocking mode; returns the session's
/// (longest pause µs, unpaused snapshots, snapshots).
fn capture(python: &Path, threads: usize, out: &Path) -> (u64, u64, u64) {
    let target = spawn(python, "many_threads.py", &[&threads.to_string()]);
    let pid = target.pid.to_string();
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
    // Never left stopped or traced.
    let state = state_of(target.pid);
    assert!(!matches!(state, 't' | 'T'), "target left in state {state}");
    let (snapshots, _) = capture_counts(&err);
    enough_snapshots(snapshots, 200, &format!("{threads} threads"));
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
            && unpaused <= end.unpaused_snapshots * (threads as u64 + 1),
        "{unpaused} unpaused samples for {} unpaused snapshots of {threads} threads",
        end.unpaused_snapshots
    );
    (end.longest_pause_us, end.unpaused_snapshots, snapshots)
}

#[test]
fn blocking_mode_never_freezes_a_target_with_a_thousand_threads() {
    let python = first_supported();
    println!("[test] checking {}", python.label);
    let dir = std::env::temp_dir().join(format!("py-spy-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bound = MAX_PAUSE.as_micros() as u64;

    let (pause, unpaused, snapshots) = capture(&python.path, 1000, &dir.join("many.pyspy"));
    println!("1000 threads: longest pause {pause} µs, {unpaused} of {snapshots} unpaused");
    assert!(pause <= bound, "paused {pause} µs, more than {bound}");
    assert!(unpaused > 0, "pausing 1000 threads was not avoided");

    // A few threads: paused as asked, every time, briefly.
    let (pause, unpaused, snapshots) = capture(&python.path, 4, &dir.join("few.pyspy"));
    println!("4 threads: longest pause {pause} µs, {unpaused} of {snapshots} unpaused");
    assert_eq!(unpaused, 0, "a 4-thread target is paused for each snapshot");
    assert!(pause > 0 && pause <= 4 * bound, "longest pause {pause} µs");
    let _ = std::fs::remove_dir_all(&dir);
}
