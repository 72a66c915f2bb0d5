//! Python objects in the target: types, dicts, and the short text shown for local variables.
//!
//! The text follows py-spy 0.4's rules (ints, floats, bools, None, strings in double quotes,
//! tuples, lists, dicts, numpy scalars, `<type at 0x..>` for the rest, each within a length
//! budget), except where py-spy gives up or is wrong: strings of any length are shown cut to
//! the budget (py-spy prints `?` from 4096 characters), ints of any size in full (py-spy:
//! `+bigint`; inside a container an int longer than its budget is cut to it, `1234...`), bytes
//! as Python's repr writes them (`b'<root a="1">'`, `b"it's"`, `b'\x00\xff'`; py-spy:
//! `<bytes at 0x..>`), cut between escapes with `...` before the closing quote, as strings are.
//! A string, bytes or int in a container that does not fit what is left of the budget is
//! shown again cut to fit (py-spy drops it for `...`, so `(2**1000,)` was `(...)`), then
//! `...` if items remain; a nested container is not (see `is_container`).
//!
//! `str` keeps py-spy's form, not Python's repr: always `"..."`, a single quote written `\"`.
//! On 2.7, `str` is bytes and is shown that way too (`"<root a="1">"`), as py-spy does.

use super::layout::{tpflags, DictFormat, IntFormat, Layout, ManagedDict, StrFormat};
use super::strings;
use crate::capture::os::memory::{Fields, Memory};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// Most entries read from one dict (guards against garbage sizes).
const MAX_DICT_ENTRIES: u64 = 1 << 20;
/// Most digits of an int decoded (30 bits each); larger ints are shown cut.
const MAX_INT_DIGITS: usize = 2048;
/// Bytes of a `bytes` value looked at to choose its quote as Python does (from the whole
/// value): all of it but for longer ones, where only these first bytes count.
const QUOTE_SCAN: usize = 4096;
/// A container keeps an item only if more than this many characters of its budget are left
/// after it (py-spy 0.4's rule): room for the `, ...` that says items were left out.
const ROOM_AFTER_ITEM: isize = 5;

#[derive(Clone, Debug)]
pub struct TypeInfo {
    pub name: String,
    pub flags: u64,
    pub basicsize: i64,
    pub dictoffset: i64,
    pub cached_keys: u64,
}

/// Reads objects; caches type objects, which live as long as the program in practice.
pub struct ObjectReader<'a> {
    pub mem: &'a dyn Memory,
    pub layout: &'a Layout,
    types: HashMap<u64, TypeInfo>,
    /// Containers whose items are being shown: one met again inside itself is `[...]`.
    showing: Vec<u64>,
}

