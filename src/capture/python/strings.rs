//! Decoding `str` and `bytes` objects out of the target.

use super::layout::{Layout, StrFormat};
use crate::capture::os::memory::{Fields, Memory};
use anyhow::{bail, Context, Result};

/// Longest string we copy in full for names and file names; longer ones are cut there.
pub const MAX_NAME_CHARS: usize = 4096;

/// How much data past the header is read along with it, so most strings cost one read.
const SPECULATIVE: usize = 128;

/// A decoded `str`: its text (possibly cut to the requested length) and its full length.
pub struct PyStr {
    pub text: String,
    pub len: usize,
}

/// Read a `str` object at `addr`, keeping at most `max_chars` characters.
pub fn read_str(mem: &dyn Memory, layout: &Layout, addr: u64, max_chars: usize) -> Result<PyStr> {
    let u = &layout.unicode;
    if u.format == StrFormat::Bytes27 {
        // 2.7: identifiers and file names are byte strings.
        let (data, len) = read_bytes(mem, layout, addr, max_chars)?;
        return Ok(PyStr {
            text: String::from_utf8_lossy(&data).into_owned(),
            len,
        });
    }
    let mut buf = vec![0u8; u.compact_size as usize + SPECULATIVE];
    if mem.read(addr, &mut buf).is_err() {
        // Near the end of a mapping: read just the smallest header, the data comes separately.
        buf.truncate(u.ascii_size as usize);
        mem.read(addr, &mut buf)
            .with_context(|| format!("could not read str object at {addr:#x}"))?;
    }
    let f = Fields(&buf);
    let length = f.i64(u.length as usize);
    if !(0..=(1 << 40)).contains(&length) {
        bail!("implausible str length {length} at {addr:#x}");
    }
    let length = length as usize;
    let state = f.u32(u.state as usize);
    let kind = ((state >> u.kind_shift) & 7) as usize;
    let compact = state >> u.compact_bit & 1 == 1;
    let ascii = state >> u.ascii_bit & 1 == 1;
    if !matches!(kind, 1 | 2 | 4) {
        bail!("str object at {addr:#x} has unknown kind {kind}");
    }
    let data_addr = match (compact, ascii) {
        (true, true) => addr.wrapping_add(u.ascii_size),
        (true, false) => addr.wrapping_add(u.compact_size),
        (false, _) => f.u64(u.data_any as usize),
    };
    let take = length.min(max_chars);
    let nbytes = take * kind;
    let offset_in_buf = data_addr.wrapping_sub(addr) as usize;
    let data: Vec<u8> = match buf.get(offset_in_buf..offset_in_buf.saturating_add(nbytes)) {
        Some(d) if compact => d.to_vec(),
        _ => mem
            .read_vec(data_addr, nbytes)
            .with_context(|| format!("could not read the text of str at {addr:#x}"))?,
    };
    Ok(PyStr {
        text: decode_kind(&data, kind, ascii),
        len: length,
    })
}

/// Read a `str` used as a name or file name.
pub fn read_name(mem: &dyn Memory, layout: &Layout, addr: u64) -> Result<String> {
    Ok(read_str(mem, layout, addr, MAX_NAME_CHARS)?.text)
}

/// Text of a PEP 393 string's data: 1 byte per char (ASCII or Latin-1), 2 (UCS-2), 4 (UCS-4).
pub fn decode_kind(data: &[u8], kind: usize, ascii: bool) -> String {
    match kind {
        1 if ascii => String::from_utf8_lossy(data).into_owned(),
        1 => data.iter().map(|&b| b as char).collect(),
        2 => data
            .chunks_exact(2)
            .map(|c| char::from_u32(u16::from_le_bytes([c[0], c[1]]) as u32).unwrap_or('\u{fffd}'))
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_le_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}')
            })
            .collect(),
    }
}

