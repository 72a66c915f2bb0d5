//! Core files: `dump --core` of a core taken with gdb's `gcore` from a running program prints
//! what a live `dump` printed just before (threads, frames, lines, thread names, locals,
//! activity and GIL); `capture --core` stores the same snapshot as a session; cores that are
//! not of Python, truncated or without their binaries are refused with a clear error.
//!
//! gdb cannot read the thread stacks of programs run on a newer glibc than its own (guard
//! pages made with `madvise`: "Memory read failed for corefile section"), as for the
//! provisioned 3.14 and 3.15 here; there the core is the kernel's (the process is given a
//! core size limit and sent SIGABRT, after the live dump), when the kernel writes cores into
//! the process's directory. Either way the test says which it used.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = "core_target.py";

/// The core of `target`: gdb's, or the kernel's where gdb could not read the process. Returns
/// the core and how it was made.
fn take_core(target: &mut Target, dir: &Path) -> Option<(PathBuf, &'static str)> {
    let prefix = dir.join("gcore");
    let out = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(target.pid.to_string())
        .output()
        .expect("gcore (gdb) must be installed");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let core = PathBuf::from(format!("{}.{}", prefix.display(), target.pid));
    let unreadable = text.lines().any(|l| {
        l.contains("Memory read failed for corefile section") && !l.contains("0xffffffffff600000")
    });
    if out.status.success() && core.exists() && !unreadable {
        return Some((core, "gcore"));
    }
    let _ = std::fs::remove_file(&core);
    kernel_core(target, dir)
}

