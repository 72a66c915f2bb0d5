//! `--native`: C frames of an extension, and of libffi/libc under `ctypes`, shown in place
//! among the Python frames, by `record --native`, `dump --native` and `dump --native --core`
//! (a gcore of the program), on every interpreter the test extension builds for; and the same
//! stacks as py-spy 0.4.3's `--native`.
//!
//! The extension (`tests/scripts/native/spyext.c`) is built per interpreter by
//! `build_ext.py`: pyenv and Debian interpreters build for themselves; the provisioned ones
//! (in a root with no compiler or headers) are built on this machine against their Debian
//! headers (`--target … --fetch-headers`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPT: &str = "native/native_target.py";

/// Build spyext for `py` into `dir`; the error says why it could not be.
fn build(py: &Interpreter, dir: &Path) -> Result<(), String> {
    let builder = script("native/build_ext.py");
    let out = if py.label.starts_with("provisioned") {
        Command::new("/usr/bin/python3")
            .arg(&builder)
            .arg(dir)
            .arg("--target")
            .arg(&py.path)
            .arg("--fetch-headers")
            .output()
    } else {
        Command::new(&py.path).arg(&builder).arg(dir).output()
    }
    .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
            .to_string())
    }
}

/// The target running `mode` with the extension in `dir`.
fn start(py: &Interpreter, dir: &Path, mode: &str) -> Target {
    spawn(&py.path, SCRIPT, &[dir.to_str().unwrap(), mode, "120"])
}

fn at(marker: &str) -> String {
    format!("(native_target.py:{})", line_of(SCRIPT, marker))
}