impl<'a> ObjectReader<'a> {
    pub fn new(mem: &'a dyn Memory, layout: &'a Layout) -> ObjectReader<'a> {
        ObjectReader {
            mem,
            layout,
            types: HashMap::new(),
            showing: Vec::new(),
        }
    }

    /// The type of the object at `addr`, and the type's address.
    pub fn type_of(&mut self, addr: u64) -> Result<(u64, TypeInfo)> {
        let o = &self.layout.object;
        let tp = self
            .mem
            .read_u64(addr.wrapping_add(o.ob_type))
            .with_context(|| format!("could not read the object at {addr:#x}"))?;
        if let Some(t) = self.types.get(&tp) {
            return Ok((tp, t.clone()));
        }
        let size = (o.ht_cached_keys.unwrap_or(o.tp_dictoffset) + 8) as usize;
        let raw = self.mem.read_vec(tp, size).or_else(|_| {
            // static types are smaller than heap types
            self.mem.read_vec(tp, (o.tp_dictoffset + 8) as usize)
        })?;
        let f = Fields(&raw);
        let name_ptr = f.u64(o.tp_name as usize);
        let mut name = vec![0u8; 128];
        let name = match self.mem.read(name_ptr, &mut name) {
            Ok(()) => {
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                String::from_utf8_lossy(&name[..end]).into_owned()
            }
            Err(_) => {
                let end = (name_ptr | 0xfff).wrapping_add(1);
                let n = end.wrapping_sub(name_ptr).min(128) as usize;
                let b = self.mem.read_vec(name_ptr, n)?;
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                String::from_utf8_lossy(&b[..end]).into_owned()
            }
        };
        let info = TypeInfo {
            name,
            flags: f.u64(o.tp_flags as usize),
            basicsize: f.i64(o.tp_basicsize as usize),
            dictoffset: f.i64(o.tp_dictoffset as usize),
            cached_keys: o
                .ht_cached_keys
                .filter(|k| (*k as usize) + 8 <= raw.len())
                .map_or(0, |k| f.u64(k as usize)),
        };
        self.types.insert(tp, info.clone());
        Ok((tp, info))
    }

    /// The (key, value) pairs of the dict at `addr`, in table order.
    pub fn dict_items(&mut self, addr: u64) -> Result<Vec<(u64, u64)>> {
        let d = &self.layout.dict;
        let mut head = [0u8; 48];
        self.mem
            .read(addr, &mut head)
            .with_context(|| format!("could not read dict at {addr:#x}"))?;
        let f = Fields(&head);
        if let DictFormat::Table27 { mask, table } = d.format {
            return self.table27_items(f.u64(mask as usize), f.u64(table as usize));
        }
        let values = f.u64(d.ma_values as usize);
        let values = if values != 0 {
            values.wrapping_add(d.values_start)
        } else {
            0
        };
        self.keys_items(f.u64(d.ma_keys as usize), values)
    }

    /// 2.7: `mask + 1` entries (hash, key, value), empty ones with a null key or value.
    fn table27_items(&mut self, mask: u64, table: u64) -> Result<Vec<(u64, u64)>> {
        if mask >= MAX_DICT_ENTRIES || (mask + 1) & mask != 0 {
            bail!("dict table at {table:#x} looks corrupt");
        }
        let entry = self.layout.dict.entry_size as usize;
        let raw = self.mem.read_vec(table, (mask as usize + 1) * entry)?;
        Ok(raw
            .chunks_exact(entry)
            .map(|e| (Fields(e).u64(8), Fields(e).u64(16)))
            .filter(|&(k, v)| k != 0 && v != 0)
            .collect())
    }

    /// Items of a keys table, with values from `values` (the first value pointer) when the
    /// dict is split.
    fn keys_items(&mut self, keys: u64, values: u64) -> Result<Vec<(u64, u64)>> {
        let d = &self.layout.dict;
        let mut kh = [0u8; 48];
        self.mem
            .read(keys, &mut kh)
            .with_context(|| format!("could not read dict keys at {keys:#x}"))?;
        let f = Fields(&kh);
        let n = f.i64(d.dk_nentries as usize);
        if !(0..=MAX_DICT_ENTRIES as i64).contains(&n) {
            bail!("dict keys at {keys:#x} look corrupt");
        }
        let (index_bytes, unicode) = match d.format {
            DictFormat::Keys36 { dk_size } => {
                let size = f.u64(dk_size as usize);
                if size > MAX_DICT_ENTRIES * 2 || size & size.wrapping_sub(1) != 0 {
                    bail!("dict keys at {keys:#x} look corrupt");
                }
                let width = match size {
                    0..=0xff => 1,
                    0x100..=0xffff => 2,
                    0x1_0000..=0xffff_ffff => 4,
                    _ => 8,
                };
                (size * width, false)
            }
            _ => {
                let log2 = f.u8(d.dk_log2_index_bytes as usize);
                if log2 > 40 {
                    bail!("dict keys at {keys:#x} look corrupt");
                }
                (1u64 << log2, f.u8(d.dk_kind as usize) != 0)
            }
        };
        let entry = if unicode {
            d.unicode_entry_size
        } else {
            d.entry_size
        };
        let entries = keys.wrapping_add(d.dk_indices).wrapping_add(index_bytes);
        let raw = self.mem.read_vec(entries, (n as u64 * entry) as usize)?;
        let vals = if values != 0 {
            Some(self.mem.read_vec(values, n as usize * 8)?)
        } else {
            None
        };
        let mut out = Vec::new();
        for i in 0..n as usize {
            let e = Fields(&raw[i * entry as usize..(i + 1) * entry as usize]);
            let (key, value) = if unicode {
                (e.u64(0), e.u64(8))
            } else {
                (e.u64(8), e.u64(16))
            };
            let value = match &vals {
                Some(v) => Fields(v).u64(i * 8),
                None => value,
            };
            if key != 0 && value != 0 {
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Items of an object's instance `__dict__` (managed or at `tp_dictoffset`).
    pub fn instance_dict_items(&mut self, addr: u64) -> Result<Vec<(u64, u64)>> {
        let (_, t) = self.type_of(addr)?;
        let d = &self.layout.dict;
        let managed = t.flags & tpflags::MANAGED_DICT != 0;
        let no_dict = || anyhow::anyhow!("object at {addr:#x} has no instance dict");
        match d.managed {
            ManagedDict::Split311 {
                dict_back,
                values_back,
            } if managed => {
                let dict = self.mem.read_u64(addr.wrapping_sub(dict_back))?;
                if dict != 0 {
                    return self.dict_items(dict);
                }
                let values = self.mem.read_u64(addr.wrapping_sub(values_back))?;
                if values == 0 || t.cached_keys == 0 {
                    return Err(no_dict());
                }
                return self.keys_items(t.cached_keys, values.wrapping_add(d.values_start));
            }
            ManagedDict::Tagged312 { back } if managed => {
                let word = self.mem.read_u64(addr.wrapping_sub(back))?;
                if word & 1 == 0 {
                    if word == 0 {
                        return Err(no_dict());
                    }
                    return self.dict_items(word);
                }
                if t.cached_keys == 0 {
                    return Err(no_dict());
                }
                // The word is the values pointer less one (so its low bit is set).
                return self.keys_items(
                    t.cached_keys,
                    word.wrapping_add(1).wrapping_add(d.values_start),
                );
            }
            ManagedDict::Inline313 { dict_back } if managed => {
                let dict = self.mem.read_u64(addr.wrapping_sub(dict_back))?;
                if dict != 0 {
                    return self.dict_items(dict);
                }
                if t.flags & tpflags::INLINE_VALUES == 0 || t.cached_keys == 0 || t.basicsize <= 0 {
                    return Err(no_dict());
                }
                let values = addr.wrapping_add(t.basicsize as u64);
                return self.keys_items(t.cached_keys, values.wrapping_add(d.values_start));
            }
            _ => {}
        }
        if t.dictoffset <= 0 {
            bail!("objects of type {} have no instance dict", t.name);
        }
        let dict = self.mem.read_u64(addr.wrapping_add(t.dictoffset as u64))?;
        if dict == 0 {
            return Err(no_dict());
        }
        self.dict_items(dict)
    }

    /// Look up a str key in a dict's items.
    pub fn find_key(&mut self, items: &[(u64, u64)], key: &str) -> Option<u64> {
        items.iter().find_map(|(k, v)| {
            let s = strings::read_str(self.mem, self.layout, *k, key.len() + 1).ok()?;
            (s.text == key).then_some(*v)
        })
    }

    /// Value of an int object, if it fits in i128.
    pub fn int_value(&mut self, addr: u64) -> Result<i128> {
        if let Some(v) = self.small_int27(addr)? {
            return Ok(v as i128);
        }
        let (neg, digits) = self.int_digits(addr, 5)?;
        if digits.len() > 4 {
            bail!("int too large");
        }
        let mut v: i128 = 0;
        for d in digits.iter().rev() {
            v = (v << 30) | *d as i128;
        }
        Ok(if neg { -v } else { v })
    }

    /// 2.7's `int` (a C long), or `None` for other objects.
    fn small_int27(&mut self, addr: u64) -> Result<Option<i64>> {
        let Some((flag, value)) = self.layout.object.int27 else {
            return Ok(None);
        };
        let (_, t) = self.type_of(addr)?;
        if t.flags & flag == 0 {
            return Ok(None);
        }
        Ok(Some(self.mem.read_u64(addr.wrapping_add(value))? as i64))
    }

    fn int_digits(&mut self, addr: u64, max: usize) -> Result<(bool, Vec<u32>)> {
        let o = &self.layout.object;
        let word = self.mem.read_u64(addr.wrapping_add(o.ob_size))?;
        let (neg, n) = match o.ints {
            IntFormat::ObSize => {
                let size = word as i64;
                (size < 0, size.unsigned_abs() as usize)
            }
            IntFormat::LvTag => (word & 3 == 2, (word >> 3) as usize),
        };
        let take = n.min(max);
        let raw = self
            .mem
            .read_vec(addr.wrapping_add(o.long_digits), take * 4)?;
        let digits = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & ((1 << 30) - 1))
            .collect();
        Ok((neg, digits))
    }

    /// The text shown for a local variable, within `max_len` characters where possible.
    pub fn repr(&mut self, addr: u64, max_len: isize) -> Result<String> {
        if max_len <= 5 {
            return Ok("...".to_owned());
        }
        let (_, t) = self.type_of(addr)?;
        let flags = t.flags;
        let int27 = self
            .layout
            .object
            .int27
            .is_some_and(|(flag, _)| flags & flag != 0);
        // 2.7's `str` is text: shown like 3's `str` (2.7's `unicode` is shown by type and
        // address).
        let text27 = self.layout.unicode.format == StrFormat::Bytes27;
        let out = if int27 {
            let v = self.small_int27(addr)?.unwrap_or(0);
            if t.name == "bool" {
                (if v > 0 { "True" } else { "False" }).to_owned()
            } else {
                v.to_string()
            }
        } else if flags & tpflags::LONG_SUBCLASS != 0 {
            if t.name == "bool" {
                let v = self.int_value(addr)?;
                (if v > 0 { "True" } else { "False" }).to_owned()
            } else {
                let (neg, digits) = self.int_digits(addr, MAX_INT_DIGITS)?;
                let mut s = digits_to_decimal(&digits);
                if neg && s != "0" {
                    s.insert(0, '-');
                }
                // In full on its own; inside a container, cut to its budget like a string,
                // so that the container's other items still show.
                if self.showing.is_empty() || s.len() as isize <= max_len {
                    s
                } else {
                    let keep = (max_len - 3) as usize;
                    format!("{}...", &s[..keep])
                }
            }
        } else if (flags & tpflags::UNICODE_SUBCLASS != 0 && !text27)
            || (text27 && flags & tpflags::BYTES_SUBCLASS != 0)
        {
            // py-spy 0.4's form, which tests and README promise: always in double quotes,
            // a single quote written `\"` as py-spy writes it; control characters escaped.
            let keep = (max_len - 5) as usize;
            let s = strings::read_str(self.mem, self.layout, addr, keep + 1)?;
            let (text, whole) = escaped_within(s.text.chars(), keep, push_text_char);
            // `len` counts characters (bytes on 2.7): more than were read means a cut.
            if whole && s.len <= keep + 1 {
                format!("\"{text}\"")
            } else {
                format!("\"{text}...\"")
            }
        } else if flags & tpflags::BYTES_SUBCLASS != 0 {
            // Python's repr: in single quotes unless the value holds a single quote and no
            // double quote; the quote and backslash escaped, \t \n \r, other bytes outside
            // 0x20..0x7f as \xNN. Cut between escapes, `...` before the closing quote.
            let keep = (max_len - 6) as usize;
            let want = (keep + 1).max(QUOTE_SCAN);
            let (data, size) = strings::read_bytes(self.mem, self.layout, addr, want)
                .or_else(|_| strings::read_bytes(self.mem, self.layout, addr, keep + 1))?;
            let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
                '"'
            } else {
                '\''
            };
            let (text, whole) = escaped_within(data.iter().copied(), keep, |b, out| {
                push_byte(b, quote, out)
            });
            if whole && size == data.len() {
                format!("b{quote}{text}{quote}")
            } else {
                format!("b{quote}{text}...{quote}")
            }
        } else if flags
            & (tpflags::DICT_SUBCLASS | tpflags::LIST_SUBCLASS | tpflags::TUPLE_SUBCLASS)
            != 0
        {
            if self.showing.contains(&addr) {
                return Ok(if flags & tpflags::DICT_SUBCLASS != 0 {
                    "{...}"
                } else if flags & tpflags::LIST_SUBCLASS != 0 {
                    "[...]"
                } else {
                    "(...)"
                }
                .to_owned());
            }
            self.showing.push(addr);
            let shown = if flags & tpflags::DICT_SUBCLASS != 0 {
                self.dict_repr(addr, max_len)
            } else {
                self.sequence_repr(addr, flags, max_len)
            };
            self.showing.pop();
            shown?
        } else if t.name == "float" {
            let v = Fields(
                &self
                    .mem
                    .read_vec(addr.wrapping_add(self.layout.object.float_fval), 8)?,
            )
            .f64(0);
            float_repr(v)
        } else if t.name == "NoneType" {
            "None".to_owned()
        } else if let Some(kind) = t.name.strip_prefix("numpy.") {
            self.numpy_scalar(addr, kind)?
                .unwrap_or_else(|| format!("<{} at {addr:#x}>", t.name))
        } else {
            format!("<{} at {addr:#x}>", t.name)
        };
        Ok(out)
    }

    /// A dict's items, within `max_len` characters. A key or value that does not fit what is
    /// left is shown again cut to fit (the key first, if it leaves no room for a value), so a
    /// long string, bytes or int still shows as far as the budget allows; see
    /// [`Self::is_container`].
    fn dict_repr(&mut self, addr: u64, max_len: isize) -> Result<String> {
        let mut parts = Vec::new();
        let mut remaining = max_len - 2;
        for (k, v) in self.dict_items(addr)? {
            let mut key = self.repr(k, remaining)?;
            let mut value = self.repr(v, remaining)?;
            let fits = |key: &str, value: &str| {
                remaining - (key.len() + value.len()) as isize - 4 > ROOM_AFTER_ITEM
            };
            if !fits(&key, &value) {
                // Room for the key and value together: ": " and ", " take 4 more, and
                // more than ROOM_AFTER_ITEM must be left; a value takes at least 3 ("...").
                let room = remaining - ROOM_AFTER_ITEM - 5;
                if key.len() as isize > room - 3 && !self.is_container(k)? {
                    key = self.repr(k, room - 3)?;
                }
                if !self.is_container(v)? {
                    value = self.repr(v, room - key.len() as isize)?;
                }
                if key == "..." || !fits(&key, &value) {
                    parts.push("...".to_owned());
                    break;
                }
            }
            remaining -= (key.len() + value.len()) as isize + 4;
            parts.push(format!("{key}: {value}"));
        }
        Ok(format!("{{{}}}", parts.join(", ")))
    }

    /// A list's or tuple's items, within `max_len` characters. An item that does not fit what
    /// is left is shown again cut to fit, if it is not a container (see
    /// [`Self::is_container`]).
    fn sequence_repr(&mut self, addr: u64, flags: u64, max_len: isize) -> Result<String> {
        let o = &self.layout.object;
        let is_list = flags & tpflags::LIST_SUBCLASS != 0;
        let size = self.mem.read_u64(addr.wrapping_add(o.ob_size))? as i64;
        if !(0..=1 << 32).contains(&size) {
            bail!("implausible sequence size {size}");
        }
        let items_addr = if is_list {
            self.mem.read_u64(addr.wrapping_add(o.list_items))?
        } else {
            addr.wrapping_add(o.tuple_items)
        };
        // No more items can be shown than fit the budget at 3 characters each.
        let n = (size as usize).min((max_len as usize / 3) + 1);
        let items = self.mem.read_vec(items_addr, n * 8)?;
        let mut parts = Vec::new();
        let mut remaining = max_len - 2;
        for i in 0..n {
            let item = Fields(&items).u64(i * 8);
            let mut v = self.repr(item, remaining)?;
            let fits = |v: &str| remaining - v.len() as isize - 2 > ROOM_AFTER_ITEM;
            if !fits(&v) && !self.is_container(item)? {
                // Shown again cut to fit, with room for the ", ..." after it.
                v = self.repr(item, remaining - ROOM_AFTER_ITEM - 3)?;
            }
            // ("..." is what an item given no room at all shows.)
            if v == "..." || !fits(&v) {
                parts.push("...".to_owned());
                break;
            }
            remaining -= v.len() as isize + 2;
            parts.push(v);
        }
        Ok(if is_list {
            format!("[{}]", parts.join(", "))
        } else {
            format!("({})", parts.join(", "))
        })
    }

    /// Whether the object at `addr` is a dict, list or tuple. Those are not shown a second
    /// time cut shorter when they do not fit in a container: at every level of a nesting
    /// that would double the work, exponential in the depth.
    fn is_container(&mut self, addr: u64) -> Result<bool> {
        let (_, t) = self.type_of(addr)?;
        Ok(
            t.flags & (tpflags::DICT_SUBCLASS | tpflags::LIST_SUBCLASS | tpflags::TUPLE_SUBCLASS)
                != 0,
        )
    }

    /// numpy scalars keep their value right after the object header.
    fn numpy_scalar(&mut self, addr: u64, kind: &str) -> Result<Option<String>> {
        let at = addr
            .wrapping_add(self.layout.object.ob_type)
            .wrapping_add(8);
        let b = self.mem.read_vec(at, 8)?;
        let f = Fields(&b);
        Ok(Some(match kind {
            "bool" | "bool_" => (if f.u8(0) != 0 { "true" } else { "false" }).to_owned(),
            "uint8" => f.u8(0).to_string(),
            "uint16" => f.u16(0).to_string(),
            "uint32" => f.u32(0).to_string(),
            "uint64" => f.u64(0).to_string(),
            "int8" => (f.u8(0) as i8).to_string(),
            "int16" => (f.u16(0) as i16).to_string(),
            "int32" => f.i32(0).to_string(),
            "int64" => f.i64(0).to_string(),
            "float32" => f32::from_bits(f.u32(0)).to_string(),
            "float64" => f.f64(0).to_string(),
            _ => return Ok(None),
        }))
    }
}

