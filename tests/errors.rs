//! Every attach error prints one clear line and exits 1; none panics.

mod common;

use common::*;
use std::process::Command;

/// stderr is exactly one line, starting "Error: ", with no panic or backtrace.
fn one_error_line(code: i32, err: &str) -> String {
    assert_eq!(code, 1, "exit status; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {err}");
    assert!(lines[0].starts_with("Error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    lines[0].to_string()
}

#[test]
fn no_such_process() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let (code, _, err) = run_py_spy(&["dump", "--pid", &pid.to_string()]);
    let line = one_error_line(code, &err);
    assert_eq!(line, format!("Error: no such process: {pid}"));
}

#[test]
fn not_python_names_the_binary() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id().to_string();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (code, _, err) = run_py_spy(&["dump", "--pid", &pid]);
    let _ = child.kill();
    let _ = child.wait();
    let line = one_error_line(code, &err);
    assert!(
        line.contains(&format!("process {pid} ("))
            && line.contains("sleep) is not a Python program"),
        "{line}"
    );
}

#[test]
fn permission_denied_says_what_is_needed() {
    let python = first_supported();
    let target = spawn(&python.path, "sleeper.py", &[]);
    let pid = target.pid.to_string();
    let is_root = unsafe { libc::geteuid() } == 0;
    let (code, _, err) = if is_root {
        // Drop to nobody: the target (ours, root's) can't be read then. The binary is copied
        // where nobody can run it (the checkout may be under a private home directory).
        let dir = std::env::temp_dir().join(format!("py-spy-perm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("py-spy");
        std::fs::copy(py_spy_bin(), &bin).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin)
            .args(["dump", "--pid", &pid])
            .output()
            .expect("setpriv (util-linux) runs");
        let _ = std::fs::remove_dir_all(&dir);
        (
            o.status.code().unwrap_or(-1),
            String::new(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    } else {
        // Not root: a root process (init) can't be read.
        run_py_spy(&["dump", "--pid", "1"])
    };
    let line = one_error_line(code, &err);
    assert!(line.contains("permission denied"), "{line}");
    assert!(line.contains("root or CAP_SYS_PTRACE"), "{line}");
}

#[test]
fn process_exiting_gives_errors_not_panics() {
    let python = first_supported();
    let target = spawn(&python.path, "deep.py", &["30"]);
    let config = py_spy::Config::default();
    let mut spy = py_spy::PythonSpy::new(target.pid, &config).unwrap();
    assert!(spy.get_stack_traces().is_ok());
    drop(target); // kills and reaps it
    for _ in 0..3 {
        assert!(spy.get_stack_traces().is_err());
    }
}

/// A pid in hexadecimal (`0x…`) is taken, as py-spy takes it; something else is refused
/// with what a pid may be.
#[test]
fn pids_in_hex_are_taken() {
    let py = first_supported();
    let target = spawn(&py.path, "sleeper.py", &[]);
    let hex = format!("{:#x}", target.pid);
    let (code, out, err) = run_py_spy(&["dump", "--pid", &hex]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("Process {}: ", target.pid)),
        "{out}"
    );
    let (code, _, err) = run_py_spy(&["dump", "--pid", "0xzz"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a process id"), "{err}");
}

/// `--help` lists every command, `completions` included, and says `--native` needs pausing.
#[test]
fn help_lists_every_command_and_what_is_not_there_yet() {
    let (code, out, _) = run_py_spy(&["--help"]);
    assert_eq!(code, 0);
    for command in [
        "record",
        "top",
        "dump",
        "capture",
        "render",
        "analyze",
        "query",
        "info",
        "completions",
    ] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} missing from --help:\n{out}"
        );
    }
    let (_, out, _) = run_py_spy(&["record", "--help"]);
    let native = out
        .split("--native")
        .nth(1)
        .and_then(|rest| rest.split("\n  -").next())
        .unwrap_or("");
    assert!(native.contains("not with --nonblocking"), "{out}");
}

/// Another tracer (a debugger, a second profiler) taking the process while it is captured:
/// the failed snapshots are counted and the summary says who holds the process, not that
/// permissions are missing.
#[test]
fn another_tracer_taking_the_process_is_named() {
    let py = first_supported();
    let target = spawn(&py.path, "sleeper.py", &[]);
    let dir = tmpdir("other-tracer");
    let session = dir.join("s.pyspy");
    let capture = Command::new(py_spy_bin())
        .args([
            "capture",
            "-d",
            "3",
            "--hideprogress",
            "--pid",
            &target.pid.to_string(),
            "-o",
        ])
        .arg(&session)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    // A tracer of its own: PTRACE_SEIZE (0x4206) holds the process without stopping it.
    let hold = "import ctypes, sys, time\n\
                libc = ctypes.CDLL(None, use_errno=True)\n\
                libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\n\
                if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:\n\
                \x20   sys.exit('seize failed: %d' % ctypes.get_errno())\n\
                time.sleep(1.5)\n";
    let tracer = Command::new("/usr/bin/python3")
        .args(["-c", hold, &target.pid.to_string()])
        .output()
        .unwrap();
    assert!(
        tracer.status.success(),
        "{}",
        String::from_utf8_lossy(&tracer.stderr)
    );
    let out = capture.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("already traced by process"), "{err}");
    assert!(!err.contains("CAP_SYS_PTRACE"), "{err}");
    let (_, info, _) = run_py_spy(&["info", session.to_str().unwrap()]);
    assert!(
        info.contains("Last failure ") && info.contains("already traced"),
        "{info}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
