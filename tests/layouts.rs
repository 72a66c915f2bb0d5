//! Every layout py-spy can use, fully resolved, against a committed golden file
//! (`tests/golden/layouts.txt`): the static tables (2.7–3.12) as written, and the 3.13–3.15
//! layouts as built from real `_Py_DebugOffsets` tables (`tests/golden/debug-offsets-3.X.txt`,
//! copied from those releases' binaries by `tools/offsets/debug-table.py`). An edit to one
//! table, to a shared fragment or to how debug offsets are read shows here as every field of
//! every version it changes. After an intended change, rewrite the golden file with
//! `PYSPY_UPDATE_GOLDEN=1 cargo test --release --test layouts` and review its diff.

use py_spy::capture::python::layout::Layout;
use py_spy::capture::python::registry::layout_from_debug_table;
use py_spy::capture::python::tables;
use py_spy::capture::python::version::Version;
use std::path::PathBuf;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A `_Py_DebugOffsets` table from its golden file (one decimal word per line).
fn debug_table(minor: u64) -> Vec<u8> {
    let path = golden_dir().join(format!("debug-offsets-3.{minor}.txt"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .flat_map(|l| l.trim().parse::<u64>().unwrap().to_le_bytes())
        .collect()
}

fn section(out: &mut String, title: &str, layout: &Layout) {
    out.push_str(&format!("== {title} ==\n{layout:#?}\n"));
}

/// The text of every layout, oldest first.
fn render() -> String {
    let mut out = String::new();
    for t in tables::ALL {
        let (a, b, c) = t.first;
        let (x, y, z) = t.last;
        section(
            &mut out,
            &format!("{a}.{b}.{c} to {x}.{y}.{z}: static table"),
            t,
        );
    }
    for (minor, patch) in [(13, 0), (14, 10), (15, 2)] {
        let version = Version::new(3, minor, patch);
        let l = layout_from_debug_table(&debug_table(minor), &version)
            .unwrap_or_else(|e| panic!("3.{minor}: {e:#}"));
        section(
            &mut out,
            &format!("3.{minor}: from debug-offsets-3.{minor}.txt"),
            &l,
        );
    }
    out
}

/// Where a line of `{:#?}` output sits: the section title and the field path to it.
fn locate(lines: &[&str], at: usize) -> (String, String) {
    let mut title = String::new();
    let mut names: Vec<String> = Vec::new();
    for line in &lines[..=at] {
        if let Some(t) = line.strip_prefix("== ") {
            title = t.trim_end_matches(" ==").to_string();
            names.clear();
            continue;
        }
        let depth = (line.len() - line.trim_start().len()) / 4;
        names.truncate(depth);
        names.resize(depth, String::new());
        let name = line
            .trim_start()
            .split_once(": ")
            .map(|(n, _)| n.to_string());
        names.push(name.unwrap_or_default());
    }
    let path: Vec<&str> = names
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| n.as_str())
        .collect();
    (title, path.join("."))
}

#[test]
fn layouts_match_golden() {
    let got = render();
    let path = golden_dir().join("layouts.txt");
    if std::env::var_os("PYSPY_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        eprintln!("rewrote {path:?}");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.lines().collect(), want.lines().collect());
    let mut report = Vec::new();
    for i in 0..g.len().max(w.len()) {
        let (a, b) = (w.get(i).copied(), g.get(i).copied());
        if a == b {
            continue;
        }
        let (title, field) = locate(if b.is_some() { &g } else { &w }, i);
        report.push(format!(
            "  {title}: {field}\n    golden: {}\n    now:    {}",
            a.map_or("(none)", str::trim),
            b.map_or("(none)", str::trim)
        ));
        if report.len() == 40 {
            report.push("  ... (more)".into());
            break;
        }
    }
    panic!(
        "the resolved layouts differ from {path:?} (line by line; once lines are inserted or \
         removed, later ones shift):\n{}\nIf the change is intended, rerun with \
         PYSPY_UPDATE_GOLDEN=1 and review the file's diff.",
        report.join("\n")
    );
}

/// Each debug-offsets input is what its binary (named in its first line) holds, where that
/// binary is on this machine: the first 8-byte aligned cookie followed by a 3.x version word.
#[test]
fn debug_tables_match_their_binaries() {
    for minor in [13, 14, 15] {
        let path = golden_dir().join(format!("debug-offsets-3.{minor}.txt"));
        let text = std::fs::read_to_string(&path).unwrap();
        let binary = text
            .lines()
            .next()
            .and_then(|l| l.split(" from ").nth(1))
            .and_then(|r| r.split(" (").next())
            .unwrap_or_else(|| panic!("{path:?} does not name its binary"));
        let home = std::env::var("HOME").unwrap_or_default();
        let binary = binary.replacen('~', &home, 1);
        let Ok(data) = std::fs::read(&binary) else {
            eprintln!("skipped 3.{minor}: {binary} is not on this machine");
            continue;
        };
        let want = debug_table(minor);
        let word = |at: usize| u64::from_le_bytes(data[at..at + 8].try_into().unwrap());
        let at = (0..data.len().saturating_sub(want.len()))
            .step_by(8)
            .find(|&at| &data[at..at + 8] == b"xdebugpy" && word(at + 8) >> 24 == 3)
            .unwrap_or_else(|| panic!("no _Py_DebugOffsets in {binary}"));
        assert!(
            data[at..at + want.len()] == want[..],
            "{path:?} differs from the table in {binary}"
        );
    }
}

#[test]
fn locate_names_the_field() {
    let text = "== 3.12 ==\nLayout {\n    runtime: RuntimeOffsets {\n        gil: InterpGil {\n            locked: 16,\n";
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        locate(&lines, 4),
        ("3.12".to_string(), "runtime.gil.locked".to_string())
    );
}