/// A float as Python's `repr` writes it: the shortest digits that read back the same, in
/// fixed notation for exponents -4 to 15 (`3.0`, `0.0001`), else with a signed exponent of
/// at least two digits (`1e+16`, `1.5e-05`); `nan`, `inf`, `-inf`, `-0.0`.
pub fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_owned();
    }
    if v.is_infinite() {
        return (if v > 0.0 { "inf" } else { "-inf" }).to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-5", "3e0", "-0e0".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let text = if (-4..16).contains(&exp) {
        let point = exp + 1;
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}{rest}e{exp_sign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{text}")
}

/// The escaped forms of `items` (each written by `escape`) joined while they fit in `room`
/// characters, and whether all of them did: a value is cut between escapes, never inside one.
fn escaped_within<T>(
    items: impl IntoIterator<Item = T>,
    room: usize,
    escape: impl Fn(T, &mut String),
) -> (String, bool) {
    let (mut out, mut used, mut piece) = (String::new(), 0, String::new());
    for item in items {
        piece.clear();
        escape(item, &mut piece);
        let n = piece.chars().count();
        if used + n > room {
            return (out, false);
        }
        used += n;
        out.push_str(&piece);
    }
    (out, true)
}

/// One character of a `str` as shown (py-spy 0.4's form): a single quote as `\"`, control
/// characters escaped as Python's repr does (`\n`, `\t`, `\r`, `\x00`, `\x1b`, …), so a
/// local's value cannot move the cursor or clear the screen.
fn push_text_char(c: char, out: &mut String) {
    match c {
        '\'' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if c.is_control() && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push(c),
    }
}

