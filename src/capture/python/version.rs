//! Which CPython the target runs: from `Py_Version` (3.11+), the version string in the
//! binary, or the library's file name, in that order of trust.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// "a1", "b2", "rc1" for pre-releases, "" for a final release.
    pub release_flags: String,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}{}",
            self.major, self.minor, self.patch, self.release_flags
        )
    }
}

impl Version {
    pub fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            release_flags: String::new(),
        }
    }

    /// Decode the `Py_Version` / `PY_VERSION_HEX` word: 0xMMmmppLS.
    ///
    /// ```
    /// use py_spy::capture::python::version::Version;
    /// assert_eq!(Version::from_hex(0x030b07f0).unwrap().to_string(), "3.11.7");
    /// assert_eq!(Version::from_hex(0x030e00a3).unwrap().to_string(), "3.14.0a3");
    /// ```
    pub fn from_hex(hex: u64) -> Option<Version> {
        let major = (hex >> 24) & 0xff;
        let minor = (hex >> 16) & 0xff;
        let patch = (hex >> 8) & 0xff;
        let level = (hex >> 4) & 0xf;
        let serial = hex & 0xf;
        if !(2..=3).contains(&major) || minor > 40 || hex >> 32 != 0 {
            return None;
        }
        let release_flags = match level {
            0xa => format!("a{serial}"),
            0xb => format!("b{serial}"),
            0xc => format!("rc{serial}"),
            0xf => String::new(),
            _ => return None,
        };
        Some(Version {
            major,
            minor,
            patch,
            release_flags,
        })
    }

    /// Find a CPython version string ("3.11.7 (main, ...", "2.7.18 (default, ...") in bytes.
    pub fn scan_bytes(bytes: &[u8]) -> Option<Version> {
        let mut i = 0;
        while i + 6 < bytes.len() {
            let b = bytes[i];
            if (b == b'2' || b == b'3')
                && bytes[i + 1] == b'.'
                && (i == 0 || !is_ver_char(bytes[i - 1]))
            {
                if let Some(v) = parse_version_prefix(&bytes[i..]) {
                    return Some(v);
                }
            }
            i += 1;
        }
        None
    }

    /// "libpython3.11.so.1.0" / "python3.11" / "libpython3.13t.so" → 3.11.0 (patch unknown).
    pub fn from_file_name(name: &str) -> Option<Version> {
        let rest = name
            .strip_prefix("libpython")
            .or_else(|| name.strip_prefix("python"))?;
        let mut parts = rest.split(['.', 't', 'd', 'm']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        if !(2..=3).contains(&major) {
            return None;
        }
        Some(Version::new(major, minor, 0))
    }
}

fn is_ver_char(b: u8) -> bool {
    b.is_ascii_digit() || b == b'.'
}

/// Parse "M.m.p[flags][+] (" at the start of `s`.
fn parse_version_prefix(s: &[u8]) -> Option<Version> {
    let text = std::str::from_utf8(&s[..s.len().min(40)])
        .ok()
        .or_else(|| {
            let end = s.iter().take(40).position(|b| !b.is_ascii()).unwrap_or(0);
            std::str::from_utf8(&s[..end]).ok()
        })?;
    let (head, _) = text.split_once(" (")?;
    let head = head.trim_end_matches('+');
    let mut nums = head.splitn(3, '.');
    let major: u64 = nums.next()?.parse().ok()?;
    let minor: u64 = nums.next()?.parse().ok()?;
    let rest = nums.next()?;
    let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
    let patch: u64 = rest[..digits].parse().ok()?;
    let flags = &rest[digits..];
    let flags_ok = flags.is_empty()
        || ((flags.starts_with('a') || flags.starts_with('b') || flags.starts_with("rc"))
            && flags
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .chars()
                .all(|c| c.is_ascii_digit()));
    if minor > 40 || patch > 99 || !flags_ok {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        release_flags: flags.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_hex() {
        assert_eq!(Version::from_hex(0x030b07f0), Some(Version::new(3, 11, 7)));
        let rc = Version::from_hex(0x030d00c1).unwrap();
        assert_eq!(rc.to_string(), "3.13.0rc1");
        assert_eq!(Version::from_hex(0xdeadbeef), None);
        assert_eq!(Version::from_hex(0), None);
    }

    #[test]
    fn scans_version_strings() {
        let blob = b"\0\0xx1.2.3 (nope\0garbage3.11.7 (main, Jan  1 2024, 00:00:00) [GCC]\0";
        assert_eq!(Version::scan_bytes(blob), Some(Version::new(3, 11, 7)));
        let blob = b"\x002.7.18 (default, Apr 20 2020)";
        assert_eq!(Version::scan_bytes(blob), Some(Version::new(2, 7, 18)));
        let blob = b"\x003.13.0rc2+ (heads/3.13:abc)";
        assert_eq!(Version::scan_bytes(blob).unwrap().to_string(), "3.13.0rc2");
        assert_eq!(Version::scan_bytes(b"3.11 (x) 10.1.2 (y)"), None);
    }

    #[test]
    fn parses_file_names() {
        assert_eq!(
            Version::from_file_name("libpython3.11.so.1.0"),
            Some(Version::new(3, 11, 0))
        );
        assert_eq!(
            Version::from_file_name("libpython3.13t.so"),
            Some(Version::new(3, 13, 0))
        );
        assert_eq!(
            Version::from_file_name("python2.7"),
            Some(Version::new(2, 7, 0))
        );
        assert_eq!(Version::from_file_name("bash"), None);
    }
}
