//! Shared test support: find the Python interpreters on this machine, spawn target scripts
//! and wait until they are ready, run the `py-spy` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One interpreter found on this machine.
#[derive(Debug, Clone)]
pub struct Interpreter {
    /// Where it comes from and its version, e.g. "pyenv 3.11.7", "debian 3.11.2".
    pub label: String,
    pub path: PathBuf,
    pub version: (u64, u64, u64),
}

/// Every interpreter the README lists, that exists here: pyenv builds, Debian's
/// /usr/bin/python3.11, and the provisioned ones in `$PYSPY_PYTHONS/bin`.
pub fn interpreters() -> Vec<Interpreter> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut candidates: Vec<(String, PathBuf)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("{home}/.pyenv/versions")) {
        let mut v: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        v.sort();
        for p in v {
            candidates.push(("pyenv".into(), p.join("bin/python")));
        }
    }
    candidates.push(("debian".into(), PathBuf::from("/usr/bin/python3.11")));
    let cache =
        std::env::var("PYSPY_PYTHONS").unwrap_or_else(|_| format!("{home}/.cache/pyspy-pythons"));
    if let Ok(dir) = std::fs::read_dir(format!("{cache}/bin")) {
        let mut v: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        v.sort();
        for p in v {
            candidates.push(("provisioned".into(), p));
        }
    }
    let mut out = Vec::new();
    for (origin, path) in candidates {
        if !path.exists() {
            continue;
        }
        let Ok(o) = Command::new(&path)
            .args(["-c", "import sys; print('%d %d %d' % sys.version_info[:3])"])
            .output()
        else {
            continue;
        };
        let text = String::from_utf8_lossy(&o.stdout);
        let nums: Vec<u64> = text
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        if nums.len() == 3 {
            out.push(Interpreter {
                label: format!("{origin} {}.{}.{}", nums[0], nums[1], nums[2]),
                path,
                version: (nums[0], nums[1], nums[2]),
            });
        }
    }
    out
}

/// Is this version one the capture layer has a layout for?
pub fn supported(i: &Interpreter) -> bool {
    let (a, b, c) = i.version;
    py_spy::capture::python::registry::is_known(&py_spy::capture::python::version::Version::new(
        a, b, c,
    ))
}

/// Print which interpreters a test ran on and which it skipped, and why.
pub fn report(test: &str, ran: &[String], skipped: &[(String, String)]) {
    eprintln!(
        "[{test}] ran on: {}",
        if ran.is_empty() {
            "none".into()
        } else {
            ran.join(", ")
        }
    );
    for (label, why) in skipped {
        eprintln!("[{test}] skipped {label}: {why}");
    }
}

/// One supported Python 3 interpreter, for tests that need just one: Debian's own
/// /usr/bin/python3.11 where present (every CI machine has it), else the newest found.
pub fn first_supported() -> Interpreter {
    let all: Vec<Interpreter> = interpreters().into_iter().filter(supported).collect();
    all.iter()
        .find(|i| i.label.starts_with("debian"))
        .or_else(|| {
            all.iter()
                .filter(|i| i.version.0 == 3)
                .max_by_key(|i| i.version)
        })
        .cloned()
        .expect("no supported Python interpreter found on this machine")
}

/// Run `check` on every supported interpreter found here; report which ran and which were
/// skipped, and fail if none could run.
pub fn on_each_supported(test: &str, check: impl FnMut(&Interpreter)) {
    on_each_supported_from(test, (2, 7), check)
}

/// As [`on_each_supported`], for a target script that needs Python `min` or newer: older
/// interpreters are reported as skipped, with that reason.
pub fn on_each_supported_from(test: &str, min: (u64, u64), mut check: impl FnMut(&Interpreter)) {
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for py in interpreters() {
        if (py.version.0, py.version.1) < min {
            skipped.push((
                py.label.clone(),
                format!("the target script needs Python {}.{}+", min.0, min.1),
            ));
        } else if supported(&py) {
            // Shown with a failure's output: which interpreter it failed on.
            println!("[{test}] checking {}", py.label);
            check(&py);
            ran.push(py.label.clone());
        } else {
            skipped.push((py.label.clone(), "version not supported yet".to_string()));
        }
    }
    report(test, &ran, &skipped);
    assert!(
        !ran.is_empty(),
        "no supported Python interpreter found on this machine"
    );
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scripts")
        .join(name)
}

pub fn py_spy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_py-spy"))
}

/// A running target; killed when dropped.
pub struct Target {
    pub child: Child,
    pub pid: i32,
    /// Lines the target printed before READY.
    pub lines: Vec<String>,
}

impl Target {
    /// The JSON the target printed after `PREFIX `, if any.
    pub fn printed(&self, prefix: &str) -> Option<serde_json::Value> {
        let tag = format!("{prefix} ");
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&tag))
            .and_then(|j| serde_json::from_str(j).ok())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `python script args...`, wait for its `READY` line, then a little longer so every
/// thread has reached its parking line.
pub fn spawn(python: &Path, script_name: &str, args: &[&str]) -> Target {
    spawn_with(python, &[], script_name, args)
}

