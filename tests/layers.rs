//! The data flows one way, capture → store → analyze → render, and the layers say so in
//! their imports: a layer that reaches into one it must not fails here, naming the file and
//! line. `src/commands/` (and the command line, `src/main.rs` and `src/cli/`) is where layers
//! meet; `src/model/` is what every layer may use, and uses none of them. Inside capture, the
//! OS level (`capture/os`) knows nothing of the CPython level above it, and the CPython level
//! (`capture/python`) nothing of the spy, the clock or the attach policy built on it.

use std::path::{Path, PathBuf};

/// (layer directory, modules it must not use)
const RULES: &[(&str, &[&str])] = &[
    (
        "model",
        &["capture", "store", "analyze", "render", "commands"],
    ),
    ("capture", &["store", "analyze", "render", "commands"]),
    (
        "capture/os",
        &[
            "capture::python",
            "capture::spy",
            "capture::sampling",
            "capture::errors",
            "capture::attach",
            "capture::core_snapshot",
            "capture::image",
            "capture::timer",
        ],
    ),
    (
        "capture/python",
        &[
            "capture::spy",
            "capture::sampling",
            "capture::attach",
            "capture::core_snapshot",
            "capture::image",
            "capture::timer",
        ],
    ),
    ("store", &["capture", "analyze", "render", "commands"]),
    ("analyze", &["capture", "render", "commands"]),
    ("render", &["capture", "commands"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of `text` that use `crate::MODULE`, alone or in a `crate::{...}` group on one line
/// (code only: comments are skipped).
fn uses(text: &str, module: &str) -> Vec<(usize, String)> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let names = |code: &str, needle: &str| {
        code.match_indices(needle).any(|(at, _)| {
            // `crate::store` but not `crate::storage`.
            !code[at + needle.len()..].starts_with(is_word)
        })
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            names(code, &format!("crate::{module}"))
                || code.split_once("crate::{").is_some_and(|(_, group)| {
                    group
                        .split(|c: char| !is_word(c))
                        .any(|word| word == module)
                })
        })
        .map(|(i, line)| (i + 1, line.trim().to_string()))
        .collect()
}

#[test]
fn layers_use_only_what_comes_before_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut checked = 0;
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "no source files in src/{layer}");
        for file in files {
            checked += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for module in *forbidden {
                for (line, code) in uses(&text, module) {
                    broken.push(format!(
                        "{}:{line}: src/{layer} uses crate::{module}: {code}",
                        file.strip_prefix(&src).unwrap().display()
                    ));
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} files checked");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_check_sees_a_forbidden_use() {
    // The matcher itself: a use is found, a longer name and a comment are not.
    let text = "use crate::store::writer;\nuse crate::storage;\n// crate::store in a comment\n\
                use crate::{trace::Frame, store};\n";
    let found: Vec<usize> = uses(text, "store").iter().map(|u| u.0).collect();
    assert_eq!(found, [1, 4]);
    let nested = "use crate::capture::python::layout;\nuse crate::capture::os::memory;\n";
    let found: Vec<usize> = uses(nested, "capture::python")
        .iter()
        .map(|u| u.0)
        .collect();
    assert_eq!(found, [1]);
}
