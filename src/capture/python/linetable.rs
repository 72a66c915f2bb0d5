//! Line numbers from code objects' line tables.
//!
//! Three encodings exist: `co_lnotab` (up to 3.9), 3.10's `co_linetable`, and the PEP 657
//! location table of 3.11+ ([`LineTableFormat::Locations311`]).

use super::layout::LineTableFormat;

/// The line of the instruction at byte offset `addr` in the bytecode, or `None` when the
/// table says the instruction has no line (or the table ends before `addr`).
pub fn line_for(format: LineTableFormat, table: &[u8], first_line: i32, addr: u64) -> Option<i32> {
    match format {
        LineTableFormat::Locations311 => locations_311(table, first_line, addr),
        LineTableFormat::Linetable310 => linetable_310(table, first_line, addr),
        LineTableFormat::Lnotab { signed } => lnotab(table, signed, first_line, addr),
    }
}

/// `co_lnotab` (Objects/lnotab_notes.txt up to 3.9): byte pairs (bytecode delta, line
/// delta). The line of `addr` is the first line plus the line deltas of every pair whose
/// bytecode start is at or before `addr`.
fn lnotab(table: &[u8], signed: bool, first_line: i32, addr: u64) -> Option<i32> {
    let mut line = first_line;
    let mut start: u64 = 0;
    for pair in table.chunks_exact(2) {
        start += pair[0] as u64;
        if start > addr {
            break;
        }
        // A damaged first line must not overflow: lines wrap (garbage in, garbage out).
        line = line.wrapping_add(if signed {
            pair[1] as i8 as i32
        } else {
            pair[1] as i32
        });
    }
    Some(line)
}

/// 3.10's `co_linetable` (PEP 626): byte pairs (bytecode length, signed line delta), each
/// pair covering `[start, start + length)`; a delta of -128 means "no line" for that range,
/// and the line carries on from the last real delta.
fn linetable_310(table: &[u8], first_line: i32, addr: u64) -> Option<i32> {
    let mut line = first_line;
    let mut start: u64 = 0;
    for pair in table.chunks_exact(2) {
        let len = pair[0] as u64;
        let delta = pair[1] as i8;
        if delta != -128 {
            line = line.wrapping_add(delta as i32);
        }
        let end = start + len;
        if start <= addr && addr < end {
            return (delta != -128).then_some(line);
        }
        start = end;
    }
    None
}

fn varint(table: &[u8], i: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    let mut shift = 0;
    loop {
        let b = *table.get(*i)?;
        *i += 1;
        value |= ((b & 63) as u32).checked_shl(shift)?;
        if b & 64 == 0 {
            return Some(value);
        }
        shift += 6;
        if shift > 30 {
            return None;
        }
    }
}

fn svarint(table: &[u8], i: &mut usize) -> Option<i32> {
    let v = varint(table, i)?;
    Some(if v & 1 == 1 {
        -((v >> 1) as i32)
    } else {
        (v >> 1) as i32
    })
}