/// As [`spawn`], with `pre_args` between the program and the script (a wrapper's arguments).
pub fn spawn_with(python: &Path, pre_args: &[&str], script_name: &str, args: &[&str]) -> Target {
    spawn_full(python, pre_args, script_name, args, &[])
}

/// As [`spawn`], with these environment variables set.
pub fn spawn_env(
    python: &Path,
    script_name: &str,
    args: &[&str],
    env: &[(&str, PathBuf)],
) -> Target {
    spawn_full(python, &[], script_name, args, env)
}

fn spawn_full(
    python: &Path,
    pre_args: &[&str],
    script_name: &str,
    args: &[&str],
    env: &[(&str, PathBuf)],
) -> Target {
    let mut child = Command::new(python)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .args(pre_args)
        .arg(script(script_name))
        .args(args)
        .current_dir(script(""))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", python.display()));
    let pid = child.id() as i32;
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line_t = line.trim();
            if line_t == "READY" || line_t.starts_with("READY ") {
                let _ = tx.send(std::mem::take(&mut lines));
            } else {
                lines.push(line);
            }
        }
    });
    let mut target = Target {
        child,
        pid,
        lines: Vec::new(),
    };
    target.lines = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{script_name} under {} never said READY", python.display()));
    std::thread::sleep(Duration::from_millis(300));
    target
}

/// `py-spy render SESSION -f raw -o - ARGS...`, which must succeed: the collapsed stacks.
pub fn render_raw(session: &Path, args: &[&str]) -> String {
    let s = session.to_str().unwrap();
    let mut argv = vec!["render", s, "-f", "raw", "-o", "-"];
    argv.extend_from_slice(args);
    let (code, out, err) = run_py_spy(&argv);
    assert_eq!(code, 0, "render {args:?} failed: {err}");
    out
}

/// What `capture` said it wrote: (snapshots taken, thread stacks stored as errors), parsed
/// from its "Wrote session ..." line. Tests count samples against the snapshots actually
/// taken: on a loaded machine the profiler itself may not get the CPU for every tick, and it
/// says how many it skipped instead of inventing samples.
pub fn capture_counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Wrote session"))
        .unwrap_or_else(|| panic!("no summary line in capture's output: {stderr}"));
    let number_before = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("no '{word}' in {line}"));
        line[..at]
            .trim_end()
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before '{word}' in {line}"))
    };
    let either = |many: &str, one: &str| {
        if line.contains(many) {
            number_before(many)
        } else {
            number_before(one)
        }
    };
    (
        either(" snapshots in", " snapshot in"),
        either(" thread stacks unreadable", " thread stack unreadable"),
    )
}

/// The fewest snapshots a test accepts out of `requested`: a quarter. Fewer means the machine
/// is too loaded for the test to say anything, which is reported as a failure, not a pass.
pub fn enough_snapshots(snapshots: u64, requested: u64, what: &str) {
    assert!(
        snapshots * 4 >= requested,
        "{what}: only {snapshots} of {requested} snapshots taken (the machine is overloaded?)"
    );
}

/// Run the py-spy binary; returns (exit code, stdout, stderr).
pub fn run_py_spy(args: &[&str]) -> (i32, String, String) {
    run(&py_spy_bin(), args)
}

pub fn run(bin: &Path, args: &[&str]) -> (i32, String, String) {
    let start = Instant::now();
    let o = Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", bin.display()));
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{} hung",
        bin.display()
    );
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Line number of the line in a test script that carries `marker` in a comment.
pub fn line_of(script_name: &str, marker: &str) -> i32 {
    let text = std::fs::read_to_string(script(script_name)).unwrap();
    let tag = format!("# {marker}");
    let found: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.trim_end().ends_with(&tag))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "marker {marker} must be on exactly one line"
    );
    found[0] as i32
}

/// py-spy 0.4.3, when installed (`.ci/run` installs it; `PYSPY_REFERENCE` names it). Without
/// it a comparison test reports itself skipped, unless `PYSPY_REQUIRE_REFERENCE` is set (CI),
/// where that is a failure.
pub fn reference_py_spy(test: &str) -> Option<PathBuf> {
    let found = std::env::var("PYSPY_REFERENCE")
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("PYSPY_REQUIRE_REFERENCE").is_err(),
            "PYSPY_REQUIRE_REFERENCE is set but PYSPY_REFERENCE names no py-spy binary"
        );
        report(
            test,
            &[],
            &[(
                "all".into(),
                "py-spy 0.4.3 not installed (set PYSPY_REFERENCE)".into(),
            )],
        );
    }
    found
}

/// A test-only input that CI provides through environment variable `var` (a path): `None`
/// (reported as skipped) when it is missing outside CI; a failure when it is missing in CI.
pub fn ci_input(test: &str, var: &str) -> Option<PathBuf> {
    let found = std::env::var(var)
        .ok()
        .map(PathBuf::from)
        .filter(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "{var} must name an existing path in CI (.ci/run sets it)"
        );
        report(test, &[], &[("all".into(), format!("{var} is not set"))]);
    }
    found
}

