//! A seeded mutation fuzzer for the stack walker, the code-object reader and the object
//! reader (locals, thread names), on every layout, fed from real process memory.
//!
//! Seeds: `tests/scripts/every_version.py` runs under each interpreter here and one snapshot
//! of it (with locals and thread names) is recorded as a snapshot image
//! (`py_spy::capture::image`); the images in `tests/corpus/walker/` (one per Python minor
//! version, recorded the same way; `PYSPY_UPDATE_CORPUS=1` rewrites them from the
//! interpreters here) are seeds too, so a machine without some interpreter still fuzzes its
//! layout. Each seed is first decoded as it is and must give the script's exact functions,
//! lines, locals and thread names.
//!
//! Mutants: bit flips, words overwritten with edge values or with pointers into the image
//! (itself, other structures), 4-byte counts made huge or negative, regions dropped
//! (unreadable memory) or cut short, bytes copied from one structure over another. Each is
//! decoded by a fresh decoder, or by one that has read the clean image first (so the
//! walker's guesses and the code cache meet garbage), which then reads the clean image again
//! and must give the clean result: garbage seen once is not kept. Every decode must finish
//! within [`MAX_TIME`] with bounded output, and never panic. For 3.13+ the `_Py_DebugOffsets`
//! table is damaged too and its layout built (or refused) without a panic.
//!
//! `cargo test --release --test fuzz_walker` runs a short pass; `PYSPY_FUZZ_SECONDS=3600`
//! runs for an hour (`.ci/run` also runs it in a debug build, where an arithmetic overflow
//! on garbage is a finding too). A run goes on after a finding and lists them all at the
//! end; each damaged image that found something is saved under `target/fuzz-findings/`:
//! copied into `tests/corpus/walker/found/`, it is decoded again by every run, a
//! regression test.

mod common;

use common::*;
use py_spy::capture::image::{ImageDecoder, SnapshotImage};
use py_spy::StackTrace;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Mutants per image in a default run.
const DEFAULT_MUTANTS: u64 = 150;
/// Longest one decode of a mutant may take.
const MAX_TIME: Duration = Duration::from_secs(2);
/// Most threads, frames per thread and characters per local a decode may return.
const MAX_THREADS: usize = 10_000;
const MAX_FRAMES: usize = 4096;
const MAX_REPR: usize = 2048;

const SCRIPT: &str = "every_version.py";

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/walker")
}

/// The script's threads as `name → [(function, line)]`, innermost first, and the main
/// thread's locals (name → repr).
type Stacks = BTreeMap<String, Vec<(String, i32)>>;

fn stacks(traces: &[StackTrace]) -> Stacks {
    traces
        .iter()
        .map(|t| {
            let name = t
                .thread_name
                .clone()
                .unwrap_or_else(|| t.thread_id.to_string());
            let frames = t
                .frames
                .iter()
                .filter(|f| f.filename.ends_with(SCRIPT))
                .map(|f| (f.name.clone(), f.line))
                .collect();
            (name, frames)
        })
        .collect()
}

fn main_locals(traces: &[StackTrace]) -> BTreeMap<String, String> {
    let main = traces
        .iter()
        .find(|t| t.thread_name.as_deref() == Some("MainThread"))
        .expect("a MainThread");
    let frame = main.frames.first().expect("main's frame");
    frame
        .locals
        .iter()
        .flatten()
        .map(|l| (l.name.clone(), l.repr.clone().unwrap_or_default()))
        .collect()
}

/// The clean image decodes to what the script is doing, exactly.
fn check_clean(label: &str, traces: &[StackTrace]) {
    let f = |name: &str, marker: &str| (name.to_string(), line_of(SCRIPT, marker));
    let got = stacks(traces);
    let want_sleeper: Vec<_> = std::iter::once(f("recurse", "SLEEP_LINE"))
        .chain((0..4).map(|_| f("recurse", "RECURSE_LINE")))
        .collect();
    let expect = [
        (
            "MainThread",
            vec![f("main", "MAIN_LINE"), f("<module>", "CALL_MAIN")],
        ),
        ("spinner", vec![f("spin", "SPIN_LINE")]),
        ("sleeper", want_sleeper),
        (
            "producer",
            vec![f("numbers", "GENERATOR_LINE"), f("produce", "PRODUCE_LINE")],
        ),
    ];
    for (thread, frames) in expect {
        assert_eq!(
            got.get(thread),
            Some(&frames),
            "{label}: thread {thread} in {got:#?}"
        );
    }
    let locals = main_locals(traces);
    for (name, repr) in [
        ("count", "42"),
        ("negative", "-7"),
        ("big", "1180591620717411303424"),
        ("ratio", "1.5"),
        ("flag", "True"),
        ("nothing", "None"),
    ] {
        assert_eq!(
            locals.get(name).map(String::as_str),
            Some(repr),
            "{label}: local {name} in {locals:?}"
        );
    }
    for name in ["text", "items", "pair", "mapping", "box", "parent"] {
        assert!(
            locals.contains_key(name),
            "{label}: no local {name} in {locals:?}"
        );
    }
}

