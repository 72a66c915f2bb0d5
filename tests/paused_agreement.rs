//! A nonblocking profile of a running program must agree with a paused (blocking) profile of
//! the same process: the paused read is consistent by construction, the nonblocking one
//! races the target. Here the target (tests/scripts/churn.py, stacks that change every
//! microsecond) runs on core 0 and the profiler on core 1, the regime where reads go wrong:
//! the target runs on while it is read. Recordings alternate paused, nonblocking, paused,
//! nonblocking on one process, and each function's leaf share (of every sample, in the
//! default view) of the two nonblocking ones must be within the noise of the paused ones:
//! the larger of the two paused profiles' own difference and three binomial standard
//! deviations plus one point.
//!
//! What is checked where (issue 23 is open; what is not yet held is printed as NOT CHECKED,
//! with the measured figures, never counted as a pass):
//! - `calls` (short methods, `__init__` and operators called through C) on 3.8+: each leaf
//!   share within the paused profiles' noise plus [`RESIDUAL`] (on 3.11 a function is still
//!   off by up to 6 points; 3.12+ take the stack as the copy of its datastack chunk has it,
//!   and agree), and error samples at most 2%.
//! - `gen` (recursive generators): leaf shares within the noise plus [`RESIDUAL`] everywhere
//!   (a generator that yields while it is read is linked back to the frame that holds it),
//!   and error samples at most [`GEN_ERRORS`] on 3.11+ (10-13% in issue 23's sixth session,
//!   since generators that finish while they are read are no longer linked to where the
//!   thread went on, which skipped levels: tests/whole_stacks.rs) and [`GEN_ERRORS_OBJECTS`]
//!   before (frame objects, 24-28%); the 2% is printed as NOT CHECKED where it is
//!   missed.
//! - `co` (recursive coroutines that return, never yield) on 3.13+: leaf shares within the
//!   noise plus [`RESIDUAL`], error samples at most [`CO_ERRORS`] (39-45% in issue 23's sixth
//!   session: a coroutine that returns while it is read has nothing left that names its
//!   caller; 1-10% before, from links that skipped levels). Before 3.13 printed as NOT
//!   CHECKED with its figures: 42-50% error samples before 3.11, and on 3.11 and 3.12
//!   `co_leaf` has 7-10 points more of the samples than paused (the fifth session had
//!   asserted 3.12 after runs that happened to agree).
//! - `gen`: the depth of the stacks read whole against the paused ones' ([`walk_depth`]),
//!   printed (NOT CHECKED where it differs).
//!
//! Error samples' innermost frames are shown under `<unreadable caller>`.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;

/// The bias still allowed on top of the noise where leaf shares are asserted (see above).
const RESIDUAL: f64 = 0.05;
/// For `gen` on 3.11+: the error samples allowed (the goal is 2%; see above).
const GEN_ERRORS: f64 = 0.20;
/// For `gen` before 3.11 (frame objects).
const GEN_ERRORS_OBJECTS: f64 = 0.40;
/// For `co` on 3.13+ (see above).
const CO_ERRORS: f64 = 0.55;
/// How far the nonblocking profiles' mean depth of `Node.walk` frames may be from the paused
/// ones' beyond their own difference (measured, not asserted: see [`walk_depth`]).
const DEPTH_TOLERANCE: f64 = 0.3;

/// The mean number of `walk` frames in the stacks of the default view that were read whole
/// (error samples, shown with their innermost frames under `<unreadable caller>`, are left
/// out). On `churn.py gen` that is the depth in the tree the thread was at: a stack that is
/// read too short (a generator linked to an ancestor of its caller) keeps its leaf function
/// and shows only here. Issue 23's sixth session found nonblocking stacks 0.3-1.3 levels
/// shallower than paused ones on 3.11-3.15 and 2 levels on 3.8-3.10: printed, not yet
/// asserted.
fn walk_depth(session: &Path) -> f64 {
    let (mut frames, mut stacks) = (0u64, 0u64);
    for (stack, n) in parse_collapsed(&render_raw(session, &[])) {
        if stack.contains("<unreadable") || stack.contains("<error") {
            continue;
        }
        let depth = stack
            .split(';')
            .filter(|f| f.starts_with("walk (") || f.starts_with("Node.walk ("))
            .count() as u64;
        frames += depth * n;
        stacks += n;
    }
    frames as f64 / stacks.max(1) as f64
}

/// Leaf function (`name (file)`) → samples, over every sample of the default view.
fn leaf_counts(session: &Path) -> (HashMap<String, u64>, u64) {
    let mut counts = HashMap::new();
    let mut total = 0;
    for (stack, n) in parse_collapsed(&render_raw(session, &[])) {
        let leaf = stack.rsplit(';').next().unwrap_or("");
        let key = match leaf.rsplit_once(" (") {
            Some((name, rest)) => format!("{name} ({})", rest.split(':').next().unwrap_or("")),
            None => leaf.to_string(),
        };
        *counts.entry(key).or_insert(0) += n;
        total += n;
    }
    (counts, total)
}

fn error_samples(session: &Path) -> (u64, u64) {
    let s = session.to_str().unwrap();
    let count = |sql: &str| -> u64 {
        let (code, out, err) = run_py_spy(&["query", s, sql, "--format", "csv"]);
        assert_eq!(code, 0, "query failed: {err}");
        out.lines().last().unwrap().trim().parse().unwrap()
    };
    (
        count("select count(*) from samples where error is not null"),
        count("select count(*) from samples"),
    )
}

fn share(c: &HashMap<String, u64>, total: u64, f: &str) -> f64 {
    *c.get(f).unwrap_or(&0) as f64 / total.max(1) as f64
}