/// Collapsed stacks (`a;b;c count` lines) as (stack, count) pairs.
pub fn parse_collapsed(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').expect("`stack count` line");
            (stack.to_string(), count.parse().expect("count"))
        })
        .collect()
}

/// A fresh, empty scratch directory for one test.
pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("py-spy-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Ours and py-spy 0.4.3's `dump --json` output (arrays of traces), thread by thread and frame
/// by frame. `busy` names the thread that takes and drops the GIL between two dumps (its GIL
/// flag is not compared); `moving(thread name, local name)` says which locals change between
/// the dumps (their address and text are not compared). Where py-spy shows less on purpose
/// (no thread name or OS thread id, `?`, `+bigint`, `<bytes at ..>`, 2.7's `dict`), ours is
/// left to the caller's own expectations; an OS thread id py-spy lacks must be a live task.
pub fn compare_dumps(
    ours: &[serde_json::Value],
    theirs: &[serde_json::Value],
    busy: &str,
    moving: impl Fn(&serde_json::Value, &serde_json::Value) -> bool,
) -> Result<(), String> {
    if ours.len() != theirs.len() {
        return Err(format!("{} threads vs {}", ours.len(), theirs.len()));
    }
    for (o, t) in ours.iter().zip(theirs) {
        let name = &o["thread_name"];
        let mut keys = vec!["pid", "thread_id"];
        // py-spy can't always tell the OS thread id before 3.11 (thread states lack it), and
        // then calls every thread active.
        if t["os_thread_id"].is_null() {
            let tid = o["os_thread_id"].as_u64().unwrap_or(0);
            let task = format!("/proc/{}/task/{tid}", o["pid"]);
            if !Path::new(&task).exists() {
                return Err(format!("thread {name}: os_thread_id {tid} is not a task"));
            }
        } else {
            keys.extend(["os_thread_id", "active"]);
        }
        if *name != busy {
            keys.push("owns_gil");
        }
        if !t["thread_name"].is_null() {
            keys.push("thread_name");
        }
        for k in keys {
            if o[k] != t[k] {
                return Err(format!("thread {name}: {k}: {} vs {}", o[k], t[k]));
            }
        }
        let (of, tf) = (
            o["frames"].as_array().unwrap(),
            t["frames"].as_array().unwrap(),
        );
        if of.len() != tf.len() {
            return Err(format!(
                "thread {name}: {} frames vs {}",
                of.len(),
                tf.len()
            ));
        }
        for (a, b) in of.iter().zip(tf) {
            for k in [
                "name",
                "filename",
                "module",
                "short_filename",
                "line",
                "is_entry",
                "is_shim_entry",
            ] {
                if a[k] != b[k] {
                    return Err(format!(
                        "thread {name}: frame {}: {k}: {} vs {}",
                        a["name"], a[k], b[k]
                    ));
                }
            }
            let (al, bl) = (
                a["locals"].as_array().unwrap(),
                b["locals"].as_array().unwrap(),
            );
            if al.len() != bl.len() {
                return Err(format!(
                    "frame {}: {} locals vs {}",
                    a["name"],
                    al.len(),
                    bl.len()
                ));
            }
            for (x, y) in al.iter().zip(bl) {
                let moves = moving(name, &x["name"]);
                for k in ["name", "addr", "arg"] {
                    if x[k] != y[k] && !(k == "addr" && moves) {
                        return Err(format!("local {}: {k}: {} vs {}", x["name"], x[k], y[k]));
                    }
                }
                let theirs = y["repr"].as_str().unwrap_or("");
                let deliberate = theirs == "?"
                    || theirs.ends_with("bigint")
                    || theirs.starts_with("<bytes at")
                    || theirs == "dict";
                if x["repr"] != y["repr"] && !deliberate && !moves {
                    return Err(format!(
                        "local {}: {} vs {}",
                        x["name"], x["repr"], y["repr"]
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A small seeded xorshift generator, for fuzzers and randomised tests that must replay.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (0 for `n` 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Pin every thread of process `pid` to core 0 (tests that read a target from another core).
pub fn pin_to_core_0(pid: i32) {
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &pid.to_string()])
        .output()
        .expect("taskset -p");
    assert!(pinned.status.success(), "could not pin the target");
}

/// `py-spy capture --pid PID` for 3 s at 200 Hz into `out`, run on core 1 (the target on core
/// 0: the regime where reads race the target), paused or not; it must succeed.
pub fn capture_from_core_1(pid: i32, out: &Path, paused: bool) {
    let pid = pid.to_string();
    let bin = py_spy_bin();
    let mut args = vec!["-c", "1", bin.to_str().unwrap(), "capture", "--pid", &pid];
    args.extend(["-r", "200", "-d", "3", "--hideprogress", "-o"]);
    args.push(out.to_str().unwrap());
    if !paused {
        args.push("--nonblocking");
    }
    let o = Command::new("taskset")
        .args(&args)
        .output()
        .expect("taskset");
    assert!(
        o.status.success(),
        "capture failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
