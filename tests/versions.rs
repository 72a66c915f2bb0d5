//! Every interpreter found here, 2.7 to 3.15: `dump --json --locals` of `every_version.py`
//! checked against exact expectations and against py-spy 0.4.3 frame by frame, and a short
//! `record` checked for exact stacks. The report lists each version and what ran on it.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

const SCRIPT: &str = "every_version.py";

/// The main thread's locals that must show exactly this text on every version.
const MAIN_LOCALS: &[(&str, &str)] = &[
    ("count", "42"),
    ("negative", "-7"),
    ("big", "1180591620717411303424"),
    ("ratio", "1.5"),
    ("text", "\"hello\""),
    ("flag", "True"),
    ("nothing", "None"),
    ("items", "[1, 2, 3]"),
    ("pair", "(\"a\", 2)"),
    ("mapping", "{\"key\": 1}"),
];

/// (function, line) of the first frames of a thread, innermost first.
fn frames(t: &Value) -> Vec<(String, i64)> {
    t["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["line"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn thread<'a>(traces: &'a [Value], name: &str) -> Result<&'a Value, String> {
    traces
        .iter()
        .find(|t| t["thread_name"] == name)
        .ok_or_else(|| format!("no thread named {name}"))
}

/// Our dump, checked against what the script does.
fn check_ours(traces: &[Value], pid: i32) -> Result<(), String> {
    let line = |m: &str| line_of(SCRIPT, m) as i64;
    if traces.len() != 4 {
        return Err(format!("{} threads, expected 4", traces.len()));
    }
    let main = thread(traces, "MainThread")?;
    if main["os_thread_id"] != pid || main["active"] != false {
        return Err(format!("main thread: {main}"));
    }
    let f = frames(main);
    let want = vec![
        ("main".to_string(), line("MAIN_LINE")),
        ("<module>".to_string(), line("CALL_MAIN")),
    ];
    if f != want {
        return Err(format!("main thread frames {f:?}, expected {want:?}"));
    }
    for t in traces {
        if t["frames"][0]["filename"]
            .as_str()
            .is_some_and(|f| !f.ends_with(SCRIPT))
        {
            return Err(format!("innermost frame not in the script: {t}"));
        }
    }
    let locals = main["frames"][0]["locals"].as_array().unwrap();
    for (name, repr) in MAIN_LOCALS {
        let Some(l) = locals.iter().find(|l| l["name"] == *name) else {
            return Err(format!("main has no local {name}"));
        };
        if l["repr"] != *repr || l["arg"] != false {
            return Err(format!("local {name}: {l}, expected {repr}"));
        }
    }
    let boxed = locals.iter().find(|l| l["name"] == "box").unwrap();
    let want = format!("<Box at {:#x}>", boxed["addr"].as_u64().unwrap());
    if boxed["repr"] != want.as_str() {
        return Err(format!("box: {boxed}"));
    }

    let spinner = thread(traces, "spinner")?;
    if frames(spinner)[0] != ("spin".to_string(), line("SPIN_LINE")) || spinner["active"] != true {
        return Err(format!("spinner: {spinner}"));
    }
    let sleeper = thread(traces, "sleeper")?;
    let f = frames(sleeper);
    let mut want = vec![("recurse".to_string(), line("SLEEP_LINE"))];
    want.extend((0..4).map(|_| ("recurse".to_string(), line("RECURSE_LINE"))));
    if f.len() < 5 || f[..5] != want[..] || sleeper["active"] != false {
        return Err(format!("sleeper frames {f:?}"));
    }
    for (depth, frame) in sleeper["frames"].as_array().unwrap()[..5]
        .iter()
        .enumerate()
    {
        let l = &frame["locals"][0];
        if l["name"] != "depth" || l["arg"] != true || l["repr"] != depth.to_string().as_str() {
            return Err(format!("recurse frame {depth} locals: {}", frame["locals"]));
        }
    }
    let producer = thread(traces, "producer")?;
    let f = frames(producer);
    let want = [
        ("numbers".to_string(), line("GENERATOR_LINE")),
        ("produce".to_string(), line("PRODUCE_LINE")),
    ];
    if f.len() < 2 || f[..2] != want[..] || producer["active"] != false {
        return Err(format!("producer frames {f:?}"));
    }
    Ok(())
}

fn dump_json(bin: Option<&std::path::Path>, pid: &str) -> Vec<Value> {
    let args = ["dump", "--pid", pid, "--json", "--locals"];
    let (code, out, err) = match bin {
        Some(b) => run(b, &args),
        None => run_py_spy(&args),
    };
    assert_eq!(code, 0, "dump failed: {err}");
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("dump --json output is not JSON ({e}): {out}"))
        .as_array()
        .unwrap()
        .clone()
}