/// Seed images: recorded now from each interpreter here, and the committed corpus.
fn seeds() -> Vec<(String, SnapshotImage)> {
    let mut out = Vec::new();
    let update = std::env::var("PYSPY_UPDATE_CORPUS").is_ok();
    on_each_supported("fuzz_walker_seeds", |py| {
        let target = spawn(&py.path, SCRIPT, &[]);
        let image = SnapshotImage::record(target.pid)
            .unwrap_or_else(|e| panic!("{}: could not record: {e:#}", py.label));
        drop(target);
        let size: usize = image.regions.iter().map(|(_, b)| b.len()).sum();
        println!(
            "[seed] {}: {} regions, {size} bytes",
            py.label,
            image.regions.len()
        );
        if update {
            let (a, b, _) = py.version;
            std::fs::create_dir_all(corpus_dir()).unwrap();
            let path = corpus_dir().join(format!("{a}.{b}.img"));
            std::fs::write(&path, image.to_bytes().unwrap()).unwrap();
        }
        out.push((py.label.clone(), image));
    });
    let mut committed: Vec<_> = std::fs::read_dir(corpus_dir())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    committed.retain(|p| p.extension().is_some_and(|e| e == "img"));
    committed.sort();
    for path in committed {
        let name = format!("corpus {}", path.file_name().unwrap().to_string_lossy());
        let image = SnapshotImage::from_bytes(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        out.push((name, image));
    }
    out
}

/// Damage `image` in place, 1 to 4 times.
fn mutate(image: &mut SnapshotImage, rng: &mut Rng) {
    for _ in 0..1 + rng.below(4) {
        let regions = &mut image.regions;
        if regions.is_empty() {
            return;
        }
        let r = rng.below(regions.len() as u64) as usize;
        let len = regions[r].1.len() as u64;
        if len == 0 {
            regions.remove(r);
            continue;
        }
        let at = rng.below(len) as usize & !7;
        let pointer_into = |rng: &mut Rng, regions: &[(u64, Vec<u8>)]| {
            let (base, bytes) = &regions[rng.below(regions.len() as u64) as usize];
            base + (rng.below(bytes.len() as u64 + 16) & !7)
        };
        match rng.below(8) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(len) as usize;
                    regions[r].1[i] ^= 1 << rng.below(8);
                }
            }
            1 | 2 => {
                let word = match rng.below(8) {
                    0 => 0,
                    1 => 1,
                    2 => u64::MAX,
                    3 => i64::MAX as u64,
                    4 => regions[r].0 + at as u64,
                    5 => rng.below(1 << 20),
                    _ => pointer_into(rng, regions),
                };
                put(&mut regions[r].1, at, &word.to_le_bytes());
            }
            3 => {
                let count: u32 =
                    [0, u32::MAX, i32::MAX as u32, 1 << 20, 0x8000_0000][rng.below(5) as usize];
                let at = rng.below(len) as usize & !3;
                put(&mut regions[r].1, at, &count.to_le_bytes());
            }
            4 => {
                regions.remove(r);
            }
            5 => {
                let keep = rng.below(len) as usize;
                regions[r].1.truncate(keep);
            }
            6 => {
                // Another structure's bytes over these.
                let s = rng.below(regions.len() as u64) as usize;
                let from = regions[s].1.clone();
                if from.is_empty() {
                    continue;
                }
                let start = rng.below(from.len() as u64) as usize;
                let n = (rng.below(256) as usize).min(from.len() - start);
                put(&mut regions[r].1, at, &from[start..start + n]);
            }
            _ => {
                // A pointer field aimed back at its own structure (a loop).
                let word = (regions[r].0 + rng.below(len.min(512))) & !7;
                put(&mut regions[r].1, at, &word.to_le_bytes());
            }
        }
    }
}

/// Copy `bytes` into `buf` at `at`, as far as `buf` goes.
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if at < buf.len() {
        let n = bytes.len().min(buf.len() - at);
        buf[at..at + n].copy_from_slice(&bytes[..n]);
    }
}

/// Everything a decode says, as text: threads, frames (function, file, line) and locals.
fn fingerprint(traces: &[StackTrace]) -> Vec<String> {
    traces
        .iter()
        .map(|t| {
            let frames: Vec<String> = t
                .frames
                .iter()
                .map(|f| {
                    let locals: Vec<_> = f
                        .locals
                        .iter()
                        .flatten()
                        .map(|l| (&l.name, &l.repr, l.arg))
                        .collect();
                    format!("{} {}:{} {locals:?}", f.name, f.filename, f.line)
                })
                .collect();
            format!("{:?} {} {frames:?}", t.thread_name, t.thread_id)
        })
        .collect()
}

/// Whether a decode stays within the bounds.
fn check_bounds(what: &str, traces: &[StackTrace]) {
    assert!(
        traces.len() <= MAX_THREADS,
        "{what}: {} threads",
        traces.len()
    );
    for t in traces {
        assert!(
            t.frames.len() <= MAX_FRAMES,
            "{what}: {} frames",
            t.frames.len()
        );
        for f in &t.frames {
            assert!(
                f.name.len() <= MAX_REPR && f.filename.len() <= 4 * MAX_REPR,
                "{what}: name"
            );
            for l in f.locals.iter().flatten() {
                let n = l.repr.as_deref().map_or(0, str::len);
                assert!(n <= MAX_REPR, "{what}: a local of {n} bytes");
            }
        }
    }
}

