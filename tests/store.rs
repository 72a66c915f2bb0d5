//! The session file on its own: round trips, filters, size per sample, and clear errors for
//! files that are not ours, of another version, or damaged.

use py_spy::store::{
    FrameKey, SampleFilter, Session, SessionWriter, ThreadKey, FLAG_ACTIVE, FLAG_GIL,
};
use std::path::{Path, PathBuf};

/// A sample as the test wrote it: (t_us, thread index, stack, flags).
type Written = (u64, u64, Vec<FrameKey>, u8);
use std::sync::Arc;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("py-spy-store-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn frame(function: &str, line: i32) -> FrameKey {
    FrameKey {
        short_filename: None,
        function: Arc::from(function),
        qualname: Arc::from(format!("Mod.{function}").as_str()),
        filename: Arc::from("/app/mod.py"),
        line,
        first_line: line - 1,
        module: None,
    }
}

/// Writes `threads` threads sampled at `rate` Hz for `seconds`, each cycling through a few
/// stacks; returns the samples written as (t_us, thread index, stack frames, flags).
fn write_session(
    path: &Path,
    threads: u64,
    rate: u64,
    seconds: u64,
) -> (Vec<Written>, py_spy::store::WriterStats) {
    let mut w = SessionWriter::create(path, &[("tool_version", "test".into())]).unwrap();
    w.add_process(4242, None, "python app.py", Some("3.11.7"))
        .unwrap();
    let shapes: Vec<Vec<FrameKey>> = (0..5)
        .map(|s| {
            (0..20)
                .map(|d| frame(&format!("f{d}"), 10 + d + if d == 0 { s } else { 0 }))
                .collect()
        })
        .collect();
    let mut written = Vec::new();
    for tick in 0..rate * seconds {
        let t_us = tick * 1_000_000 / rate + (tick % 3) * 17;
        for th in 0..threads {
            let stack = &shapes[((tick / 7 + th) % 5) as usize];
            let flags = if th == tick % threads {
                FLAG_ACTIVE | FLAG_GIL
            } else {
                0
            };
            let name = if th == 1 && tick >= rate {
                "renamed"
            } else {
                "worker"
            };
            w.add_sample(
                t_us,
                ThreadKey {
                    pid: 4242,
                    thread_id: 1000 + th,
                },
                Some(50 + th),
                Some(name),
                stack,
                flags,
                (tick % 5) as u32,
            )
            .unwrap();
            written.push((t_us, th, stack.clone(), flags));
        }
    }
    let stats = w.finish().unwrap();
    (written, stats)
}

#[test]
fn round_trip_with_filters() {
    let path = temp("round.pyspy");
    let (written, stats) = write_session(&path, 3, 1000, 10);
    assert_eq!(stats.samples, written.len() as u64);
    assert!(stats.chunks > 1, "several chunks");
    let s = Session::open(&path).unwrap();
    assert_eq!(s.meta["tool_version"], "test");
    assert!(s.meta.contains_key("start_unix_us"));
    assert_eq!(s.processes[0].command_line, "python app.py");
    assert_eq!(s.threads.len(), 3);
    assert_eq!(s.sample_count().unwrap(), written.len() as u64);
    // Names are kept over time.
    let t1 = &s.threads[1];
    assert_eq!(t1.name_at(0), Some("worker"));
    assert_eq!(t1.name_at(2_000_000), Some("renamed"));

    let all: Vec<_> = s
        .samples(&SampleFilter::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all.len(), written.len());
    for (got, (t, th, frames, flags)) in all.iter().zip(&written) {
        assert_eq!(got.t_us, *t);
        assert_eq!(s.threads[got.thread as usize].thread_id, 1000 + th);
        assert_eq!(got.flags, *flags);
        let names: Vec<(String, i32)> = s.stacks[got.stack as usize]
            .iter()
            .map(|f| {
                (
                    s.frames[*f as usize].function.clone(),
                    s.frames[*f as usize].line,
                )
            })
            .collect();
        let want: Vec<(String, i32)> = frames
            .iter()
            .map(|f| (f.function.to_string(), f.line))
            .collect();
        assert_eq!(names, want);
    }

    // Time window and thread filter pushed down.
    let filter = SampleFilter {
        from_us: Some(2_000_000),
        to_us: Some(3_000_000),
        threads: Some(vec![2]),
        ..Default::default()
    };
    let some: Vec<_> = s.samples(&filter).unwrap().map(Result::unwrap).collect();
    let want = written
        .iter()
        .filter(|(t, th, _, _)| *t >= 2_000_000 && *t <= 3_000_000 && *th == 2)
        .count();
    assert_eq!(some.len(), want);
    assert!(some.iter().all(|x| x.thread == 2));
    let none = SampleFilter {
        pids: Some(vec![1]),
        ..Default::default()
    };
    assert_eq!(s.samples(&none).unwrap().count(), 0);
}

/// 10 threads at 100 Hz for 60 s: report the size per sample (the README quotes it).
#[test]
fn a_few_bytes_per_sample() {
    let path = temp("size.pyspy");
    let (written, stats) = write_session(&path, 10, 100, 60);
    let file = std::fs::metadata(&path).unwrap().len();
    let per_sample = stats.chunk_bytes as f64 / written.len() as f64;
    eprintln!(
        "[store] {} samples: {:.2} bytes/sample of sample data, file {} bytes ({:.2} bytes/sample)",
        written.len(),
        per_sample,
        file,
        file as f64 / written.len() as f64
    );
    assert!(per_sample < 2.0, "{per_sample} bytes per sample");
    assert!(
        !PathBuf::from(format!("{}-wal", path.display())).exists(),
        "WAL folded back"
    );
}

#[test]
fn foreign_damaged_and_other_version_files_are_refused() {
    let err = |p: &Path| format!("{:#}", Session::open(p).err().expect("refused"));

    let missing = temp("missing.pyspy");
    assert!(err(&missing).contains("could not open"));

    let text = temp("text.pyspy");
    std::fs::write(&text, "hello, not a database at all").unwrap();
    assert!(
        err(&text).contains("not a py-spy session file"),
        "{}",
        err(&text)
    );

    let other = temp("other.sqlite");
    let _ = std::fs::remove_file(&other);
    rusqlite_free_db(&other);
    assert!(
        err(&other).contains("not a py-spy session file"),
        "{}",
        err(&other)
    );

    let path = temp("version.pyspy");
    write_session(&path, 1, 10, 1);
    set_user_version(&path, 99);
    assert!(err(&path).contains("format version 99"), "{}", err(&path));

    // Truncated: opening or reading fails with an error, never a panic.
    let path = temp("truncated.pyspy");
    write_session(&path, 3, 1000, 5);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    match Session::open(&path) {
        Err(e) => {
            assert!(format!("{e:#}").contains("damaged") || format!("{e:#}").contains("could not"))
        }
        Ok(s) => {
            let results: Vec<_> = s
                .samples(&SampleFilter::default())
                .map(|it| it.collect::<Vec<_>>())
                .unwrap_or_default();
            assert!(
                results.iter().any(|r| r.is_err()),
                "a truncated file must report damage"
            );
        }
    }
}

/// An SQLite database that is not ours.
fn rusqlite_free_db(path: &Path) {
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table t(x)'); c.commit()"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn set_user_version(path: &Path, v: i32) {
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('pragma user_version=%s' % sys.argv[2]); c.commit()"])
        .arg(path)
        .arg(v.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
