//! Writing an output whole or not at all. A regular file (or a new one) is written to a
//! temporary file beside it and renamed into place only once complete, so a failed render, a
//! full disk or a kill never leaves a partial file, and a link to a file keeps being a link.
//! An existing file in a folder we may not write to (another user's folder, a read-only
//! mount with a writable file) is rendered to a temporary file elsewhere first and copied
//! into it once complete: a failed render leaves it untouched, only a failure while copying
//! can cut it short. A device or a FIFO is written into as it is, as a stream (never unlinked
//! or replaced); `-` is standard output. A directory or a socket is refused.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::store::schema::{describe_file_type, folder_of};

/// An output being written.
pub struct Output {
    out: BufWriter<Box<dyn Write>>,
    /// For a regular file: the temporary file, the file it becomes, and how.
    replace: Option<(PathBuf, PathBuf, Finish)>,
    shown: String,
}

/// How a complete temporary file becomes the output.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Finish {
    /// Renamed over it (the temporary file is beside it).
    Rename,
    /// Copied into it (the folder is not ours to write: the temporary file is elsewhere).
    CopyInto,
}

impl Output {
    /// Open `path` ("-": standard output) for writing.
    pub fn open(path: &Path) -> Result<Output> {
        let shown = path.display().to_string();
        if path == Path::new("-") {
            if !stdout_is_open() {
                bail!("standard output is closed: nothing could be written to it");
            }
            let out: Box<dyn Write> = Box::new(std::io::stdout());
            return Ok(Output {
                out: BufWriter::with_capacity(1 << 16, out),
                replace: None,
                shown,
            });
        }
        // Follow links: the file a link names is what gets written.
        let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Ok(meta) = std::fs::metadata(&target) {
            let t = meta.file_type();
            if t.is_char_device() || t.is_block_device() || t.is_fifo() {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .with_context(|| format!("could not open {shown} for writing"))?;
                return Ok(Output {
                    out: BufWriter::with_capacity(1 << 16, Box::new(file)),
                    replace: None,
                    shown,
                });
            }
            if !t.is_file() {
                bail!(
                    "{shown} is {}: give a file name to write to",
                    describe_file_type(&t)
                );
            }
        }
        let dir = folder_of(&target).to_path_buf();
        if !dir.is_dir() {
            bail!(
                "could not create {shown}: the folder {} does not exist",
                dir.display()
            );
        }
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "output".into());
        let tmp_name = format!(".{name}.py-spy-{}.tmp", std::process::id());
        let beside = dir.join(&tmp_name);
        let (tmp, file, finish) = match File::create(&beside) {
            Ok(file) => (beside, file, Finish::Rename),
            Err(e) if target.is_file() => {
                // Not our folder, but perhaps our file: it must be writable now, not after
                // the render.
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .with_context(|| format!("could not open {shown} for writing"))?;
                let elsewhere = std::env::temp_dir().join(&tmp_name);
                let file = File::create(&elsewhere).with_context(|| {
                    format!(
                        "could not write a temporary file in {} ({e}) nor in {}",
                        dir.display(),
                        folder_of(&elsewhere).display()
                    )
                })?;
                (elsewhere, file, Finish::CopyInto)
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "could not create {shown} (a temporary file in {} first)",
                        dir.display()
                    )
                })
            }
        };
        if let Ok(meta) = std::fs::metadata(&target) {
            // Replacing a file keeps its permissions.
            let _ = file.set_permissions(meta.permissions());
        }
        Ok(Output {
            out: BufWriter::with_capacity(1 << 20, Box::new(file)),
            replace: Some((tmp, target, finish)),
            shown,
        })
    }

    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.out
    }

    /// Everything is written: flush it and put the file in place.
    pub fn commit(mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("could not write {}", self.shown))?;
        if let Some((tmp, target, finish)) = self.replace.take() {
            let result = match finish {
                Finish::Rename => std::fs::rename(&tmp, &target)
                    .with_context(|| format!("could not put {} in place", self.shown)),
                Finish::CopyInto => copy_into(&tmp, &target)
                    .with_context(|| format!("could not copy the output into {}", self.shown)),
            };
            let _ = std::fs::remove_file(&tmp);
            result?;
        }
        Ok(())
    }
}