/// One byte of a `bytes` value as Python's repr writes it inside `quote`.
fn push_byte(b: u8, quote: char, out: &mut String) {
    match b {
        b'\\' => out.push_str("\\\\"),
        b'\n' => out.push_str("\\n"),
        b'\r' => out.push_str("\\r"),
        b'\t' => out.push_str("\\t"),
        b if b as char == quote => {
            out.push('\\');
            out.push(quote);
        }
        0x20..=0x7e => out.push(b as char),
        _ => out.push_str(&format!("\\x{b:02x}")),
    }
}

/// Decimal text of a non-negative number given as base-2^30 digits, least significant first.
pub fn digits_to_decimal(digits: &[u32]) -> String {
    let mut n: Vec<u32> = digits.to_vec();
    while n.last() == Some(&0) {
        n.pop();
    }
    if n.is_empty() {
        return "0".to_owned();
    }
    // Repeatedly divide by 10^9, collecting remainders.
    let mut chunks = Vec::new();
    while !n.is_empty() {
        let mut rem: u64 = 0;
        for d in n.iter_mut().rev() {
            let cur = (rem << 30) | *d as u64;
            *d = (cur / 1_000_000_000) as u32;
            rem = cur % 1_000_000_000;
        }
        chunks.push(rem as u32);
        while n.last() == Some(&0) {
            n.pop();
        }
    }
    let mut s = chunks.pop().map(|c| c.to_string()).unwrap_or_default();
    for c in chunks.iter().rev() {
        s.push_str(&format!("{c:09}"));
    }
    s
}