/// `dump --json --locals` is exactly right on every interpreter, and agrees with py-spy 0.4.3
/// frame by frame where py-spy is available (CI requires it).
#[test]
fn dump_on_every_version() {
    let reference = reference_py_spy("dump_on_every_version");
    on_each_supported("dump_on_every_version", |py| {
        let target = spawn(&py.path, SCRIPT, &[]);
        std::thread::sleep(Duration::from_millis(200));
        let pid = target.pid.to_string();
        // Threads wake up every 50 ms: retry until a pair of dumps catches them asleep.
        let mut last = String::new();
        let mut agreed = false;
        for _ in 0..10 {
            let ours = dump_json(None, &pid);
            // The busy thread holds the GIL nearly all the time: the GIL holder must show.
            let gil = thread(&ours, "spinner").is_ok_and(|t| t["owns_gil"] == true);
            let result = check_ours(&ours, target.pid)
                .and_then(|()| {
                    gil.then_some(())
                        .ok_or_else(|| "the spinner does not hold the GIL".to_string())
                })
                .and_then(|()| match &reference {
                    // Counters that move between the two dumps: all of the busy thread's, and
                    // the loop counters elsewhere.
                    Some(r) => {
                        compare_dumps(&ours, &dump_json(Some(r), &pid), "spinner", |t, n| {
                            t == "spinner" || n == "n" || n == "item" || n == "total"
                        })
                    }
                    None => Ok(()),
                });
            match result {
                Ok(()) => {
                    agreed = true;
                    break;
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        assert!(agreed, "{}: {last}", py.label);
    });
}

/// A short `record` on every interpreter: the busy thread's exact stack dominates, and with
/// `--idle --threads` every thread shows with its name and its own leaf.
#[test]
fn record_on_every_version() {
    let dir = tmpdir("record_on_every_version");
    on_each_supported("record_on_every_version", |py| {
        let target = spawn(&py.path, SCRIPT, &[]);
        let pid = target.pid.to_string();
        let out = dir.join(format!("{}.txt", py.label.replace(' ', "-")));
        let (code, _, err) = run_py_spy(&[
            "record",
            "--pid",
            &pid,
            "-d",
            "2",
            "-r",
            "50",
            "--nonblocking",
            "--idle",
            "--threads",
            "-f",
            "raw",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{}: record failed: {err}", py.label);
        let stacks = parse_collapsed(&std::fs::read_to_string(&out).unwrap());
        let total: u64 = stacks.iter().map(|(_, n)| n).sum();
        assert!(total >= 50, "{}: only {total} samples", py.label);
        let leaf_share = |thread: &str, leaf: String| {
            let n: u64 = stacks
                .iter()
                .filter(|(s, _)| s.contains(&format!("): {thread};")) && s.ends_with(&leaf))
                .map(|(_, n)| n)
                .sum();
            n as f64 / (total as f64 / 4.0)
        };
        let at = |f: &str, m: &str| format!("{f} ({SCRIPT}:{})", line_of(SCRIPT, m));
        for (thread, leaf) in [
            ("spinner", at("spin", "SPIN_LINE")),
            ("MainThread", at("main", "MAIN_LINE")),
            ("sleeper", at("recurse", "SLEEP_LINE")),
            ("producer", at("numbers", "GENERATOR_LINE")),
        ] {
            let share = leaf_share(thread, leaf.clone());
            assert!(
                share > 0.9,
                "{}: thread {thread} is at {leaf} in {share:.2} of its samples:\n{stacks:?}",
                py.label
            );
        }
        // The main thread's full stack, with its thread label.
        let main = format!(
            "): MainThread;{};{}",
            at("<module>", "CALL_MAIN"),
            at("main", "MAIN_LINE")
        );
        assert!(
            stacks.iter().any(|(s, _)| s.ends_with(&main)),
            "{}: no stack ending {main}",
            py.label
        );
    });
}

/// A copy of the provisioned 3.15 whose `Py_Version` and debug-offsets version say 3.16.0:
/// read through its debug offsets with 3.15's table shape, since the table's anchors agree.
/// With one anchor changed (as a reordered 3.16 table would), it is refused, clearly.
#[test]
fn future_versions_by_debug_offsets() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache =
        std::env::var("PYSPY_PYTHONS").unwrap_or_else(|_| format!("{home}/.cache/pyspy-pythons"));
    let root = std::path::PathBuf::from(format!("{cache}/3.15/root"));
    let original = root.join("usr/bin/python3.15");
    let runner = std::path::PathBuf::from(format!("{cache}/bin/run-in-root"));
    if !original.exists() || !runner.exists() {
        report(
            "future_versions_by_debug_offsets",
            &[],
            &[(
                "3.15".into(),
                "not provisioned (../shared/pythons/provision 3.15)".into(),
            )],
        );
        return;
    }
    let bytes = std::fs::read(&original).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let file_offset = |name: &str| -> usize {
        let sym = elf
            .dynsyms
            .iter()
            .find(|s| elf.dynstrtab.get_at(s.st_name) == Some(name))
            .unwrap_or_else(|| panic!("{name} is not exported"));
        let ph = elf
            .program_headers
            .iter()
            .find(|p| {
                p.p_type == goblin::elf::program_header::PT_LOAD
                    && p.p_vaddr <= sym.st_value
                    && sym.st_value < p.p_vaddr + p.p_filesz
            })
            .unwrap();
        (sym.st_value - ph.p_vaddr + ph.p_offset) as usize
    };
    let (py_version, runtime) = (file_offset("Py_Version"), file_offset("_PyRuntime"));
    assert_eq!(&bytes[runtime..runtime + 8], b"xdebugpy");
    let v316 = 0x0310_00f0u64.to_le_bytes();
    let mut patched = bytes.clone();
    patched[py_version..py_version + 8].copy_from_slice(&v316);
    patched[runtime + 8..runtime + 16].copy_from_slice(&v316);
    // 3.15's table: `pyobject.ob_type` (always 8) is word 59.
    let mut reordered = patched.clone();
    reordered[runtime + 59 * 8..runtime + 60 * 8].copy_from_slice(&12u64.to_le_bytes());

    for (name, image, compatible) in [
        ("python3.16-test", &patched, true),
        ("python3.16-reordered-test", &reordered, false),
    ] {
        let path = root.join("usr/bin").join(name);
        std::fs::write(&path, image).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let py = Interpreter {
            label: format!("patched {name}"),
            path: runner.clone(),
            version: (3, 16, 0),
        };
        let target = spawn_with(
            &py.path,
            &[root.to_str().unwrap(), &format!("/usr/bin/{name}")],
            SCRIPT,
            &[],
        );
        let pid = target.pid.to_string();
        if compatible {
            let mut last = String::new();
            let ok = (0..10).any(|_| {
                let ours = dump_json(None, &pid);
                match check_ours(&ours, target.pid) {
                    Ok(()) => true,
                    Err(e) => {
                        last = e;
                        std::thread::sleep(Duration::from_millis(150));
                        false
                    }
                }
            });
            assert!(ok, "{}: {last}", py.label);
            let (_, out, _) = run_py_spy(&["dump", "--pid", &pid]);
            assert!(out.contains("Python v3.16.0 ("), "{out}");
        } else {
            let (code, _, err) = run_py_spy(&["dump", "--pid", &pid]);
            assert_ne!(code, 0);
            assert!(
                err.contains("3.16.0") && err.contains("newer py-spy"),
                "refusal should name the version and say why: {err}"
            );
        }
        drop(target);
        let _ = std::fs::remove_file(&path);
    }
    report(
        "future_versions_by_debug_offsets",
        &["provisioned 3.15 patched to say 3.16.0".into()],
        &[],
    );
}

const REPRS: &str = "reprs.py";
const POW_2_400: &str = "2582249878086908589655919172003011874329705792829223512830659356540647622016841194629645353280137831435903171972747493376";
const POW_2_500: &str = "3273390607896141870013189696827599152216642046043064789483291368096133796404674554883270092325904157150886684127560071009217256545885393053328527589376";
const POW_2_1000: &str = "10715086071862673209484250490600018105614048117055336074437503883703510511249361224931983788156958581275946729175531468251871452856923140435984577574698574803934567774824230985421074605062371141877954182153046474983581941267398767559165543946077062914571196477686542167660429831652624386837205668069376";

/// `name: text` of each local in main's frame of `reprs.py`, from `dump --locals` text output
/// (`locals` is 1 for `-l`, 2 for `-ll`).
fn reprs_locals(pid: &str, locals: usize) -> Vec<(String, String)> {
    let mut args = vec!["dump", "--pid", pid];
    args.extend(std::iter::repeat_n("--locals", locals));
    let (code, out, err) = run_py_spy(&args);
    assert_eq!(code, 0, "dump failed: {err}");
    let head = format!("    main ({REPRS}:{})", line_of(REPRS, "MAIN_LINE"));
    let mut lines = out.lines().skip_while(|l| *l != head).skip(1);
    assert_eq!(lines.next(), Some("        Locals:"), "{out}");
    lines
        .map_while(|l| l.strip_prefix("            "))
        .map(|l| {
            let (name, text) = l.split_once(": ").unwrap();
            (name.to_string(), text.to_string())
        })
        .collect()
}

/// `dump --locals` text of bytes, str and containers of big ints, exactly, on every
/// interpreter: bytes as Python's repr writes them (quote chosen as Python chooses it, cut
/// between escapes with `...` before the closing quote; on 2.7 bytes are `str`, shown in
/// py-spy's double-quoted form); str cut between escapes; a container holding an int longer
/// than the budget shows its items, that int cut to fit, instead of `(...)`.
#[test]
fn locals_as_python_writes_them() {
    on_each_supported("locals_as_python_writes_them", |py| {
        let target = spawn(&py.path, REPRS, &[]);
        let pid = target.pid.to_string();
        let got = reprs_locals(&pid, 1);
        let py2 = py.version.0 == 2;
        let bytes: [(&str, String); 8] = if py2 {
            [
                ("xml", r#""<root a="1">""#.into()),
                ("apostrophe", r#""it\"s""#.into()),
                ("both_quotes", r#""it\"s "q"""#.into()),
                // 2.7's str is decoded as UTF-8 (invalid bytes as U+FFFD), a backslash as is.
                (
                    "escapes",
                    "\"\\t\\n\\r\\x00\\x1f\\x7f\u{fffd}\u{fffd}\\\"".into(),
                ),
                ("no_bytes", r#""""#.into()),
                ("long_bytes", format!("\"<{}...\"", "ab".repeat(61))),
                ("zeros", format!("\"{}...\"", r"\x00".repeat(30))),
                ("late_quote", format!("\"it\\\"s{}...\"", "x".repeat(118))),
            ]
        } else {
            [
                ("xml", r#"b'<root a="1">'"#.into()),
                ("apostrophe", r#"b"it's""#.into()),
                ("both_quotes", r#"b'it\'s "q"'"#.into()),
                ("escapes", r"b'\t\n\r\x00\x1f\x7f\x80\xff\\'".into()),
                ("no_bytes", "b''".into()),
                ("long_bytes", format!("b'<{}a...'", "ab".repeat(60))),
                ("zeros", format!("b'{}...'", r"\x00".repeat(30))),
                // The quote is chosen from the whole value, past the cut.
                ("late_quote", format!("b'it\\'s{}...'", "x".repeat(117))),
            ]
        };
        let others: [(&str, String); 9] = [
            ("text", "\"héllo\"".into()),
            ("controls", format!("\"{}a...\"", r"a\x00".repeat(24))),
            (
                "small_big",
                "(1, 1267650600228229401496703205376, 3)".into(),
            ),
            // On its own an int is shown in full, past the budget.
            ("huge", POW_2_1000.into()),
            ("huge_tuple", format!("({}...)", &POW_2_1000[..115])),
            ("huge_list", format!("[1, {}..., ...]", &POW_2_400[..112])),
            ("huge_dict", format!("{{\"k\": {}...}}", &POW_2_500[..110])),
            ("huge_negative", format!("[-{}...]", &POW_2_400[..114])),
            ("huge_nested", format!("[[({}...)]]", &POW_2_1000[..111])),
        ];
        let mut want = vec![("parent".to_string(), std::process::id().to_string())];
        want.extend(
            bytes
                .into_iter()
                .chain(others)
                .map(|(n, t)| (n.to_string(), t)),
        );
        assert_eq!(got, want, "{}", py.label);
        for (name, text) in &got {
            let limit = if name == "huge" {
                POW_2_1000.len()
            } else {
                128
            };
            assert!(text.chars().count() <= limit, "{name}: {text}");
        }
        // Python 3's own repr of each bytes value: ours is it, or its start and `...` then
        // the quote when cut.
        if !py2 {
            let python = target
                .printed("EXPECT")
                .expect("the script printed its reprs");
            for (name, text) in &got[1..9] {
                let theirs = python[name.as_str()].as_str().unwrap();
                let cut = text.strip_suffix("...'").or(text.strip_suffix("...\""));
                match cut {
                    Some(start) => assert!(theirs.starts_with(start), "{name}: {text}"),
                    None => assert_eq!(text, theirs, "{name}"),
                }
            }
        }
        // With -ll the budget is 256: those containers fit in full.
        let got = reprs_locals(&pid, 2);
        let find = |n: &str| got.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(
            find("huge_list"),
            format!("[1, {POW_2_400}, 3]"),
            "{}",
            py.label
        );
        assert_eq!(
            find("huge_negative"),
            format!("[-{POW_2_400}]"),
            "{}",
            py.label
        );
    });
}
