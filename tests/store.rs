//! The session file on its own: round trips, filters, size per sample, and clear errors for
//! files that are not ours, of another version, or damaged.

mod common;

use py_spy::store::{
    CaptureStart, FrameKey, SampleFilter, SamplingOptions, Session, SessionWriter, Started,
    ThreadKey, FLAG_ACTIVE, FLAG_ERROR, FLAG_GIL,
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

/// The meta rows of a capture of `python app.py` at `rate`.
fn start(tool_version: &str, rate: u64) -> CaptureStart {
    CaptureStart {
        tool_version: tool_version.into(),
        command_line: "python app.py".into(),
        started: Started::Spawned,
        pid: 4242,
        python: "3.11.7".into(),
        host: "test".into(),
        options: SamplingOptions {
            rate,
            ..SamplingOptions::default()
        },
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
    let mut w = SessionWriter::create(path, &start("test", 100)).unwrap();
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
    let meta = s
        .meta
        .start
        .as_ref()
        .expect("the capture's start is recorded");
    assert_eq!(meta.tool_version, "test");
    assert_eq!(meta.command_line, "python app.py");
    assert!(s.meta.start_unix_us > 1_600_000_000_000_000);
    assert!(s.meta.end.is_none(), "no end was written");
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

/// Error samples (format 2): stored with their reason, read back with the flag and the
/// reason's row, hidden from renders unless `--errors`, and counted.
#[test]
fn error_samples_are_stored_and_shown_on_request() {
    let path = temp("errors.pyspy");
    let mut w = SessionWriter::create(&path, &start("test", 100)).unwrap();
    w.add_process(4242, None, "python app.py", Some("3.12.1"))
        .unwrap();
    let key = ThreadKey {
        pid: 4242,
        thread_id: 7,
    };
    let stack = [frame("work", 12)];
    for tick in 0..10u64 {
        let t = tick * 10_000;
        if tick % 5 == 4 {
            // One chain that broke off after its innermost frame (kept), one unreadable.
            let (kind, message, partial) = if tick == 4 {
                let leaf = w.intern_frame(&frame("leaf", 30)).unwrap();
                (
                    "stack_changed",
                    "the stack changed while it was being read",
                    vec![leaf],
                )
            } else {
                ("frame_unreadable", "a frame could not be read", vec![])
            };
            w.add_error_sample(
                t,
                key,
                Some(77),
                Some("MainThread"),
                kind,
                message,
                &partial,
                FLAG_ACTIVE,
                0,
            )
            .unwrap();
        } else {
            w.add_sample(t, key, Some(77), Some("MainThread"), &stack, FLAG_ACTIVE, 0)
                .unwrap();
        }
    }
    w.finish().unwrap();

    let s = Session::open(&path).unwrap();
    assert_eq!(s.version, py_spy::store::schema::SCHEMA_VERSION);
    let kinds: Vec<&str> = s.errors.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["stack_changed", "frame_unreadable"]);
    let partial = s.errors[0].stack.expect("the broken chain's frames");
    assert_eq!(
        s.frames[s.stacks[partial as usize][0] as usize].function,
        "leaf"
    );
    assert_eq!(s.errors[1].stack, None);
    let samples: Vec<_> = s
        .samples(&SampleFilter::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(samples.len(), 10);
    let errors: Vec<_> = samples.iter().filter(|x| x.error()).collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(s.errors[errors[0].stack as usize].kind, "stack_changed");
    assert_eq!(errors[0].t_us, 40_000);
    assert!(errors
        .iter()
        .all(|e| e.flags & FLAG_ERROR != 0 && e.active()));

    let bin = env!("CARGO_BIN_EXE_py-spy");
    let render = |extra: &[&str]| {
        let o = std::process::Command::new(bin)
            .args(["render", path.to_str().unwrap(), "-f", "raw", "-o", "-"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    // By default an error sample whose innermost frames were read shows them under
    // <unreadable caller>; one with no frame read is left out. --no-errors leaves both out.
    assert_eq!(
        render(&[]).trim(),
        "<unreadable caller>;Mod.leaf (/app/mod.py:30) 1\nMod.work (/app/mod.py:12) 8"
    );
    assert_eq!(
        render(&["--no-errors"]).trim(),
        "Mod.work (/app/mod.py:12) 8"
    );
    let shown = render(&["--errors"]);
    assert!(
        shown.contains(
            "<error: the stack changed while it was being read>;Mod.leaf (/app/mod.py:30) 1"
        ) && shown.contains("<error: a frame could not be read> 1")
            && shown.contains("Mod.work (/app/mod.py:12) 8"),
        "{shown}"
    );
    let note = std::process::Command::new(bin)
        .args(["render", path.to_str().unwrap(), "-f", "raw"])
        .arg("-o")
        .arg(temp("errors.txt"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&note.stderr);
    assert!(
        said.contains("1 sample whose callers could not be read shown under <unreadable caller>")
            && said.contains("1 sample whose stack could not be read left out")
            && said.contains("a frame could not be read: 1"),
        "{said}"
    );
}

/// A format 1 file (before error samples) is still read.
#[test]
fn format_1_files_are_read() {
    let path = temp("v1.pyspy");
    let (written, _) = write_session(&path, 2, 100, 1);
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('drop table errors'); c.execute('pragma user_version=1'); c.commit()"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let s = Session::open(&path).unwrap();
    assert_eq!(s.version, 1);
    assert!(s.errors.is_empty());
    assert_eq!(s.sample_count().unwrap(), written.len() as u64);
}

/// A format 2 file (before executables and snapshot details) is still read, and its
/// snapshots come back without details.
#[test]
fn format_2_files_are_read() {
    let path = temp("v2.pyspy");
    let (written, _) = write_session(&path, 2, 100, 1);
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('drop table snapshot_frames'); c.execute('drop table snapshot_locals'); c.execute('alter table processes drop column executable'); c.execute('pragma user_version=2'); c.commit()"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    let s = Session::open(&path).unwrap();
    assert_eq!(s.version, 2);
    assert!(s.processes.iter().all(|p| p.executable.is_none()));
    assert_eq!(s.sample_count().unwrap(), written.len() as u64);
    assert!(s.snapshot_details(written[0].0).unwrap().is_empty());
}

/// The Python example of `docs/session-format.md` reads a session's samples: the times,
/// threads and flags written, in order (with the first interpreter 3.14+ found here, whose
/// standard library has zstd).
#[test]
fn the_documented_python_reader_reads_a_session() {
    let test = "the_documented_python_reader_reads_a_session";
    let found = common::interpreters()
        .into_iter()
        .find(|i| (i.version.0, i.version.1) >= (3, 14));
    let Some(py) = found else {
        common::report(
            test,
            &[],
            &[("3.14+".into(), "no interpreter found".into())],
        );
        return;
    };
    let dir = common::tmpdir("doc-reader");
    let session = dir.join("run.pyspy");
    let (written, _) = write_session(&session, 3, 100, 2);
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/session-format.md"),
    )
    .unwrap();
    let code = doc
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a Python example in docs/session-format.md");
    let script = dir.join("reader.py");
    std::fs::write(
        &script,
        code.replace("run.pyspy", session.to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(&py.path)
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        py.label,
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<(u64, u64, u8)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|w| w.parse().unwrap()).collect();
            (f[0], f[1], f[3] as u8)
        })
        .collect();
    let want: Vec<(u64, u64, u8)> = written.iter().map(|w| (w.0, w.1, w.3)).collect();
    assert_eq!(read, want);
    common::report(test, std::slice::from_ref(&py.label), &[]);
    let _ = std::fs::remove_dir_all(&dir);
}
