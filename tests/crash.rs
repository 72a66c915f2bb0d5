//! Crash safety: `capture` killed (SIGKILL) at moments spread over its first seconds, pausing
//! the target or not, attached or having started it. The target keeps running and is never
//! left stopped or traced; the session opens and holds every sample up to about one commit
//! interval before the kill (or, killed before its first commit, says so).

mod common;

use common::*;
use py_spy::store::Session;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The state letter of `/proc/PID/stat`, if the process exists.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].chars().next()
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The writer commits at least every 0.5 s, after buffering samples up to 0.5 s: what a kill
/// may lose, with room for a loaded machine.
const MAX_LOST: Duration = Duration::from_millis(1600);

#[test]
fn killed_captures_leave_the_target_running_and_the_session_readable() {
    let python = first_supported();
    println!("[test] checking {}", python.label);
    let dir = std::env::temp_dir().join(format!("py-spy-crash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let target = spawn(&python.path, "deep.py", &["20"]);
    let pid = target.pid.to_string();
    let deep = script("deep.py");
    let mut opened = 0;
    // (how the target is found, extra flags, delay before the kill in ms)
    let cases: [(&str, &[&str], u64); 9] = [
        ("attach", &[], 40),
        ("attach", &[], 1300),
        ("attach", &[], 2700),
        ("attach", &["--nonblocking"], 900),
        ("attach", &["--nonblocking"], 2200),
        ("spawn", &[], 150),
        ("spawn", &[], 1800),
        ("spawn", &["--nonblocking"], 2500),
        ("attach", &[], 3100),
    ];
    for (i, (how, flags, delay)) in cases.iter().enumerate() {
        let out = dir.join(format!("kill{i}.pyspy"));
        let mut args: Vec<String> = ["capture", "-r", "100", "--hideprogress", "-o"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push(out.to_str().unwrap().to_string());
        args.extend(flags.iter().map(|s| s.to_string()));
        if *how == "attach" {
            args.extend(["--pid".to_string(), pid.clone()]);
        } else {
            args.extend([
                "--".to_string(),
                python.path.display().to_string(),
                deep.display().to_string(),
                "20".to_string(),
            ]);
        }
        let mut capture = Command::new(py_spy_bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        let killed_at = now_us();
        capture.kill().unwrap();
        capture.wait().unwrap();
        let what = format!("case {i} ({how} {flags:?}, killed after {delay} ms)");

        // The attached target runs on: never left stopped by a pause the kill interrupted.
        std::thread::sleep(Duration::from_millis(50));
        let state = state_of(target.pid).expect("the target still runs");
        assert!(
            !matches!(state, 't' | 'T'),
            "{what}: target left in state {state}"
        );

        match Session::open(&out) {
            Ok(session) => {
                opened += 1;
                let start = session.meta.start_unix_us;
                let last = session
                    .time_span_us()
                    .unwrap()
                    .map_or(start, |(_, last)| start + last);
                let lost = Duration::from_micros(killed_at.saturating_sub(last));
                // Killed before a first sample was due to be committed, nothing is expected.
                if *delay as u128 > MAX_LOST.as_millis() {
                    assert!(lost <= MAX_LOST, "{what}: {lost:?} of samples lost");
                    let mut samples = 0;
                    for s in session.samples(&Default::default()).unwrap() {
                        s.unwrap_or_else(|e| panic!("{what}: a sample does not read: {e:#}"));
                        samples += 1;
                    }
                    assert!(samples > 0, "{what}: no samples");
                }
                println!("{what}: opens, {lost:?} lost");
            }
            Err(e) => {
                let e = format!("{e:#}");
                assert!(
                    *delay < 500
                        && (e.contains("holds no session yet") || e.contains("could not open")),
                    "{what}: {e}"
                );
                println!("{what}: {e}");
            }
        }
    }
    assert!(
        opened >= 6,
        "only {opened} of {} sessions open",
        cases.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A killed capture's file alone (copied without its `-wal`) holds every commit; opening the
/// session folds its log back, leaving one file; reading a session leaves no side file.
#[test]
fn a_killed_session_is_whole_in_its_file_and_one_file_once_read() {
    let python = first_supported();
    let dir = tmpdir("killed-one-file");
    let target = spawn(&python.path, "deep.py", &["20"]);
    let out = dir.join("k.pyspy");
    let mut capture = Command::new(py_spy_bin())
        .args([
            "capture",
            "--hideprogress",
            "--pid",
            &target.pid.to_string(),
            "-o",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    let killed_at = now_us();
    capture.kill().unwrap();
    capture.wait().unwrap();
    let [wal, shm, _] = py_spy::store::schema::side_files(&out);
    assert!(wal.exists(), "a killed capture leaves its log");

    // The file alone, as a user copies it.
    let alone = dir.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    let copy = alone.join("k.pyspy");
    std::fs::copy(&out, &copy).unwrap();
    let count = |s: &Session| s.samples(&Default::default()).unwrap().count();
    let session = Session::open(&copy).expect("the file alone is a session");
    let last = session.time_span_us().unwrap().expect("samples").1 + session.meta.start_unix_us;
    let lost = Duration::from_micros(killed_at.saturating_sub(last));
    assert!(lost <= MAX_LOST, "the file alone lacks {lost:?} of samples");
    let in_copy = count(&session);
    drop(session);
    let copy_sides: Vec<bool> = py_spy::store::schema::side_files(&copy)
        .iter()
        .map(|p| p.exists())
        .collect();
    assert_eq!(
        copy_sides,
        [false, false, false],
        "reading the copy left side files"
    );

    // The original: its log is folded back when it is opened.
    let session = Session::open(&out).unwrap();
    assert!(count(&session) >= in_copy);
    drop(session);
    assert!(
        !wal.exists() && !shm.exists(),
        "the log was not folded back"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