/// The main thread's frames of `dump --native`, innermost first (its lines, trimmed): the
/// thread named MainThread, or the first (3.15's main thread has no name we can read yet).
fn main_thread(dump: &str) -> Vec<String> {
    let blocks: Vec<&str> = dump.split("Thread ").skip(1).collect();
    blocks
        .iter()
        .find(|b| {
            b.lines()
                .next()
                .is_some_and(|l| l.contains("\"MainThread\""))
        })
        .or(blocks.first())
        .map(|b| b.lines().skip(1).map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

/// Dump `pid` with `bin` until the main thread's stack satisfies `want` (at most 40 tries):
/// that stack.
fn dump_until(bin: &Path, pid: i32, want: impl Fn(&[String]) -> bool) -> Option<Vec<String>> {
    try_dump_until(bin, pid, want).unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

/// [`dump_until`], with a failed dump as an error.
fn try_dump_until(
    bin: &Path,
    pid: i32,
    want: impl Fn(&[String]) -> bool,
) -> Result<Option<Vec<String>>, String> {
    let pid = pid.to_string();
    for _ in 0..40 {
        let (code, out, err) = run(bin, &["dump", "--native", "--pid", &pid]);
        if code != 0 {
            return Err(err);
        }
        let frames = main_thread(&out);
        if want(&frames) {
            return Ok(Some(frames));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(None)
}

/// The frames of `frames` that are Python's or spyext's (what both profilers must agree on:
/// unnamed libc and libffi frames may differ).
fn significant(frames: &[String]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.contains("native_target.py") || f.contains("spyext"))
        .map(|f| {
            // C lines within the hot loop move from one instant to the next.
            match f.find("(spyext.c:") {
                Some(i) => f[..i].to_string() + "(spyext.c)",
                None => f.clone(),
            }
        })
        .collect()
}

fn index(frames: &[String], prefix: &str) -> Option<usize> {
    frames.iter().position(|f| f.starts_with(prefix))
}

#[test]
fn native_frames_sit_between_the_right_python_frames() {
    let reference = reference_py_spy("native_frames_sit_between_the_right_python_frames");
    let mut unbuilt = Vec::new();
    let mut unplaced = Vec::new();
    on_each_supported("native_frames_sit_between_the_right_python_frames", |py| {
        let dir = tmpdir(&format!("native-{}", py.label.replace(' ', "-")));
        if let Err(why) = build(py, &dir) {
            unbuilt.push(format!("{}: {why}", py.label));
            return;
        }
        let ours = py_spy_bin();

        // A hot C loop called from Python: C frames innermost, then the exact Python chain.
        let target = start(py, &dir, "spin");
        let spin = dump_until(&ours, target.pid, |f| {
            f.first()
                .is_some_and(|f| f.starts_with("spyext_hot_loop (spyext.c:"))
        })
        .unwrap_or_else(|| panic!("{}: never caught in spyext_hot_loop", py.label));
        let want = [
            "spyext_hot_loop (spyext.c)".to_string(),
            "spyext_spin (spyext.c)".to_string(),
            format!("middle {}", at("LINE_SPIN")),
            format!("outer {}", at("LINE_OUTER")),
            format!("main {}", at("LINE_CALL_OUTER")),
        ];
        assert_eq!(significant(&spin)[..5], want, "{}: {spin:#?}", py.label);
        // Recorded: nearly every sample is in the C loop, under the same Python frames.
        let raw = dir.join("spin.txt");
        let pid = target.pid.to_string();
        let (code, _, err) = run(
            &ours,
            &[
                "record",
                "--native",
                "--pid",
                &pid,
                "-d",
                "2",
                "-r",
                "50",
                "-f",
                "raw",
                "-o",
                raw.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{err}");
        let stacks = parse_collapsed(&std::fs::read_to_string(&raw).unwrap());
        let total: u64 = stacks.iter().map(|(_, n)| n).sum();
        // Outermost first, as collapsed stacks go; frames neither Python's nor spyext's (an
        // unnamed libc frame on the provisioned 3.14/3.15) are not judged.
        let chain = [
            format!("outer {}", at("LINE_OUTER")),
            format!("middle {}", at("LINE_SPIN")),
            "spyext_spin (spyext.c)".to_string(),
            "spyext_hot_loop (spyext.c)".to_string(),
        ];
        let in_c: u64 = stacks
            .iter()
            .filter(|(s, _)| {
                let frames: Vec<String> = s.split(';').map(str::to_string).collect();
                significant(&frames).ends_with(&chain)
            })
            .map(|(_, n)| n)
            .sum();
        assert!(
            in_c * 10 >= total * 8 && total >= 50,
            "{}: {in_c} of {total} samples in spyext_hot_loop under {chain:?}",
            py.label
        );
        if let Some(r) = &reference {
            let theirs = try_dump_until(r, target.pid, |f| {
                f.first().is_some_and(|f| f.starts_with("spyext_hot_loop"))
            });
            // py-spy 0.4.3 fails on the provisioned 2.7 and 3.9 ("failed to get os
            // threadid"), and cannot name the frames of a module mapped inside a chroot.
            match theirs {
                Ok(Some(theirs)) => assert_eq!(
                    significant(&theirs)[..5],
                    want,
                    "{}: py-spy {theirs:#?}",
                    py.label
                ),
                Ok(None) => eprintln!("{}: py-spy 0.4.3 never named spyext_hot_loop", py.label),
                Err(e) => eprintln!("{}: py-spy 0.4.3 failed: {}", py.label, e.trim()),
            }
        }
        // A session keeps the native frames; --no-native shows its Python frames alone.
        let session = dir.join("spin.pyspy");
        let s = session.to_str().unwrap();
        let (code, _, err) = run(
            &ours,
            &["capture", "--native", "--pid", &pid, "-d", "1", "-o", s],
        );
        assert_eq!(code, 0, "{err}");
        let with = render_raw(&session, &[]);
        let without = render_raw(&session, &["--no-native"]);
        assert!(with.contains(";spyext_hot_loop (spyext.c:"), "{with}");
        assert!(
            !without.contains("spyext") && !without.contains("libc"),
            "{without}"
        );
        let python_chain = format!("outer {};middle {} ", at("LINE_OUTER"), at("LINE_SPIN"));
        assert!(without.contains(&python_chain), "{without}");

        // A core of the program in its C loop: the same stack from the registers it saved.
        let prefix = dir.join("core");
        let made = Command::new("gcore")
            .arg("-o")
            .arg(&prefix)
            .arg(&pid)
            .output()
            .expect("gcore (gdb) must be installed");
        assert!(made.status.success(), "{}: gcore failed", py.label);
        let core = format!("{}.{pid}", prefix.display());
        // A chroot's core names the extension by a path that exists only inside its mount
        // namespace: it is found by name in its folder, as a user would point at it.
        let mut args = vec!["dump", "--native", "--core", &core];
        if py.label.starts_with("provisioned") {
            args.extend(["--binaries", dir.to_str().unwrap()]);
        }
        let (code, out, err) = run(&ours, &args);
        assert_eq!(code, 0, "{}: {err}", py.label);
        let from_core = main_thread(&out);
        assert_eq!(
            significant(&from_core)[..5],
            want,
            "{}: dump --native --core {from_core:#?}",
            py.label
        );
        let _ = std::fs::remove_file(&core);
        drop(target);

        // C calling back into Python: the callback's frame above the C frames that called it.
        if py.label.starts_with("provisioned 3.15") {
            // Known gap: 3.15 keeps its entry frames off the C stack, and Debian's build has
            // part of its evaluation loop in an unnamed block: the evaluation calls under a
            // callback are not all found, and such stacks are error samples (native_mismatch).
            unplaced.push(py.label.clone());
        } else {
            let target = start(py, &dir, "callback");
            let cb = dump_until(&ours, target.pid, |f| {
                f.iter().any(|f| f.starts_with("py_leaf "))
                    && f.iter().any(|f| f.starts_with("spyext_call_back "))
            })
            .unwrap_or_else(|| panic!("{}: never caught in the callback", py.label));
            let s = significant(&cb);
            let leaf = index(&s, &format!("py_leaf {}", at("LINE_LEAF"))).expect("py_leaf");
            assert_eq!(
                s[leaf + 1..leaf + 4],
                [
                    "spyext_call_back (spyext.c)".to_string(),
                    "spyext_call_back_py (spyext.c)".to_string(),
                    format!("via_callback {}", at("LINE_CALLBACK")),
                ],
                "{}: {cb:#?}",
                py.label
            );
            drop(target);
        }

        // ctypes: qsort in libc calling a Python comparison through libffi (a callback
        // too: not placed on 3.15, see above).
        if !py.label.starts_with("provisioned 3.15") {
            let target = start(py, &dir, "qsort");
            let compare_at = format!("compare {}", at("LINE_COMPARE"));
            let qs = dump_until(&ours, target.pid, |f| f.contains(&compare_at))
                .unwrap_or_else(|| panic!("{}: never caught in compare", py.label));
            let cmp = index(&qs, &compare_at).expect("compare");
            let qsort =
                index(&qs, "qsort").unwrap_or_else(|| panic!("{}: no qsort in {qs:#?}", py.label));
            let caller = index(&qs, &format!("sort_with_ctypes {}", at("LINE_QSORT")))
                .unwrap_or_else(|| panic!("{}: {qs:#?}", py.label));
            assert!(cmp < qsort && qsort < caller, "{}: {qs:#?}", py.label);
            assert!(
                qs[cmp + 1..caller]
                    .iter()
                    .all(|f| !f.contains("native_target.py")),
                "{}: only C frames between the callback and its caller: {qs:#?}",
                py.label
            );
            drop(target);
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
    for u in &unplaced {
        eprintln!(
            "[native_frames_sit_between_the_right_python_frames] {u}: callbacks (spyext's, \
             ctypes' qsort) not checked: their evaluation calls are not found (a known gap)"
        );
    }
    for u in &unbuilt {
        eprintln!("[native_frames_sit_between_the_right_python_frames] skipped {u}");
    }
    if std::env::var("CI").is_ok() {
        assert!(
            unbuilt.is_empty(),
            "the extension must build everywhere in CI: {unbuilt:?}"
        );
    }
}

#[test]
fn native_with_nonblocking_is_refused() {
    let (code, _, err) = run_py_spy(&["record", "--native", "--nonblocking", "--pid", "1"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Can't get native stack traces with the --nonblocking option."),
        "{err}"
    );
    let (code, _, err) = run_py_spy(&["dump", "--native", "--nonblocking", "--pid", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("--nonblocking"), "{err}");
    let _ = PathBuf::new();
}
