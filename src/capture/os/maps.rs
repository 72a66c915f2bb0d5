//! The target's memory map (`/proc/PID/maps`) and the files behind it.
//!
//! Paths in the map are as the target sees them; for a process in a container or chroot they
//! only make sense under `/proc/PID/root`, which is how every file here is opened.

use std::path::PathBuf;

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRange {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    pub offset: u64,
    pub inode: u64,
    /// Path as the target sees it ("" for anonymous memory, "[heap]" etc. for special ones).
    pub path: String,
}

/// Parse the text of `/proc/PID/maps`. Lines that don't parse are skipped.
pub fn parse_maps(text: &str) -> Vec<MapRange> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MapRange> {
    let mut parts = line.splitn(6, ' ');
    let range = parts.next()?;
    let perms = parts.next()?.as_bytes();
    let offset = u64::from_str_radix(parts.next()?, 16).ok()?;
    let _dev = parts.next()?;
    let inode = parts.next()?.parse().ok()?;
    let path = parts.next().unwrap_or("").trim_start().to_string();
    let (start, end) = range.split_once('-')?;
    Some(MapRange {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        readable: perms.first() == Some(&b'r'),
        writable: perms.get(1) == Some(&b'w'),
        executable: perms.get(2) == Some(&b'x'),
        offset,
        inode,
        path,
    })
}

/// Where a file the target has mapped can be opened from here.
pub fn host_path(pid: i32, target_path: &str) -> PathBuf {
    let via_root = PathBuf::from(format!("/proc/{pid}/root{target_path}"));
    if via_root.exists() {
        via_root
    } else {
        PathBuf::from(target_path)
    }
}

/// The very file behind a mapping, opened through `/proc/PID/map_files` (right whatever the
/// process's root, and even if the file was replaced since), if the kernel shows it.
pub fn mapped_file(pid: i32, range: &MapRange) -> Option<PathBuf> {
    let p = PathBuf::from(format!(
        "/proc/{pid}/map_files/{:x}-{:x}",
        range.start, range.end
    ));
    p.exists().then_some(p)
}

/// File name part of a mapped path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Is this mapped file a libpython (`libpython3.11.so.1.0`, `libpython2.7.so`, `libpython3.13t.so`)?
pub fn is_libpython(path: &str) -> bool {
    let name = file_name(path);
    name.starts_with("libpython") && name.contains(".so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let text = "55d0c0a00000-55d0c0a01000 r--p 00000000 fe:01 1234   /usr/bin/python3.11\n\
                    7f00aa000000-7f00aa100000 r-xp 00100000 fe:01 99 /lib/libpython3.11.so.1.0\n\
                    7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n\
                    7ffe0000-7ffe1000 rw-p 00000000 00:00 0\n\
                    garbage line\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[0].path, "/usr/bin/python3.11");
        assert!(maps[1].executable && !maps[1].writable);
        assert_eq!(maps[1].offset, 0x100000);
        assert_eq!(maps[2].path, "[stack]");
        assert_eq!(maps[3].path, "");
        assert!(is_libpython(&maps[1].path));
        assert!(!is_libpython(&maps[0].path));
    }
}
