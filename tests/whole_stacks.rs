//! A stack shown whole is the thread's stack, not a shorter one that looks whole. The target
//! (tests/scripts/levels.py) walks a tree with recursive generators or coroutines that have
//! one function per level, so a stack read whole must name the levels one after another:
//! `walk_0`, `walk_1`, ... A generator that finished while its stack was read, linked to
//! where the thread went on instead of to its caller, shows up as a level skipped: issue 23's
//! sixth session found 5-25% of nonblocking samples so on 3.11-3.15, while a profile of one
//! recursive function (tests/paused_agreement.rs) still agreed with a paused one.
//!
//! The target runs on core 0 and the profiler on core 1 (the regime where reads race the
//! target); one paused recording checks the checker (no level skipped, stacks deep), one
//! nonblocking recording is checked. Error samples (shown under `<unreadable caller>` with
//! their innermost frames) are counted, not checked here: their share is printed.

mod common;

use common::*;
use std::path::Path;

/// Share of the stacks read whole allowed to skip a level: 0-1.6% were measured in issue 23's
/// sixth session after the fix (most often none; coroutines on 3.11-3.15), from a cause not
/// yet found; before it, 5-25% on 3.11-3.15.
const SKIPPED_ALLOWED: f64 = 0.03;

/// (stacks read whole, of which skipping a level, mean depth of the others, error samples)
/// of the default view of `session`.
fn levels(session: &Path, prefix: &str) -> (u64, u64, f64, u64) {
    let (mut whole, mut skipped, mut depth, mut errors) = (0, 0, 0, 0);
    for (stack, n) in parse_collapsed(&render_raw(session, &[])) {
        if stack.contains("<unreadable") || stack.contains("<error") {
            errors += n;
            continue;
        }
        let mut found = Vec::new();
        for frame in stack.split(';') {
            let name = frame.split(' ').next().unwrap_or("");
            let Some(level) = name.strip_prefix(prefix) else {
                continue;
            };
            // (`co_round`, which runs the coroutines, is not a level.)
            match level {
                "last" => found.push(u64::MAX),
                k => found.extend(k.parse::<u64>().ok()),
            }
        }
        // `walk_last` follows the deepest numbered level, whatever it is.
        let consecutive = found.first().is_none_or(|&l| l == 0)
            && found
                .windows(2)
                .all(|w| w[1] == w[0] + 1 || (w[1] == u64::MAX && w[0] != u64::MAX));
        whole += n;
        if consecutive {
            depth += found.len() as u64 * n;
        } else {
            skipped += n;
        }
    }
    let mean = depth as f64 / (whole - skipped).max(1) as f64;
    (whole, skipped, mean, errors)
}

#[test]
fn no_level_is_skipped_in_a_stack_read_whole() {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        println!("[whole_stacks] NOT CHECKED: needs two cores");
        return;
    }
    let dir = tmpdir("whole-stacks");
    let mut failures = Vec::new();
    on_each_supported_from("whole_stacks", (3, 6), |py| {
        for (mode, prefix) in [("gen", "walk_"), ("co", "co_")] {
            let target = spawn(&py.path, "levels.py", &[mode, "60"]);
            pin_to_core_0(target.pid);
            let paused = dir.join(format!("{mode}-paused.pyspy"));
            let running = dir.join(format!("{mode}-nonblocking.pyspy"));
            capture_from_core_1(target.pid, &paused, true);
            capture_from_core_1(target.pid, &running, false);
            let (pw, ps, pd, _) = levels(&paused, prefix);
            let (nw, ns, nd, ne) = levels(&running, prefix);
            let all = (nw + ne).max(1) as f64;
            println!(
                "[whole_stacks] {} {mode}: paused {pw} whole stacks, {ps} skipping a level, mean depth {pd:.2}; nonblocking {nw} whole, {ns} skipping a level ({:.1}%), mean depth {nd:.2}, {ne} error samples ({:.1}%)",
                py.label,
                100.0 * ns as f64 / nw.max(1) as f64,
                100.0 * ne as f64 / all
            );
            // The checker itself: a paused read is the thread's stack, and these are deep.
            if ps != 0 || pd < 4.0 || pw < 300 {
                failures.push(format!(
                    "{} {mode}: the paused recording is not what the checker expects ({pw} whole stacks, {ps} skipping a level, mean depth {pd:.2})",
                    py.label
                ));
            }
            if nw < 100 || ns as f64 > SKIPPED_ALLOWED * nw as f64 {
                failures.push(format!(
                    "{} {mode}: {ns} of {nw} nonblocking stacks read whole skip a level (at most {:.1}% allowed)",
                    py.label,
                    100.0 * SKIPPED_ALLOWED
                ));
            }
        }
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
