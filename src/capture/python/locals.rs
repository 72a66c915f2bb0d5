//! A frame's local variables: names from its code object's `co_varnames`, values from the
//! frame's `localsplus`, each shown through the object reader (`dump --locals`).

use anyhow::{Context, Result};

use super::code::CodeInfo;
use super::layout::Layout;
use super::objects::ObjectReader;
use super::strings;
use super::walker::RawFrame;
use crate::capture::os::memory::{Fields, Memory};
use crate::model::trace::LocalVariable;

/// Most locals read from one frame: a damaged code object's count must not make us read
/// (and show) millions.
const MAX_LOCALS: usize = 4096;

/// The locals of `frame` (whose code is `code`), each value shown in at most `max_len`
/// characters; unset locals are left out, unreadable names and values shown as `?`.
pub fn read_locals(
    mem: &dyn Memory,
    layout: &Layout,
    frame: &RawFrame,
    code: &CodeInfo,
    max_len: isize,
) -> Result<Vec<LocalVariable>> {
    let n = (code.nlocals as usize).min(MAX_LOCALS);
    let names = mem
        .read_vec(code.varnames.wrapping_add(layout.object.tuple_items), n * 8)
        .context("could not read local variable names")?;
    let values = mem
        .read_vec(frame.addr.wrapping_add(layout.frame.localsplus), n * 8)
        .context("could not read local variable values")?;
    let mut reader = ObjectReader::new(mem, layout);
    let mut out = Vec::new();
    // 3.14+ locals are tagged stack references: mask the tags; 1 is NULL.
    let tag_bits = layout.frame.code_tag_bits;
    for i in 0..n {
        let word = Fields(&values).u64(i * 8);
        if tag_bits > 0 && (word == 1 || word & 3 == 3) {
            continue;
        }
        let addr = word & !((1u64 << tag_bits) - 1);
        if addr == 0 {
            continue;
        }
        let name = strings::read_name(mem, layout, Fields(&names).u64(i * 8))
            .unwrap_or_else(|_| "?".to_owned());
        let repr = reader.repr(addr, max_len).ok();
        out.push(LocalVariable {
            name,
            addr: addr as usize,
            arg: i < code.argcount as usize,
            repr: Some(repr.unwrap_or_else(|| "?".to_owned())),
        });
    }
    Ok(out)
}
