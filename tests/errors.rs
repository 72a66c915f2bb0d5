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