/// The kernel's core of `target`, written into `dir` (its working directory) on SIGABRT,
/// when the kernel's core pattern is a plain file name.
fn kernel_core(target: &mut Target, dir: &Path) -> Option<(PathBuf, &'static str)> {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    let pattern = pattern.trim();
    if pattern.is_empty() || pattern.contains('/') || pattern.contains('|') || pattern.contains('%')
    {
        return None;
    }
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: sets a resource limit of our own child; the pointers live for the call.
    let set = unsafe { libc::prlimit(target.pid, libc::RLIMIT_CORE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(target.pid, libc::SIGABRT) };
    let _ = target.child.wait();
    let begin = Instant::now();
    while begin.elapsed() < Duration::from_secs(20) {
        for name in [pattern.to_string(), format!("{pattern}.{}", target.pid)] {
            let p = dir.join(&name);
            if p.exists() {
                // The kernel writes the core after the process is reaped: wait until it stops
                // growing.
                let mut size = 0;
                loop {
                    std::thread::sleep(Duration::from_millis(300));
                    let now = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                    if now == size {
                        return Some((p, "kernel"));
                    }
                    size = now;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `core_target.py` started in `dir` (its working directory: where a kernel core goes).
fn spawn_in(py: &Interpreter, dir: &Path) -> Target {
    let mut child = Command::new(&py.path)
        .arg(script(SCRIPT))
        .arg("120")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "READY", "{}", py.label);
    std::thread::sleep(Duration::from_millis(300));
    Target {
        child,
        pid,
        lines: Vec::new(),
    }
}

/// The root of a provisioned (chroot) interpreter, where its binaries are seen from here.
fn chroot_root(py: &Interpreter) -> Option<PathBuf> {
    let text = std::fs::read_to_string(&py.path).ok()?;
    // The wrapper names its root; take the first existing directory ending in "/root".
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '=')
        .map(PathBuf::from)
        .find(|p| p.ends_with("root") && p.join("usr/bin").is_dir())
}

#[test]
fn a_core_dumps_as_the_live_process_did() {
    let mut kinds = Vec::new();
    let mut no_core = Vec::new();
    on_each_supported("a_core_dumps_as_the_live_process_did", |py| {
        let dir = tmpdir(&format!("core-{}", py.label.replace(' ', "-")));
        let mut target = spawn_in(py, &dir);
        let pid = target.pid.to_string();
        let (code, live, err) = run_py_spy(&["dump", "--pid", &pid, "--locals"]);
        assert_eq!(code, 0, "{}: {err}", py.label);
        let (code, live_json, err) = run_py_spy(&["dump", "--pid", &pid, "--locals", "--json"]);
        assert_eq!(code, 0, "{}: {err}", py.label);
        let Some((core, how)) = take_core(&mut target, &dir) else {
            no_core.push(py.label.clone());
            return;
        };
        kinds.push(format!("{} ({how})", py.label));
        let c = core.to_str().unwrap();
        let mut args = vec!["dump", "--core", c, "--locals"];
        let root = chroot_root(py);
        if let Some(r) = root.as_ref().filter(|_| how == "kernel") {
            // The kernel records paths as the process saw them, inside its root.
            args.extend(["--binaries", r.to_str().unwrap()]);
        }
        let (code, dumped, err) = run_py_spy(&args);
        assert_eq!(code, 0, "{} {how}: {err}", py.label);
        let same_header = |t: &str| {
            t.lines()
                .filter(|l| !(how == "kernel" && l.starts_with("Python v")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let first_difference = same_header(&dumped)
            .lines()
            .zip(same_header(&live).lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("core {a:?}, live {b:?}"));
        assert_eq!(
            first_difference, None,
            "{} ({how}): the core's dump differs from the live one",
            py.label
        );
        assert_eq!(
            same_header(&dumped),
            same_header(&live),
            "{} ({how}): the core's dump differs from the live one",
            py.label
        );
        // The snapshot holds what the program shows: three threads, each where it waits.
        for (thread, line) in [
            ("\"MainThread\"", "LINE_SLEEP"),
            ("\"spinner\"", "LINE_SPIN"),
            ("\"waiter\"", "LINE_WAIT"),
        ] {
            let at = format!("(core_target.py:{})", line_of(SCRIPT, line));
            let block = dumped
                .split("Thread ")
                .find(|b| b.lines().next().is_some_and(|l| l.ends_with(thread)))
                .unwrap_or_else(|| panic!("{}: no {thread} in\n{dumped}", py.label));
            assert!(
                block.contains(&at),
                "{}: {thread} not at {at}:\n{block}",
                py.label
            );
        }
        assert!(dumped.contains("(active+gil): \"spinner\""), "{dumped}");
        assert!(dumped.contains("(idle): \"waiter\""), "{dumped}");
        assert!(
            dumped.contains("            items: [1, \"two\", 3.0]\n"),
            "{dumped}"
        );
        let mut json_args = args.clone();
        json_args.push("--json");
        let (code, core_json, err) = run_py_spy(&json_args);
        assert_eq!(code, 0, "{err}");
        if let Some((i, (a, b))) = core_json
            .lines()
            .zip(live_json.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "{} ({how}): JSON line {i} differs: core {a:?}, live {b:?}",
                py.label
            );
        }
        assert_eq!(core_json, live_json, "{} ({how}): JSON differs", py.label);

        // capture --core keeps it as a session that every view opens.
        let session = dir.join("core.pyspy");
        let s = session.to_str().unwrap();
        let mut cap = vec!["capture", "--core", c, "-o", s];
        if let Some(r) = root.as_ref().filter(|_| how == "kernel") {
            cap.extend(["--binaries", r.to_str().unwrap()]);
        }
        let (code, _, err) = run_py_spy(&cap);
        assert_eq!(code, 0, "{err}");
        let (code, again, err) = run_py_spy(&["analyze", s, "--dump", "--json"]);
        assert_eq!(code, 0, "{err}");
        let a: serde_json::Value = serde_json::from_str(&again).unwrap();
        let b: serde_json::Value = serde_json::from_str(&core_json).unwrap();
        assert_eq!(a, b, "{}", py.label);
        let raw = render_raw(&session, &["--idle"]);
        assert!(raw.contains("spin (core_target.py:"), "{raw}");
        let (code, info, err) = run_py_spy(&["info", s]);
        assert_eq!(code, 0, "{err}");
        assert!(
            info.contains("one snapshot, read from a core file"),
            "{info}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    });
    eprintln!(
        "[a_core_dumps_as_the_live_process_did] cores: {}",
        kinds.join(", ")
    );
    for label in &no_core {
        eprintln!(
            "[a_core_dumps_as_the_live_process_did] skipped {label}: gcore could not read its \
             thread stacks, and this machine's kernel core pattern is not a plain file name"
        );
    }
    assert!(!kinds.is_empty(), "no core could be taken on this machine");
}

#[test]
fn cores_that_cannot_be_read_say_why() {
    let py = first_supported();
    let dir = tmpdir("bad-cores");
    let mut target = spawn_in(&py, &dir);
    let (core, _) = take_core(&mut target, &dir).expect("a core");
    let c = core.to_str().unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = run_py_spy(args);
        assert_ne!(code, 0, "{args:?} succeeded: {out}");
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    // A truncated core.
    let cut = dir.join("cut.core");
    let bytes = std::fs::read(&core).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = run(&["dump", "--core", cut.to_str().unwrap()]);
    assert!(err.contains("is truncated"), "{err}");
    assert!(err.contains(cut.to_str().unwrap()), "{err}");
    // Not a core: a program, and a text file.
    let err = run(&["dump", "--core", py.path.to_str().unwrap()]);
    assert!(
        err.contains("not a core dump") || err.contains("not an ELF file"),
        "{err}"
    );
    let err = run(&["dump", "--core", script(SCRIPT).to_str().unwrap()]);
    assert!(err.contains("is not an ELF file"), "{err}");
    let err = run(&["dump", "--core", "/nonexistent/core"]);
    assert!(
        err.contains("could not read core file /nonexistent/core"),
        "{err}"
    );
    // The core of a program that is not Python.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let prefix = dir.join("sleep");
    let ok = Command::new("gcore")
        .arg("-o")
        .arg(&prefix)
        .arg(sleeper.id().to_string())
        .output()
        .unwrap()
        .status
        .success();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(ok, "gcore of sleep");
    let sleep_core = format!("{}.{}", prefix.display(), sleeper.id());
    let err = run(&["dump", "--core", &sleep_core]);
    assert!(err.contains("is not of a Python program"), "{err}");
    // A core whose binaries are not where it says (copied to another machine), told where
    // they are not.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, _) = run_py_spy(&["dump", "--core", c, "--binaries", empty.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "a search folder without the binaries falls back on their paths"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