#[cfg(test)]
mod float_tests {
    use super::float_repr;

    #[test]
    fn floats_read_as_python_writes_them() {
        for (v, text) in [
            (3.0, "3.0"),
            (2.5, "2.5"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e20, "1e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-1.25e-7, "-1.25e-07"),
            (1e300, "1e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(float_repr(v), text, "{v:e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_ints_in_decimal() {
        assert_eq!(digits_to_decimal(&[]), "0");
        assert_eq!(digits_to_decimal(&[5]), "5");
        // 2**70 = 1180591620717411303424: digits of 30 bits
        let v: u128 = 1 << 70;
        let digits = [
            (v & 0x3fffffff) as u32,
            ((v >> 30) & 0x3fffffff) as u32,
            (v >> 60) as u32,
        ];
        assert_eq!(digits_to_decimal(&digits), "1180591620717411303424");
        let v: u128 = 10u128.pow(27) + 7;
        let digits = [
            (v & 0x3fffffff) as u32,
            ((v >> 30) & 0x3fffffff) as u32,
            ((v >> 60) & 0x3fffffff) as u32,
            (v >> 90) as u32,
        ];
        assert_eq!(digits_to_decimal(&digits), "1000000000000000000000000007");
    }
}

#[cfg(test)]
mod escape_tests {
    use super::{escaped_within, push_byte, push_text_char};

    fn bytes(data: &[u8], quote: char, room: usize) -> (String, bool) {
        escaped_within(data.iter().copied(), room, |b, out| {
            push_byte(b, quote, out)
        })
    }

    #[test]
    fn bytes_escaped_as_python_does() {
        let all = b"'\"\\\t\n\r\x00\x1f~\x7f\x80\xff";
        assert_eq!(
            bytes(all, '\'', 100),
            (r#"\'"\\\t\n\r\x00\x1f~\x7f\x80\xff"#.to_owned(), true)
        );
        assert_eq!(
            bytes(all, '"', 100),
            (r#"'\"\\\t\n\r\x00\x1f~\x7f\x80\xff"#.to_owned(), true)
        );
    }

    #[test]
    fn cut_between_escapes() {
        // 3 escapes of 4 characters fit in 13, the fourth would not.
        assert_eq!(
            bytes(&[0; 5], '\'', 13),
            (r"\x00\x00\x00".to_owned(), false)
        );
        assert_eq!(bytes(&[0; 3], '\'', 12), (r"\x00\x00\x00".to_owned(), true));
        let text = escaped_within("a'\u{1b}b".chars(), 4, push_text_char);
        assert_eq!(text, ("a\\\"".to_owned(), false));
    }
}
