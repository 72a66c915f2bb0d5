//! Native stacks: unwinding a thread from its registers through the DWARF call-frame
//! information (`.eh_frame`) of the binaries the process maps, and naming each address.
//!
//! Unwinding is framehop's (the unwinder of Firefox's profiler tools, over gimli): it reads
//! the thread's stack through any [`Memory`] (a paused live process, or a core file), so one
//! code path serves both, with no ptrace call per word as libunwind's remote mode makes.
//! Binaries are parsed once, when first seen in the memory map ([`NativeUnwinder::refresh`]);
//! names come from their symbol tables (`.symtab`, then `.dynsym`, C++ demangled) and, for
//! code outside the interpreter, file and line from their DWARF (addr2line), cached per
//! address.

use anyhow::{Context, Result};
use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder};
use goblin::elf::sym::STT_FUNC;
use goblin::elf::Elf;
use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use super::elf::{load_bias, MappedFile};
use super::maps::MapRange;
use super::memory::{Fields, Memory};
use crate::model::fasthash::FastMap;

/// Most frames unwound per thread.
const MAX_NATIVE_DEPTH: usize = 512;
/// Bytes of stack read at a time while unwinding: one read holds most stacks (each read is a
/// system call; with 16 KiB, Debian's 3.11 cost 1.9x more per sample, with 4 KiB 5x).
const STACK_WINDOW: u64 = 64 << 10;
/// Most stack bytes read per thread (a deeper stack is cut).
const MAX_STACK_BYTES: usize = 2 << 20;

/// Where unwinding starts: a thread's instruction, stack and frame pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRegs {
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
}

/// A binary's bytes: a file mapped here, or a copy of the process's own memory (the vDSO).
type BinaryBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// A byte range of a binary, as framehop's section data.
#[derive(Clone)]
pub struct FileSlice(BinaryBytes, Range<usize>);

impl std::ops::Deref for FileSlice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &(*self.0).as_ref()[self.1.clone()]
    }
}

/// Where a binary's bytes come from.
pub enum BinarySource {
    /// A file, opened from here at this path.
    File(PathBuf),
    /// The bytes themselves (the vDSO, read from the process).
    Bytes(Vec<u8>),
}

/// What an address is: the function, where it comes from, and its source line when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeSymbol {
    /// The function's name (demangled), or the address in hex when no symbol covers it.
    pub name: Arc<str>,
    /// The binary, as the process names it.
    pub module: Arc<str>,
    /// The source file (DWARF), when the binary has line information.
    pub file: Option<Arc<str>>,
    /// 0 when unknown.
    pub line: i32,
    /// In the binary that holds the interpreter (whose frames are Python's machinery).
    pub in_interpreter: bool,
}

/// One binary mapped by the process.
struct Binary {
    path: Arc<str>,
    /// Where it is opened from here (for line information).
    host: Option<PathBuf>,
    avma: Range<u64>,
    /// Runtime address minus the file's virtual address.
    bias: u64,
    /// Functions by file address: (start, size, name), sorted.
    functions: Vec<(u64, u64, Arc<str>)>,
    interpreter: bool,
    /// Line information, loaded on first use (`None` inside: the file has none).
    lines: Option<Option<addr2line::Loader>>,
}

/// Unwinds and names native stacks of one process.
pub struct NativeUnwinder {
    unwinder: UnwinderX86_64<FileSlice>,
    cache: CacheX86_64,
    binaries: Vec<Binary>,
    /// Mapping starts already looked at.
    seen: std::collections::HashSet<(u64, String)>,
    symbols: FastMap<u64, Arc<NativeSymbol>>,
    /// The stack windows read for the thread being unwound: (address, bytes read), each in
    /// the buffer of `buffers` at its index.
    windows: Vec<(u64, usize)>,
    /// Window buffers, kept between unwinds (zeroed once: filling 64 KiB per thread per
    /// sample with zeros was a third of the profiler's instructions).
    buffers: Vec<Vec<u8>>,
}

impl Default for NativeUnwinder {
    fn default() -> Self {
        NativeUnwinder {
            unwinder: UnwinderX86_64::new(),
            cache: CacheX86_64::new(),
            binaries: Vec::new(),
            seen: Default::default(),
            symbols: FastMap::default(),
            windows: Vec::new(),
            buffers: Vec::new(),
        }
    }
}