/// Read the contents of a `bytes` object, at most `max` bytes; returns them and the full size.
pub fn read_bytes(
    mem: &dyn Memory,
    layout: &Layout,
    addr: u64,
    max: usize,
) -> Result<(Vec<u8>, usize)> {
    let o = &layout.object;
    let mut head = [0u8; 24];
    mem.read(addr, &mut head)
        .with_context(|| format!("could not read bytes object at {addr:#x}"))?;
    let size = Fields(&head).i64(o.ob_size as usize);
    if !(0..=(1 << 40)).contains(&size) {
        bail!("implausible bytes size {size} at {addr:#x}");
    }
    let size = size as usize;
    let data = mem
        .read_vec(addr.wrapping_add(o.bytes_sval), size.min(max))
        .with_context(|| format!("could not read the data of bytes at {addr:#x}"))?;
    Ok((data, size))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::os::memory::ImageMemory;
    use crate::capture::python::tables::V3_11;

    /// Build a compact 3.11 str object the way CPython lays it out.
    fn str_object(text: &str) -> Vec<u8> {
        let chars: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let max = chars.iter().copied().max().unwrap_or(0);
        let (kind, ascii) = match max {
            0..=0x7f => (1, true),
            0x80..=0xff => (1, false),
            0x100..=0xffff => (2, false),
            _ => (4, false),
        };
        let header = if ascii { 48 } else { 72 };
        let mut obj = vec![0u8; header];
        obj[16..24].copy_from_slice(&(chars.len() as u64).to_le_bytes());
        let state: u32 = (kind << 2) | (1 << 5) | ((ascii as u32) << 6) | (1 << 7);
        obj[32..36].copy_from_slice(&state.to_le_bytes());
        for c in chars {
            obj.extend_from_slice(&c.to_le_bytes()[..kind as usize]);
        }
        obj.push(0);
        obj
    }

    #[test]
    fn decodes_every_kind() {
        for text in [
            "",
            "busy_leaf",
            "héllo",
            "наибольший",
            "emoji💩name",
            &"x".repeat(5000),
        ] {
            let mut mem = ImageMemory::new();
            mem.add(0x1000, str_object(text));
            let s = read_str(&mem, &V3_11, 0x1000, usize::MAX).unwrap();
            assert_eq!(s.text, text);
            assert_eq!(s.len, text.chars().count());
            let cut = read_str(&mem, &V3_11, 0x1000, 3).unwrap();
            assert_eq!(cut.text, text.chars().take(3).collect::<String>());
        }
    }

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes of real str objects, copied out of CPython 3.11.7 with
    /// `ctypes.string_at(id(s), sys.getsizeof(s))` (refcount and type pointer zeroed).
    #[test]
    fn decodes_real_311_objects() {
        let cases = [
            ("busy_leaf", "03000000000000000000000000000000090000000000000000b21ad2c5a73fffe5e7f94b0b7f00000000000000000000627573795f6c65616600"),
            ("héllo", "03000000000000000000000000000000050000000000000054e9c17b405c9da6a4bb654c0b7f0000000000000000000000000000000000000000000000000000000000000000000068e96c6c6f00"),
            ("наибольший", "030000000000000000000000000000000a00000000000000b1a409d40ba068caa8abfb4b0b7f000000000000000000000000000000000000000000000000000000000000000000003d043004380431043e043b044c044804380439040000"),
            ("emoji💩", "0300000000000000000000000000000006000000000000009cfd4fb97bca4c19b000000000000000b845ef4b0b7f0000000000000000000000000000000000000600000000000000650000006d0000006f0000006a00000069000000a9f4010000000000"),
        ];
        for (text, hex) in cases {
            let mut mem = ImageMemory::new();
            mem.add(0x7000, unhex(hex));
            assert_eq!(read_name(&mem, &V3_11, 0x7000).unwrap(), text);
        }
    }

    #[test]
    fn rejects_garbage() {
        let mut mem = ImageMemory::new();
        let mut obj = vec![0xffu8; 100];
        obj[32..36].copy_from_slice(&(3u32 << 2).to_le_bytes());
        mem.add(0x1000, obj);
        assert!(read_str(&mem, &V3_11, 0x1000, 10).is_err());
        assert!(read_str(&mem, &V3_11, 0x9000, 10).is_err());
    }
}
