//! Thread names, from the `threading` module's `_active` dict: {ident: Thread}, and each
//! Thread's `_name`.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;

use super::layout::Layout;
use super::objects::ObjectReader;
use super::strings;

/// Most entries of `threading._active` read per thread of the interpreter (plus
/// [`ACTIVE_SLACK`]): it holds one per thread that `threading` knows (dummy threads
/// included); a program that replaced it with something far bigger gets no names rather
/// than a snapshot that reads every entry.
const ACTIVE_PER_THREAD: usize = 4;
const ACTIVE_SLACK: usize = 64;

/// Python thread id → name, for every thread `threading` knows of, in an interpreter with
/// `threads` thread states. Empty when the program never imported `threading`.
pub fn thread_names(
    reader: &mut ObjectReader,
    interp: u64,
    threads: usize,
) -> Result<HashMap<u64, String>> {
    let layout: &Layout = reader.layout;
    let modules = reader
        .mem
        .read_u64(interp + layout.interp.modules)
        .context("could not read sys.modules")?;
    let mut out = HashMap::new();
    let items = reader.dict_items(modules)?;
    let Some(threading) = reader.find_key(&items, "threading") else {
        return Ok(out);
    };
    let md_dict = reader
        .mem
        .read_u64(threading.wrapping_add(layout.object.module_dict))
        .context("could not read the threading module's dict")?;
    let globals = reader.dict_items(md_dict)?;
    let Some(active) = reader.find_key(&globals, "_active") else {
        return Ok(out);
    };
    let active = reader.dict_items(active)?;
    let most = threads.saturating_mul(ACTIVE_PER_THREAD) + ACTIVE_SLACK;
    if active.len() > most {
        bail!(
            "threading._active holds {} entries for {threads} threads: not read",
            active.len()
        );
    }
    for (ident, thread) in active {
        let Ok(ident) = reader.int_value(ident) else {
            continue;
        };
        let Ok(attrs) = reader.instance_dict_items(thread) else {
            continue;
        };
        // 2.7 keeps the name in a private attribute, mangled as `_Thread__name`.
        let name = reader
            .find_key(&attrs, "_name")
            .or_else(|| reader.find_key(&attrs, "_Thread__name"));
        if let Some(name) = name {
            if let Ok(name) = strings::read_name(reader.mem, layout, name) {
                out.insert(ident as u64, name);
            }
        }
    }
    Ok(out)
}
