//! `py-spy query` on a real recording: its counts equal those of `render`, `analyze` and
//! `info` exactly; constraints handed to the scan give the same rows as a full scan; no
//! statement can change the file.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn query(session: &Path, sql: &str) -> Vec<Value> {
    let (code, out, err) =
        run_py_spy(&["query", session.to_str().unwrap(), sql, "--format", "json"]);
    assert_eq!(code, 0, "{sql}: {err}");
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("{sql}: not JSON ({e}): {out}"))
        .as_array()
        .unwrap()
        .clone()
}

fn count(session: &Path, sql: &str) -> u64 {
    query(session, sql)[0]["n"].as_u64().unwrap()
}

fn record(py: &Interpreter, session: &Path) {
    let target = spawn(&py.path, "phases.py", &["60"]);
    let pid = target.pid.to_string();
    let s = session.to_str().unwrap();
    let (code, _, err) = run_py_spy(&["capture", "--pid", &pid, "-r", "200", "-d", "2", "-o", s]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn query_counts_agree_with_render_analyze_and_info() {
    let dir = tmpdir("query");
    let py = first_supported();
    println!("[test] checking {}", py.label);
    let session = dir.join("run.pyspy");
    record(&py, &session);
    let s = session.to_str().unwrap();

    let all = count(&session, "select count(*) n from samples");
    let raw: u64 = parse_collapsed(&render_raw(&session, &["--idle", "--errors"]))
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(all, raw, "query against render -f raw --idle --errors");
    let (_, info, _) = run_py_spy(&["info", s, "--json"]);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["samples"].as_u64(), Some(all));
    let (_, by_thread, _) = run_py_spy(&[
        "analyze", s, "--by", "thread", "--idle", "--errors", "--format", "json",
    ]);
    let by_thread: Value = serde_json::from_str(&by_thread).unwrap();
    let own: u64 = by_thread
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["own_samples"].as_u64().unwrap())
        .sum();
    assert_eq!(own, all, "query against analyze --by thread");

    // Leaf functions: the innermost frame of each sample, as render -f raw shows it.
    let leaves = query(
        &session,
        "select f.qualname || ' (' || coalesce(f.short_filename, f.filename) || ':' || f.line || ')' \
         as leaf, count(*) as n from samples s join stack_frames sf on sf.stack = s.stack and \
         sf.depth = 0 join frames f on f.id = sf.frame group by leaf",
    );
    let from_query: BTreeMap<String, u64> = leaves
        .iter()
        .map(|r| {
            (
                r["leaf"].as_str().unwrap().to_string(),
                r["n"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut from_raw: BTreeMap<String, u64> = BTreeMap::new();
    for (stack, n) in parse_collapsed(&render_raw(&session, &["--idle"])) {
        *from_raw
            .entry(stack.rsplit(';').next().unwrap().to_string())
            .or_default() += n;
    }
    assert_eq!(from_query, from_raw);
    // The same through the samples' own leaf_frame column.
    let direct = query(
        &session,
        "select f.qualname || ' (' || coalesce(f.short_filename, f.filename) || ':' || f.line || ')' \
         as leaf, count(*) as n from samples s join frames f on f.id = s.leaf_frame group by leaf",
    );
    assert_eq!(direct, leaves);
    assert!(from_query
        .keys()
        .any(|k| k.starts_with("heavy (phases.py:")));

    // Constraints handed to the scan give what a full scan gives.
    let span = query(
        &session,
        "select min(time_us) a, max(time_us) b from samples",
    );
    let (a, b) = (
        span[0]["a"].as_u64().unwrap(),
        span[0]["b"].as_u64().unwrap(),
    );
    let (lo, hi) = (a + (b - a) / 4, a + (b - a) / 2);
    let window = |cond: &str| {
        count(
            &session,
            &format!("select count(*) n from samples where {cond}"),
        )
    };
    let pushed = window(&format!("time_us between {lo} and {hi}"));
    assert_eq!(
        pushed,
        window(&format!("time_us + 0 between {lo} and {hi}"))
    );
    assert!(pushed > 0 && pushed < all);
    assert_eq!(
        window(&format!("time_us > {hi}")),
        window(&format!("time_us + 0 > {hi}"))
    );
    assert_eq!(
        window(&format!("time_us < {lo}")),
        window(&format!("time_us + 0 < {lo}"))
    );
    assert_eq!(
        window(&format!("time_us = {a}")),
        window(&format!("time_us + 0 = {a}"))
    );
    assert_eq!(window("time_us < 0"), 0);
    let napper = query(
        &session,
        "select thread from samples where thread_name = 'napper' limit 1",
    );
    let t = napper[0]["thread"].as_u64().unwrap();
    assert_eq!(
        window(&format!("thread = {t}")),
        window(&format!("thread + 0 = {t}"))
    );
    let pid = info["pid"].as_i64().unwrap();
    assert_eq!(window(&format!("pid = {pid}")), all);
    assert_eq!(window(&format!("pid = {}", pid + 1)), 0);
    assert_eq!(
        window(&format!("thread = {t} and time_us >= {hi}")),
        window(&format!("thread + 0 = {t} and time_us + 0 >= {hi}"))
    );

    // Every stack's frames, innermost at depth 0, as the stacks table stores them.
    let depths = query(
        &session,
        "select count(*) n, max(depth) d from stack_frames",
    );
    assert!(depths[0]["n"].as_u64().unwrap() > 0);
    let one = query(
        &session,
        "select depth, frame from stack_frames where stack = 0 order by depth",
    );
    assert!(!one.is_empty());
    assert_eq!(one[0]["depth"], 0);

    // CSV and the table.
    let (code, csv, _) = run_py_spy(&[
        "query",
        s,
        "select count(*) as n from samples",
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0);
    assert_eq!(csv, format!("n\n{all}\n"));
    let (code, table, _) = run_py_spy(&["query", s, "select count(*) as n from samples"]);
    assert_eq!(code, 0);
    let digits = all.to_string();
    let rule = "-".repeat(digits.len());
    assert_eq!(
        table.lines().collect::<Vec<_>>(),
        ["n", rule.as_str(), digits.as_str()]
    );
}

#[test]
fn statements_that_write_are_refused_and_the_file_is_unchanged() {
    let dir = tmpdir("query-write");
    let py = first_supported();
    let session = dir.join("run.pyspy");
    record(&py, &session);
    let s = session.to_str().unwrap();
    let before = std::fs::read(&session).unwrap();
    let evil = dir.join("evil.db");
    let copy = dir.join("copy.db");
    for sql in [
        "insert into meta values ('a', 'b')".to_string(),
        "update meta set value = 'x'".to_string(),
        "delete from frames".to_string(),
        "drop table chunks".to_string(),
        "create table t(x)".to_string(),
        "create temp table t(x)".to_string(),
        "alter table meta add column y".to_string(),
        format!("attach '{}' as e", evil.display()),
        "pragma writable_schema = 1".to_string(),
        "pragma journal_mode = delete".to_string(),
        "pragma user_version = 7".to_string(),
        format!("vacuum into '{}'", copy.display()),
        "vacuum".to_string(),
        "reindex".to_string(),
        "analyze".to_string(),
        "update samples set gil = 1".to_string(),
        "select 1; delete from meta".to_string(),
    ] {
        let (code, out, err) = run_py_spy(&["query", s, &sql]);
        assert_ne!(code, 0, "{sql} was allowed: {out}");
        assert!(err.starts_with("Error: "), "{sql}: {err}");
        assert_eq!(
            std::fs::read(&session).unwrap(),
            before,
            "{sql} changed the file"
        );
    }
    assert!(!evil.exists() && !copy.exists());
    // Reading pragmas are allowed.
    let (code, out, err) =
        run_py_spy(&["query", s, "select name from pragma_table_info('frames')"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("qualname"), "{out}");
}