impl NativeUnwinder {
    /// Learn the binaries of `maps` not seen yet: each executable file mapping (and the
    /// vDSO), read from where `open` says (`None`: it cannot be read from here, and its frames
    /// stay unnamed). `interpreter` says which binaries hold the interpreter. With
    /// `PYSPY_DEBUG_NATIVE` set, binaries that cannot be read are named on standard error.
    pub fn refresh(
        &mut self,
        maps: &[MapRange],
        open: &dyn Fn(&MapRange) -> Option<BinarySource>,
        interpreter: &dyn Fn(&str) -> bool,
    ) {
        for m in maps {
            if !m.executable || !(m.path.starts_with('/') || m.path == "[vdso]") {
                continue;
            }
            if !self.seen.insert((m.start, m.path.clone())) {
                continue;
            }
            if self.binaries.iter().any(|b| b.path.as_ref() == m.path) {
                continue;
            }
            let Some(source) = open(m) else {
                continue;
            };
            match self.load(m, &source, maps, interpreter(&m.path)) {
                Ok(b) => self.binaries.push(b),
                Err(e) if std::env::var_os("PYSPY_DEBUG_NATIVE").is_some() => {
                    eprintln!("native: {} not loaded: {e:#}", m.path)
                }
                Err(_) => {}
            }
        }
    }

    fn load(
        &mut self,
        exec: &MapRange,
        source: &BinarySource,
        maps: &[MapRange],
        interpreter: bool,
    ) -> Result<Binary> {
        let (file, host): (BinaryBytes, Option<PathBuf>) = match source {
            BinarySource::File(host) => (
                Arc::new(MappedFile::open(host).with_context(|| host.display().to_string())?),
                Some(host.clone()),
            ),
            BinarySource::Bytes(b) => (Arc::new(b.clone()), None),
        };
        let bytes: &[u8] = (*file).as_ref();
        let elf = Elf::parse(bytes).context("not an ELF file")?;
        // Runtime address of file address 0, as for the interpreter's symbols.
        let bias = load_bias(&elf, &exec.path, maps)?;
        // Where its code is: the span of its executable mappings.
        let (avma_start, avma_end) = maps
            .iter()
            .filter(|m| m.path == exec.path && m.executable)
            .fold((exec.start, exec.end), |(lo, hi), m| {
                (lo.min(m.start), hi.max(m.end))
            });
        let section = |name: &str| {
            elf.section_headers.iter().find_map(|sh| {
                (elf.shdr_strtab.get_at(sh.sh_name) == Some(name) && sh.sh_type != 8).then(|| {
                    let range = sh.sh_addr..sh.sh_addr + sh.sh_size;
                    let at = sh.sh_offset as usize;
                    let data = at
                        .checked_add(sh.sh_size as usize)
                        .filter(|end| *end <= bytes.len())
                        .map(|end| FileSlice(file.clone(), at..end));
                    (range, data)
                })
            })
        };
        let (text_svma, text) = section(".text").unzip();
        let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
        let (got_svma, _) = section(".got").unzip();
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            text: text.flatten(),
            got_svma,
            eh_frame_svma,
            eh_frame: eh_frame.flatten(),
            eh_frame_hdr_svma,
            eh_frame_hdr: eh_frame_hdr.flatten(),
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            debug_frame: None,
            text_segment_svma: None,
            text_segment: None,
        };
        self.unwinder.add_module(Module::new(
            exec.path.clone(),
            avma_start..avma_end,
            bias,
            info,
        ));
        let mut functions: Vec<(u64, u64, Arc<str>)> = Vec::new();
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        for (syms, strtab) in [(&elf.syms, &elf.strtab), (&elf.dynsyms, &elf.dynstrtab)] {
            for sym in syms.iter() {
                if sym.st_type() != STT_FUNC || sym.st_value == 0 {
                    continue;
                }
                let Some(raw) = strtab.get_at(sym.st_name) else {
                    continue;
                };
                let name = names
                    .entry(raw)
                    .or_insert_with(|| Arc::from(demangle(raw).as_str()))
                    .clone();
                functions.push((sym.st_value, sym.st_size, name));
            }
        }
        // By address; of symbols at one address, the sized one from .symtab first.
        functions.sort_by_key(|(start, size, _)| (*start, std::cmp::Reverse(*size)));
        functions.dedup_by_key(|(start, _, _)| *start);
        Ok(Binary {
            path: Arc::from(exec.path.as_str()),
            host,
            avma: avma_start..avma_end,
            bias,
            functions,
            interpreter,
            lines: None,
        })
    }

    /// The native frames of a thread stopped at `regs`, innermost first, each as (address,
    /// stack pointer): the instruction, then each return address, and the bottom of the
    /// frame's stack (it spans up to the next frame's). Reads the stack through `mem`.
    /// Returns whether the walk reached the thread's first frame (rather than stopping at a
    /// frame it could not unwind, or at the depth limit).
    pub fn unwind(&mut self, mem: &dyn Memory, regs: StartRegs, out: &mut Vec<(u64, u64)>) -> bool {
        out.clear();
        self.windows.clear();
        let mut read_bytes = 0usize;
        let windows = &mut self.windows;
        let buffers = &mut self.buffers;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            if addr % 8 != 0 {
                return Err(());
            }
            for (i, &(base, len)) in windows.iter().enumerate() {
                if addr >= base && addr + 8 <= base + len as u64 {
                    let at = (addr - base) as usize;
                    return Ok(Fields(&buffers[i][at..at + 8]).u64(0));
                }
            }
            if read_bytes >= MAX_STACK_BYTES {
                return Err(());
            }
            // A window from the word asked for; halved (down to its page's end) while it
            // reaches past the end of the stack.
            let i = windows.len();
            if buffers.len() <= i {
                buffers.push(vec![0u8; STACK_WINDOW as usize]);
            }
            let bytes = &mut buffers[i];
            let page_end = (4096 - (addr % 4096)) as usize;
            let mut len = (STACK_WINDOW - (addr % 4096)) as usize;
            while mem.read(addr, &mut bytes[..len]).is_err() {
                if len <= page_end {
                    return Err(());
                }
                len = (len / 2).max(page_end);
            }
            read_bytes += len;
            windows.push((addr, len));
            Ok(Fields(&bytes[..8]).u64(0))
        };
        let mut state = UnwindRegsX86_64::new(regs.ip, regs.sp, regs.bp);
        let mut frame = FrameAddress::InstructionPointer(regs.ip);
        while out.len() < MAX_NATIVE_DEPTH {
            out.push((frame.address(), state.sp()));
            let next =
                self.unwinder
                    .unwind_frame(frame, &mut state, &mut self.cache, &mut read_stack);
            match next {
                Ok(Some(ra)) => match FrameAddress::from_return_address(ra) {
                    Some(f) => frame = f,
                    None => return true,
                },
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
        false
    }

    /// What `addr` is (cached per address).
    pub fn symbol(&mut self, addr: u64) -> Arc<NativeSymbol> {
        if let Some(s) = self.symbols.get(&addr) {
            return s.clone();
        }
        let found = self.lookup(addr);
        let s = Arc::new(found);
        self.symbols.insert(addr, s.clone());
        s
    }

    fn lookup(&mut self, addr: u64) -> NativeSymbol {
        let hex = || Arc::from(format!("0x{addr:x}").as_str());
        let Some(b) = self.binaries.iter_mut().find(|b| b.avma.contains(&addr)) else {
            return NativeSymbol {
                name: hex(),
                module: Arc::from("?"),
                file: None,
                line: 0,
                in_interpreter: false,
            };
        };
        let svma = addr.wrapping_sub(b.bias);
        let i = b.functions.partition_point(|(start, _, _)| *start <= svma);
        let name = i
            .checked_sub(1)
            .map(|i| &b.functions[i])
            .filter(|(start, size, _)| svma < start + size)
            .map(|(_, _, n)| n.clone());
        // Source lines for code outside the interpreter, as py-spy shows them.
        let (mut file, mut line) = (None, 0);
        if let (false, Some(_), Some(host)) = (b.interpreter, &name, b.host.clone()) {
            let loader = b
                .lines
                .get_or_insert_with(|| addr2line::Loader::new(&host).ok());
            if let Some(Ok(Some(loc))) = loader.as_ref().map(|l| l.find_location(svma)) {
                file = loc.file.map(Arc::from);
                line = loc.line.unwrap_or(0) as i32;
            }
        }
        NativeSymbol {
            name: name.unwrap_or_else(hex),
            module: b.path.clone(),
            file,
            line,
            in_interpreter: b.interpreter,
        }
    }
}