/// Record one process four times (paused, nonblocking, paused, nonblocking); return the
/// worst leaf difference beyond the noise (None: all within), the error share of the
/// nonblocking recordings and a report line.
fn compare(
    py: &Interpreter,
    mode: &str,
    dir: &Path,
    residual: f64,
) -> (Option<String>, f64, String) {
    let target = spawn(&py.path, "churn.py", &[mode, "60"]);
    pin_to_core_0(target.pid);
    let mut paused = Vec::new();
    let mut running = Vec::new();
    let mut depths = (Vec::new(), Vec::new());
    let (mut errors, mut all) = (0, 0);
    for (k, is_paused) in [true, false, true, false].into_iter().enumerate() {
        let out = dir.join(format!("{mode}-{k}.pyspy"));
        capture_from_core_1(target.pid, &out, is_paused);
        let counts = leaf_counts(&out);
        if mode == "gen" {
            let d = walk_depth(&out);
            if is_paused {
                depths.0.push(d);
            } else {
                depths.1.push(d);
            }
        }
        if is_paused {
            paused.push(counts);
        } else {
            let (e, n) = error_samples(&out);
            errors += e;
            all += n;
            running.push(counts);
        }
    }
    let pool = |v: &[(HashMap<String, u64>, u64)]| {
        let mut c: HashMap<String, u64> = HashMap::new();
        for (m, _) in v {
            for (k, n) in m {
                *c.entry(k.clone()).or_insert(0) += n;
            }
        }
        (c, v.iter().map(|x| x.1).sum::<u64>())
    };
    let (pc, pn) = pool(&paused);
    let (nc, nn) = pool(&running);
    assert!(
        pn >= 600 && nn >= 600,
        "too few samples: {pn} paused, {nn} nonblocking"
    );
    let mut worst: Option<(f64, String)> = None;
    let mut keys: Vec<&String> = pc.keys().chain(nc.keys()).collect();
    keys.sort();
    keys.dedup();
    for f in keys {
        let p = share(&pc, pn, f);
        let n = share(&nc, nn, f);
        let floor =
            (share(&paused[0].0, paused[0].1, f) - share(&paused[1].0, paused[1].1, f)).abs();
        let sd = (p * (1.0 - p) / pn as f64 + p * (1.0 - p) / nn as f64).sqrt();
        let allowed = floor.max(3.0 * sd + 0.01) + residual;
        let excess = (n - p).abs() - allowed;
        if excess > 0.0 && worst.as_ref().is_none_or(|w| excess > w.0) {
            worst = Some((
                excess,
                format!("{f}: nonblocking {n:.3}, paused {p:.3} (allowed ±{allowed:.3})"),
            ));
        }
    }
    if mode == "gen" {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let (p, n) = (mean(&depths.0), mean(&depths.1));
        let allowed = (depths.0[0] - depths.0[1]).abs() + DEPTH_TOLERANCE;
        let verdict = if (n - p).abs() <= allowed {
            "[paused_agreement] measured"
        } else {
            "[paused_agreement] NOT CHECKED (issue 23)"
        };
        println!(
            "{verdict}: {} gen: mean depth of Node.walk frames in whole stacks: nonblocking {:.2} ({:.2}, {:.2}), paused {p:.2} ({:.2}, {:.2}), allowed ±{allowed:.2}",
            py.label, n, depths.1[0], depths.1[1], depths.0[0], depths.0[1]
        );
    }
    let error_share = errors as f64 / all.max(1) as f64;
    let line =
        format!(
        "{} {mode}: {pn} paused and {nn} nonblocking samples, {:.1}% error samples nonblocking, {}",
        py.label,
        100.0 * error_share,
        worst.as_ref().map_or("every leaf share within the noise".into(), |w| w.1.clone())
    );
    (worst.map(|w| w.1), error_share, line)
}

#[test]
fn nonblocking_agrees_with_paused_on_another_core() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("[paused_agreement] NOT CHECKED: needs two cores");
        return;
    }
    let dir = tmpdir("paused-agreement");
    let mut failures = Vec::new();
    on_each_supported_from("paused_agreement", (3, 8), |py| {
        let minor = (py.version.0, py.version.1);
        for mode in ["calls", "gen", "co"] {
            // `calls` and `gen` are asserted everywhere, `co` from 3.13 (see the module's
            // documentation); the rest is printed.
            let residual = match mode {
                "calls" | "gen" => Some(RESIDUAL),
                "co" if minor >= (3, 13) => Some(RESIDUAL),
                _ => None,
            };
            let (worst, error_share, line) = compare(py, mode, &dir, residual.unwrap_or(0.0));
            let Some(residual) = residual else {
                println!("[paused_agreement] NOT CHECKED (issue 23): {line}");
                continue;
            };
            println!("[paused_agreement] leaf shares checked within noise + {residual}: {line}");
            if let Some(w) = worst {
                failures.push(format!("{} {mode}: {w}", py.label));
            }
            let allowed_errors = match mode {
                "co" => CO_ERRORS,
                "gen" if minor >= (3, 11) => GEN_ERRORS,
                "gen" => GEN_ERRORS_OBJECTS,
                _ => 0.02,
            };
            if mode != "calls" && error_share > 0.02 {
                println!(
                    "[paused_agreement] NOT CHECKED (issue 23): {} {mode}: error samples at most 2% (measured {:.1}%)",
                    py.label,
                    100.0 * error_share
                );
            }
            if error_share > allowed_errors {
                failures.push(format!(
                    "{} {mode}: {:.1}% error samples (at most {:.0}%)",
                    py.label,
                    100.0 * error_share,
                    100.0 * allowed_errors
                ));
            }
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