impl Drop for Output {
    /// Not committed (an error, a panic): the temporary file goes, the target stays as it was.
    fn drop(&mut self) {
        if let Some((tmp, _, _)) = self.replace.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Copy the complete file `from` over the contents of `to`, to disk.
fn copy_into(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut src = File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(to)?;
    std::io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

/// Whether file descriptor 1 is open (Rust's `stdout()` silently drops writes when it is not).
fn stdout_is_open() -> bool {
    // SAFETY: F_GETFD only queries the descriptor's flags.
    unsafe { libc::fcntl(1, libc::F_GETFD) != -1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("pyspy-output-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn files_in(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_file_appears_whole_or_not_at_all() {
        let d = dir().join("whole");
        std::fs::create_dir_all(&d).unwrap();
        let target = d.join("out.json");
        std::fs::write(&target, "old").unwrap();
        {
            let mut o = Output::open(&target).unwrap();
            o.writer().write_all(b"half").unwrap();
            // Dropped without commit: a failed render.
        }
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        assert_eq!(files_in(&d), ["out.json"], "no temporary file left");
        let mut o = Output::open(&target).unwrap();
        o.writer().write_all(b"new").unwrap();
        o.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // Through a link: the file changes, the link stays a link.
        let link = d.join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut o = Output::open(&link).unwrap();
        o.writer().write_all(b"via link").unwrap();
        o.commit().unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "via link");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn devices_are_streams_and_folders_are_refused() {
        let mut o = Output::open(Path::new("/dev/null")).unwrap();
        o.writer().write_all(b"gone").unwrap();
        o.commit().unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        let full = Output::open(Path::new("/dev/full")).and_then(|mut o| {
            o.writer().write_all(&[0u8; 1 << 17])?;
            o.commit()
        });
        assert!(full.is_err(), "a full device is an error, not a success");
        let err = Output::open(&dir()).err().unwrap().to_string();
        assert!(err.contains("is a directory"), "{err}");
        let err = Output::open(Path::new("/nonexistent-dir/x.svg"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "could not create /nonexistent-dir/x.svg: the folder /nonexistent-dir does not exist"
        );
    }

    /// A folder we may not write to: for root the immutable flag (`chattr +i`: root ignores
    /// permissions), for others no write permission. Returns how to undo it.
    fn lock_folder(d: &Path) -> Box<dyn Fn()> {
        use std::os::unix::fs::PermissionsExt;
        let path = d.to_path_buf();
        if unsafe { libc::geteuid() } == 0 {
            let ok = std::process::Command::new("chattr")
                .arg("+i")
                .arg(d)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "chattr +i {} failed: cannot lock a folder as root",
                d.display()
            );
            Box::new(move || {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(&path)
                    .status();
            })
        } else {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
            Box::new(move || {
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
            })
        }
    }

    #[test]
    fn a_writable_file_in_a_folder_we_may_not_write_is_filled_once_complete() {
        let d = dir().join("locked");
        std::fs::create_dir_all(&d).unwrap();
        let target = d.join("out.txt");
        std::fs::write(&target, "old").unwrap();
        let unlock = lock_folder(&d);
        let outcome = std::panic::catch_unwind(|| {
            {
                let mut o = Output::open(&target).unwrap();
                o.writer().write_all(b"half").unwrap();
            }
            assert_eq!(
                std::fs::read_to_string(&target).unwrap(),
                "old",
                "a failed render"
            );
            let mut o = Output::open(&target).unwrap();
            o.writer().write_all(b"complete").unwrap();
            o.commit().unwrap();
            assert_eq!(std::fs::read_to_string(&target).unwrap(), "complete");
            assert_eq!(files_in(&d), ["out.txt"]);
            let tmp = format!(".out.txt.py-spy-{}.tmp", std::process::id());
            assert!(
                !std::env::temp_dir().join(tmp).exists(),
                "temporary file left"
            );
            // A new file there cannot be written at all.
            let err = Output::open(&d.join("new.txt")).err().expect("refused");
            assert!(format!("{err:#}").contains("could not create"), "{err:#}");
        });
        unlock();
        std::fs::remove_dir_all(&d).unwrap();
        outcome.unwrap();
    }
}