/// PEP 657 location table (Objects/locations.md): entries of `(code, length)` headers with
/// the high bit set, each covering `length` 2-byte code units.
fn locations_311(table: &[u8], first_line: i32, addr: u64) -> Option<i32> {
    let mut line = first_line;
    let mut start: u64 = 0;
    let mut i = 0;
    while i < table.len() {
        let head = table[i];
        i += 1;
        if head & 0x80 == 0 {
            return None; // not at an entry boundary: corrupt table
        }
        let code = (head >> 3) & 15;
        let end = start + 2 * (((head & 7) as u64) + 1);
        let entry_line = match code {
            15 => None,
            14 => {
                line = line.checked_add(svarint(table, &mut i)?)?;
                varint(table, &mut i)?; // end line delta
                varint(table, &mut i)?; // start column + 1
                varint(table, &mut i)?; // end column + 1
                Some(line)
            }
            13 => {
                line = line.checked_add(svarint(table, &mut i)?)?;
                Some(line)
            }
            10..=12 => {
                line = line.wrapping_add((code - 10) as i32);
                i += 2;
                Some(line)
            }
            _ => {
                i += 1;
                Some(line)
            }
        };
        if addr < end {
            return entry_line;
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Taken from CPython 3.11.7: `co_linetable` of
    /// ```python
    /// def f(a):        # line 1
    ///     x = a + 1    # line 2
    ///     y = [x,
    ///          x]      # line 3-4
    ///     return y     # line 5
    /// ```
    /// (`f.__code__.co_linetable`; positions from `co_positions()` cross-checked below).
    const TABLE: &[u8] = b"\x80\x00\xd8\x08\t\x88A\x89\x05\x80A\xd8\t\n\xd8\t\n\xf0\x03\x01\t\x0c\x80A\xe0\x0b\x0c\x80H";

    /// Line of every instruction of
    /// ```python
    /// def f(a):            # line 2
    ///     x = a + 1        # 3
    ///     y = [x,          # 4
    ///          x]          # 5
    ///     for i in range(3):   # 6
    ///         x += i       # 7
    ///     return (y,       # 8
    ///             x)       # 9
    /// ```
    /// as `dis.findlinestarts` gives it on CPython 3.9.18 and 3.10.13 (the same for both).
    const LINES_39_310: [(u64, i32); 23] = [
        (0, 3),
        (2, 3),
        (4, 3),
        (6, 3),
        (8, 4),
        (10, 5),
        (12, 4),
        (14, 4),
        (16, 6),
        (18, 6),
        (20, 6),
        (22, 6),
        (24, 6),
        (26, 6),
        (28, 7),
        (30, 7),
        (32, 7),
        (34, 7),
        (36, 7),
        (38, 8),
        (40, 9),
        (42, 8),
        (44, 8),
    ];

    #[test]
    fn decodes_lnotab_with_negative_deltas() {
        // f.__code__.co_lnotab on 3.9.18
        let table = b"\x00\x01\x08\x01\x02\x01\x02\xff\x04\x02\x0c\x01\n\x01\x02\x01\x02\xff";
        let format = LineTableFormat::Lnotab { signed: true };
        for (offset, line) in LINES_39_310 {
            assert_eq!(
                line_for(format, table, 2, offset),
                Some(line),
                "offset {offset}"
            );
        }
        // 2.7's deltas are unsigned: 0xff is +255 there.
        let unsigned = LineTableFormat::Lnotab { signed: false };
        assert_eq!(line_for(unsigned, b"\x02\xff", 1, 2), Some(256));
    }

    #[test]
    fn decodes_310_linetable() {
        // f.__code__.co_linetable on 3.10.13
        let table = b"\x08\x01\x02\x01\x02\x01\x04\xff\x0c\x02\n\x01\x02\x01\x02\x01\x04\xff";
        for (offset, line) in LINES_39_310 {
            assert_eq!(
                line_for(LineTableFormat::Linetable310, table, 2, offset),
                Some(line),
                "offset {offset}"
            );
        }
        // -128: no line for that range.
        assert_eq!(
            line_for(LineTableFormat::Linetable310, b"\x02\x80", 5, 0),
            None
        );
    }

    #[test]
    fn decodes_311_locations() {
        // (byte offset, line) for each instruction, from dis / co_positions on 3.11.7
        let expected = [
            (0, Some(1)),
            (2, Some(2)),
            (4, Some(2)),
            (6, Some(2)),
            (8, Some(2)),
            (10, Some(2)),
            (12, Some(3)),
            (14, Some(4)),
            (16, Some(3)),
            (18, Some(3)),
            (20, Some(5)),
            (22, Some(5)),
        ];
        for (addr, line) in expected {
            assert_eq!(
                line_for(LineTableFormat::Locations311, TABLE, 1, addr),
                line,
                "addr {addr}"
            );
        }
        assert_eq!(
            line_for(LineTableFormat::Locations311, TABLE, 1, 1000),
            None
        );
    }

    #[test]
    fn garbage_tables_do_not_panic() {
        for table in [
            &b""[..],
            b"\x00\x01",
            b"\xf0",
            b"\xf0\xff\xff\xff\xff\xff\xff\xff",
            b"\xe8",
        ] {
            let _ = line_for(LineTableFormat::Locations311, table, 1, 10);
        }
    }
}
