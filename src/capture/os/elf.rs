//! ELF files of the interpreter: symbols, sections and where they were loaded in the target.

use anyhow::{bail, Context, Result};
use goblin::elf::{program_header::PT_LOAD, Elf};
use std::collections::HashMap;
use std::path::Path;

use super::maps::MapRange;

/// Called with a binary's symbols (those wanted) and its `.rodata` bytes while the file is open.
pub type RodataInspector<'a> = &'a mut dyn FnMut(&HashMap<String, u64>, &[u8]);

/// The symbols and layout we need from one ELF file (python executable or libpython),
/// with addresses already moved to where the target loaded it.
#[derive(Debug, Clone, Default)]
pub struct LoadedBinary {
    /// Runtime address of each interesting symbol (from .symtab or .dynsym).
    pub symbols: HashMap<String, u64>,
    /// Runtime ranges of .data and .bss, for scanning when symbols are missing.
    pub data_ranges: Vec<(u64, u64)>,
}

impl LoadedBinary {
    /// Parse `file` (opened from `host_path`) that is mapped in the target at `maps`, keeping
    /// the symbols named in `wanted`. `on_rodata` sees the file's `.rodata` bytes (and the
    /// symbols found) while the file is open, for callers that look for a string there.
    pub fn load(
        target_path: &str,
        host_path: &Path,
        maps: &[MapRange],
        wanted: &[&str],
        on_rodata: RodataInspector,
    ) -> Result<LoadedBinary> {
        let file = MappedFile::open(host_path)
            .with_context(|| format!("could not read {}", host_path.display()))?;
        let bytes: &[u8] = &file;
        let elf = Elf::parse(bytes)
            .with_context(|| format!("{} is not an ELF file we can read", host_path.display()))?;

        let bias = load_bias(&elf, target_path, maps)
            .with_context(|| format!("could not find where {target_path} is loaded"))?;

        let mut symbols = HashMap::new();
        for (syms, strtab) in [(&elf.syms, &elf.strtab), (&elf.dynsyms, &elf.dynstrtab)] {
            for sym in syms.iter() {
                if sym.st_value == 0 {
                    continue;
                }
                if let Some(name) = strtab.get_at(sym.st_name) {
                    if wanted.contains(&name) {
                        symbols
                            .entry(name.to_string())
                            .or_insert(sym.st_value.wrapping_add(bias));
                    }
                }
            }
        }

        let mut data_ranges = Vec::new();
        for sh in &elf.section_headers {
            let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
            let range = (
                sh.sh_addr.wrapping_add(bias),
                sh.sh_addr.wrapping_add(bias).wrapping_add(sh.sh_size),
            );
            match name {
                ".data" | ".bss" | "PyRuntime" => data_ranges.push(range),
                ".rodata" => {
                    let start = sh.sh_offset as usize;
                    if let Some(rodata) = start
                        .checked_add(sh.sh_size as usize)
                        .and_then(|end| bytes.get(start..end))
                    {
                        on_rodata(&symbols, rodata);
                    }
                }
                _ => {}
            }
        }

        Ok(LoadedBinary {
            symbols,
            data_ranges,
        })
    }

    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }
}

/// Runtime address minus file virtual address, from the lowest PT_LOAD segment and the
/// target's mapping of the file at offset 0.
pub(crate) fn load_bias(elf: &Elf, target_path: &str, maps: &[MapRange]) -> Result<u64> {
    let first_load = elf
        .program_headers
        .iter()
        .filter(|ph| ph.p_type == PT_LOAD)
        .min_by_key(|ph| ph.p_vaddr)
        .context("no loadable segment")?;
    let page_vaddr = first_load.p_vaddr & !0xfff;
    let page_offset = first_load.p_offset & !0xfff;
    let Some(map) = maps
        .iter()
        .filter(|m| m.path == target_path && m.offset == page_offset)
        .min_by_key(|m| m.start)
    else {
        bail!("{target_path} has no mapping at file offset {page_offset:#x}");
    };
    Ok(map.start.wrapping_sub(page_vaddr))
}

/// A file mapped read-only into our memory: parsing a 20 MiB libpython touches only the
/// pages of its headers and symbol tables, instead of copying the whole file.
pub(crate) struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

impl MappedFile {
    pub(crate) fn open(path: &Path) -> std::io::Result<MappedFile> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "empty file",
            ));
        }
        // SAFETY: a private read-only mapping of a file we opened; the fd may close after.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedFile { ptr, len })
    }
}

// SAFETY: a read-only private mapping, never written or remapped until dropped: reading it
// from several threads is reading immutable memory.
unsafe impl Send for MappedFile {}
unsafe impl Sync for MappedFile {}

impl std::ops::Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until drop. A file truncated under us could
        // fault on access; interpreter binaries are not rewritten in place while loaded.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}
