//! File names as py-spy shows them: relative to the package root, worked out once per file
//! (looking for `__init__.py` through the target's root, so containers work).

use super::*;

impl PythonSpy {
    /// The file name relative to its package root (py-spy's rule): strip the directories
    /// above the outermost one that still holds an `__init__.py`. Names that are not paths
    /// (`<frozen runpy>`, `<string>`) are kept whole. Cached per file.
    pub fn short_filename(&mut self, filename: &Arc<str>) -> Option<String> {
        if let Some(s) = self.short_filenames.get(filename) {
            return s.clone();
        }
        // The packages are looked for where the target sees them: through its root when it
        // runs in a container or chroot; what is stripped is a prefix of its own path.
        let prefix = if self.target.dockerized {
            format!("/proc/{}/root", self.pid)
        } else {
            String::new()
        };
        let short = shorten_path(filename, |dir| {
            Path::new(&format!("{prefix}{dir}"))
                .join("__init__.py")
                .exists()
        });
        self.short_filenames.insert(filename.clone(), short.clone());
        short
    }

    /// The file name as `Frame::short_filename` shows it: shortened unless full file names
    /// were asked for.
    pub(super) fn shorten(&mut self, filename: &Arc<str>) -> Option<String> {
        if self.config.full_filenames {
            return Some(filename.to_string());
        }
        self.short_filename(filename)
    }
}

/// `filename` without the directories above its package root: the outermost directory for
/// which `is_package` holds, climbing from the file's own directory. A name that is not a
/// path (no `/`) is returned whole; a relative path keeps its relative form.
pub fn shorten_path(filename: &str, is_package: impl Fn(&str) -> bool) -> Option<String> {
    if !filename.contains('/') {
        return Some(filename.to_string());
    }
    let path = Path::new(filename);
    let mut root = path;
    while let Some(parent) = root.parent() {
        root = parent;
        if !is_package(&parent.to_string_lossy()) {
            break;
        }
    }
    path.strip_prefix(root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::shorten_path;

    #[test]
    fn short_names() {
        let pkgs = ["/srv/app/pkg", "/srv/app/pkg/sub"];
        let is_pkg = |d: &str| pkgs.contains(&d);
        assert_eq!(
            shorten_path("/srv/app/pkg/sub/mod.py", is_pkg).as_deref(),
            Some("pkg/sub/mod.py")
        );
        assert_eq!(
            shorten_path("/usr/lib/python3.11/threading.py", is_pkg).as_deref(),
            Some("threading.py")
        );
        // Not paths: kept whole (they used to pick up the host's chroot prefix).
        for name in ["<frozen runpy>", "__init__", "<string>"] {
            assert_eq!(shorten_path(name, is_pkg).as_deref(), Some(name));
        }
    }
}