/// A C++ name demangled without its parameters (as py-spy shows it); others as they are.
fn demangle(raw: &str) -> String {
    if raw.starts_with("_Z") {
        if let Ok(sym) = cpp_demangle::Symbol::new(raw) {
            let opts = cpp_demangle::DemangleOptions::new()
                .no_params()
                .no_return_type();
            if let Ok(s) = sym.demangle_with_options(&opts) {
                return s;
            }
        }
    }
    raw.to_string()
}

/// The registers of thread `tid`, which must be stopped under our ptrace (a paused process).
pub fn thread_registers(tid: u64) -> Result<StartRegs, i32> {
    let mut regs = std::mem::MaybeUninit::<libc::user_regs_struct>::zeroed();
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct into the buffer we own.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            tid as libc::pid_t,
            std::ptr::null_mut::<libc::c_void>(),
            regs.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: zero-initialised, then filled by the kernel.
    let regs = unsafe { regs.assume_init() };
    Ok(StartRegs {
        ip: regs.rip,
        sp: regs.rsp,
        bp: regs.rbp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_demangled_without_parameters() {
        assert_eq!(demangle("_ZN3foo3barEi"), "foo::bar");
        assert_eq!(demangle("spyext_hot_loop"), "spyext_hot_loop");
        assert_eq!(demangle("_Znot-a-name"), "_Znot-a-name");
    }
}