/// The message of a caught panic.
fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Where a damaged image that found something is saved.
fn findings_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings")
}

/// Decode mutant `seed` of `clean`. Returns `Ok(None)` if the mutant was refused, else
/// whether its stacks differ from the clean ones; a finding is an error naming the image
/// and seed, with the mutant saved under [`findings_dir`].
fn exercise(
    name: &str,
    clean: &SnapshotImage,
    clean_print: &[String],
    seed: u64,
) -> Result<Option<bool>, String> {
    let mut rng = Rng(seed);
    let mut mutant = clean.clone();
    mutate(&mut mutant, &mut rng);
    let warm = rng.below(2) == 0;
    let what = format!("image {name:?}, seed {seed}");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut decoder = ImageDecoder::new(clean).expect("the clean image's layout");
        if warm {
            decoder
                .decode(&clean.memory())
                .expect("the clean image decodes");
        }
        let result = bounded_decode(&mut decoder, &mutant);
        if warm {
            // Garbage seen once is not kept: the clean image reads as it did.
            let again = decoder
                .decode(&clean.memory())
                .expect("the clean image decodes");
            assert_eq!(
                fingerprint(&again),
                clean_print,
                "the clean image read differently after the mutant"
            );
        }
        // 3.13+: the layout built from a damaged debug-offsets table, or refused.
        let _ = mutant.check_debug_offsets();
        result.map(|traces| fingerprint(&traces) != clean_print)
    }));
    outcome.map(|decoded| decoded.ok()).map_err(|e| {
        let dir = findings_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let path = dir.join(format!("{file}-{seed}.img"));
        let _ = std::fs::write(&path, mutant.to_bytes().unwrap_or_default());
        format!("{what}: {} (saved as {})", panic_message(e), path.display())
    })
}

/// Decode `image` with `decoder`, within the time and output bounds (panics past them).
fn bounded_decode(
    decoder: &mut ImageDecoder,
    image: &SnapshotImage,
) -> anyhow::Result<Vec<StackTrace>> {
    let begin = Instant::now();
    let result = decoder.decode(&image.memory());
    let took = begin.elapsed();
    assert!(took < MAX_TIME, "a decode took {took:?}");
    if let Ok(traces) = &result {
        check_bounds("the decode", traces);
    }
    result
}

/// Damaged images that once found something (`tests/corpus/walker/found/`), decoded twice
/// by one decoder: no panic, within the bounds.
fn regressions() -> usize {
    let mut found: Vec<_> = std::fs::read_dir(corpus_dir().join("found"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    found.sort();
    for path in &found {
        let image = SnapshotImage::from_bytes(&std::fs::read(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = image.check_debug_offsets();
            if let Ok(mut decoder) = ImageDecoder::new(&image) {
                let _ = bounded_decode(&mut decoder, &image);
                let _ = bounded_decode(&mut decoder, &image);
            }
        }));
        if let Err(e) = outcome {
            panic!("{}: {}", path.display(), panic_message(e));
        }
    }
    found.len()
}

#[test]
fn damaged_process_memory_never_panics_hangs_or_overflows() {
    let seeds = seeds();
    let budget = std::env::var("PYSPY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs);
    let mut cleans = Vec::new();
    for (name, image) in &seeds {
        let traces = ImageDecoder::new(image)
            .and_then(|mut d| d.decode(&image.memory()))
            .unwrap_or_else(|e| panic!("{name}: the clean image does not decode: {e:#}"));
        check_clean(name, &traces);
        cleans.push(fingerprint(&traces));
    }
    let regressions = regressions();
    let begin = Instant::now();
    let (mut tried, mut decoded, mut changed) = (0u64, 0u64, 0u64);
    let mut findings = Vec::new();
    let random_seeds = (1u64..).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for (round, seed) in random_seeds.enumerate() {
        match budget {
            Some(b) if begin.elapsed() >= b => break,
            None if round as u64 >= DEFAULT_MUTANTS * seeds.len() as u64 => break,
            _ => {}
        }
        let i = round % seeds.len();
        match exercise(&seeds[i].0, &seeds[i].1, &cleans[i], seed) {
            Ok(outcome) => {
                decoded += outcome.is_some() as u64;
                changed += (outcome == Some(true)) as u64;
            }
            Err(finding) => findings.push(finding),
        }
        tried += 1;
    }
    assert!(
        findings.is_empty(),
        "{} findings in {tried} damaged snapshots:\n{}",
        findings.len(),
        findings.join("\n")
    );
    println!(
        "{regressions} saved findings decoded again; {tried} damaged snapshots of {} images: {decoded} decoded ({changed} to other stacks or locals \
         than the clean image's), the rest refused; no panic, no bound passed, the clean image \
         read the same after each",
        seeds.len()
    );
    // The damage must reach the decoders, not only the first read.
    assert!(decoded * 4 >= tried, "only {decoded} of {tried} decoded");
}
