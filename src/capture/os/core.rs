//! Core files (ELF `ET_CORE`, as the kernel or gdb's `gcore` write them): the memory, threads
//! and mapped files of a process that is no longer there.
//!
//! [`CoreFile`] is another [`Memory`]: an address is served by the core's `PT_LOAD` segment
//! that holds it, and where the core left the bytes out (read-only file mappings such as a
//! binary's code and constants are usually not dumped) by the mapped file itself, found from
//! the path the core records for it (`NT_FILE`) through a [`FileFinder`]. The notes give the
//! threads with their registers (`NT_PRSTATUS`), the process (`NT_PRPSINFO`) and its
//! auxiliary vector (`NT_AUXV`), from which the command line is read back off the stack.

use anyhow::{bail, Context, Result};
use goblin::elf::header::ET_CORE;
use goblin::elf::program_header::{PF_W, PF_X, PT_LOAD};
use goblin::elf::Elf;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::elf::MappedFile;
use super::maps::{self, MapRange};
use super::memory::{Fields, Memory, ReadError};

const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
/// "FILE" notes: the mapped files.
const NT_FILE: u32 = 0x4649_4c45;
const AT_EXECFN: u64 = 31;
const AT_ENTRY: u64 = 9;

/// Offsets in x86-64's `struct elf_prstatus`: the thread id, and the registers
/// (`struct user_regs_struct`, 27 words) that follow the times.
const PRSTATUS_PID: usize = 32;
const PRSTATUS_REGS: usize = 112;
const USER_REGS_WORDS: usize = 27;
/// `struct elf_prpsinfo`: pid, the executable's name (16 bytes) and the start of the
/// command line (80 bytes).
const PRPSINFO_PID: usize = 24;
const PRPSINFO_FNAME: usize = 40;
const PRPSINFO_PSARGS: usize = 56;

/// A thread's registers as the kernel saved them (x86-64 `user_regs_struct` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registers(pub [u64; USER_REGS_WORDS]);

impl Registers {
    pub fn rbp(&self) -> u64 {
        self.0[4]
    }
    /// The system call the thread was in (restartable), or -1 when it was running user code.
    pub fn orig_rax(&self) -> u64 {
        self.0[15]
    }
    pub fn rip(&self) -> u64 {
        self.0[16]
    }
    pub fn rsp(&self) -> u64 {
        self.0[19]
    }
    /// Waiting in a system call rather than running its own code when it was stopped.
    pub fn in_syscall(&self) -> bool {
        self.orig_rax() as i64 >= 0
    }
}

/// One thread of the dumped process.
#[derive(Debug, Clone)]
pub struct CoreThread {
    pub tid: u64,
    pub registers: Registers,
}

/// Where the files a core names are opened from: the recorded path under each of `roots`
/// (a container's or chroot's root, or a copy of the machine's), then a file of the same name
/// directly in each root, then the recorded path itself.
#[derive(Debug, Clone, Default)]
pub struct FileFinder {
    pub roots: Vec<PathBuf>,
}

impl FileFinder {
    pub fn find(&self, recorded: &str) -> Option<PathBuf> {
        let relative = recorded.trim_start_matches('/');
        let mut candidates = Vec::new();
        for root in &self.roots {
            candidates.push(root.join(relative));
            candidates.push(root.join(maps::file_name(recorded)));
        }
        candidates.push(PathBuf::from(recorded));
        candidates.into_iter().find(|p| p.is_file())
    }
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
}

/// A core file, open and indexed.
pub struct CoreFile {
    path: PathBuf,
    data: MappedFile,
    /// `PT_LOAD` segments by address.
    segments: Vec<Segment>,
    pub threads: Vec<CoreThread>,
    /// The memory map: mapped files (from `NT_FILE`) and the other segments (anonymous).
    pub maps: Vec<MapRange>,
    pub pid: i32,
    /// The executable's file name as the kernel keeps it (15 characters at most).
    pub fname: String,
    /// The start of the command line (80 characters at most).
    pub psargs: String,
    pub auxv: Vec<(u64, u64)>,
    finder: FileFinder,
    /// Mapped files opened for bytes the core left out, by recorded path.
    backing: RefCell<HashMap<String, Option<std::rc::Rc<MappedFile>>>>,
}

impl CoreFile {
    pub fn open(path: &Path, finder: FileFinder) -> Result<CoreFile> {
        let data = MappedFile::open(path)
            .with_context(|| format!("could not read core file {}", path.display()))?;
        let claims_core =
            data.starts_with(b"\x7fELF") && data.get(16..18) == Some(&ET_CORE.to_le_bytes()[..]);
        let elf = Elf::parse(&data).map_err(|e| {
            if claims_core {
                anyhow::anyhow!(
                    "core file {} is truncated or damaged ({e}): was it copied whole?",
                    path.display()
                )
            } else {
                anyhow::anyhow!("{} is not an ELF file ({e})", path.display())
            }
        })?;
        if elf.header.e_type != ET_CORE {
            bail!(
                "{} is an ELF file but not a core dump (a program or a library?)",
                path.display()
            );
        }
        if elf.header.e_machine != goblin::elf::header::EM_X86_64 || !elf.is_64 {
            bail!(
                "{} is the core of a {} process: only x86-64 cores are read",
                path.display(),
                goblin::elf::header::machine_to_str(elf.header.e_machine)
            );
        }
        let len = data.len() as u64;
        let mut segments = Vec::new();
        let mut flags = Vec::new();
        let mut truncated = false;
        for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
            let end = ph.p_offset.checked_add(ph.p_filesz);
            let filesz = match end {
                Some(end) if end <= len => ph.p_filesz,
                _ => {
                    truncated = true;
                    len.saturating_sub(ph.p_offset).min(ph.p_filesz)
                }
            };
            segments.push(Segment {
                vaddr: ph.p_vaddr,
                memsz: ph.p_memsz,
                offset: ph.p_offset,
                filesz,
            });
            flags.push((
                ph.p_vaddr,
                ph.p_vaddr.saturating_add(ph.p_memsz),
                ph.p_flags,
            ));
        }
        if truncated {
            bail!(
                "core file {} is truncated: its segments need more bytes than the file's {} \
                 (was it copied whole, or written to a full disk?)",
                path.display(),
                len
            );
        }
        segments.sort_by_key(|s| s.vaddr);

        let mut threads = Vec::new();
        let (mut pid, mut fname, mut psargs, mut auxv) =
            (0, String::new(), String::new(), Vec::new());
        let mut files = Vec::new();
        if let Some(notes) = elf.iter_note_headers(&data) {
            for note in notes {
                let Ok(note) = note else {
                    bail!("core file {} has a damaged note", path.display());
                };
                let d = note.desc;
                match note.n_type {
                    NT_PRSTATUS if d.len() >= PRSTATUS_REGS + 8 * USER_REGS_WORDS => {
                        let f = Fields(d);
                        let mut regs = [0u64; USER_REGS_WORDS];
                        for (i, r) in regs.iter_mut().enumerate() {
                            *r = f.u64(PRSTATUS_REGS + 8 * i);
                        }
                        threads.push(CoreThread {
                            tid: f.i32(PRSTATUS_PID) as u64,
                            registers: Registers(regs),
                        });
                    }
                    NT_PRPSINFO if d.len() >= PRPSINFO_PSARGS + 80 => {
                        pid = Fields(d).i32(PRPSINFO_PID);
                        fname = c_string(&d[PRPSINFO_FNAME..PRPSINFO_FNAME + 16]);
                        psargs = c_string(&d[PRPSINFO_PSARGS..PRPSINFO_PSARGS + 80]);
                    }
                    NT_AUXV => {
                        auxv = d
                            .chunks_exact(16)
                            .map(|c| (Fields(c).u64(0), Fields(c).u64(8)))
                            .take_while(|&(k, _)| k != 0)
                            .collect();
                    }
                    NT_FILE if note.name == "CORE" => files = parse_file_note(d),
                    _ => {}
                }
            }
        }
        if threads.is_empty() {
            bail!(
                "core file {} records no threads (no NT_PRSTATUS notes)",
                path.display()
            );
        }
        drop(elf);
        Ok(CoreFile {
            path: path.to_path_buf(),
            data,
            segments,
            threads,
            maps: memory_map(&files, &flags),
            pid,
            fname,
            psargs,
            auxv,
            finder,
            backing: RefCell::new(HashMap::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The executable as the process named it: the file mapped where the program's entry
    /// point is, or the name the kernel kept.
    pub fn executable(&self) -> String {
        let entry = self.aux(AT_ENTRY);
        entry
            .and_then(|e| {
                self.maps
                    .iter()
                    .find(|m| m.start <= e && e < m.end && m.path.starts_with('/'))
            })
            .map(|m| m.path.clone())
            .unwrap_or_else(|| self.fname.clone())
    }

    fn aux(&self, key: u64) -> Option<u64> {
        self.auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// The whole command line, read back from the initial stack (`argv`, located from the
    /// auxiliary vector that follows it); the kernel's 80-character copy when the stack does
    /// not give it.
    pub fn command_line(&self) -> String {
        self.argv()
            .filter(|a| !a.is_empty())
            .map(|a| a.join(" "))
            .unwrap_or_else(|| self.psargs.trim_end().to_string())
    }

    fn argv(&self) -> Option<Vec<String>> {
        // The stack segment holds the file name AT_EXECFN points at; the auxiliary vector
        // sits in it just above the environment and argument pointers.
        let execfn = self.aux(AT_EXECFN)?;
        let seg = self.segment_of(execfn)?;
        let bytes = self
            .data
            .get(seg.offset as usize..(seg.offset + seg.filesz) as usize)?;
        let mut needle = Vec::new();
        for (k, v) in self.auxv.iter().take(4) {
            needle.extend_from_slice(&k.to_le_bytes());
            needle.extend_from_slice(&v.to_le_bytes());
        }
        let at = (0..bytes.len().saturating_sub(needle.len()))
            .step_by(8)
            .find(|&i| bytes[i..].starts_with(&needle))?;
        let word = |i: usize| Some(Fields(bytes.get(i..i + 8)?).u64(0));
        // Back over the environment's pointers to the NULL that ends argv's.
        let mut i = at.checked_sub(16)?; // the NULL that ends envp, then its last pointer
        while word(i)? != 0 {
            i = i.checked_sub(8)?;
        }
        // Back over argv's pointers to argc, which counts them.
        let mut n = 0u64;
        loop {
            i = i.checked_sub(8)?;
            let w = word(i)?;
            if w == n {
                break;
            }
            n += 1;
            if n > 4096 {
                return None;
            }
        }
        (0..n as usize)
            .map(|k| {
                let ptr = word(i + 8 + 8 * k)?;
                self.c_string_at(ptr, 128 << 10)
            })
            .collect()
    }

    fn c_string_at(&self, addr: u64, max: usize) -> Option<String> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while out.len() < max {
            let a = addr.checked_add(out.len() as u64)?;
            // Stay within the page: the next one may not be there.
            let n = (4096 - (a % 4096) as usize).min(chunk.len());
            self.read(a, &mut chunk[..n]).ok()?;
            match chunk[..n].iter().position(|&b| b == 0) {
                Some(end) => {
                    out.extend_from_slice(&chunk[..end]);
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                None => out.extend_from_slice(&chunk[..n]),
            }
        }
        None
    }

    fn segment_of(&self, addr: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.vaddr <= addr);
        let s = self.segments.get(i.checked_sub(1)?)?;
        (addr - s.vaddr < s.memsz).then_some(s)
    }

    /// Where the file `recorded` (a path the core names) can be opened from here.
    pub fn find_file(&self, recorded: &str) -> Option<PathBuf> {
        self.finder.find(recorded)
    }

    /// Bytes at `addr` that the core left out, from the file mapped there: how many of
    /// `buf`'s were read (up to the end of that mapping), or `None`.
    fn read_backing(&self, addr: u64, buf: &mut [u8]) -> Option<usize> {
        let m = self
            .maps
            .iter()
            .find(|m| m.start <= addr && addr < m.end && m.path.starts_with('/'))?;
        let n = (buf.len() as u64).min(m.end - addr) as usize;
        let file = {
            let mut cache = self.backing.borrow_mut();
            cache
                .entry(m.path.clone())
                .or_insert_with(|| {
                    let host = self.finder.find(&m.path)?;
                    MappedFile::open(&host).ok().map(std::rc::Rc::new)
                })
                .clone()?
        };
        let at = usize::try_from(m.offset + (addr - m.start)).ok()?;
        buf[..n].copy_from_slice(file.get(at..at.checked_add(n)?)?);
        Some(n)
    }
}

impl Memory for CoreFile {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let len = buf.len();
        let fail = || ReadError {
            addr,
            len,
            errno: 0,
        };
        let mut done = 0;
        while done < len {
            let a = addr.checked_add(done as u64).ok_or_else(fail)?;
            let left = len - done;
            let n = match self.segment_of(a).copied() {
                Some(s) => {
                    let into = a - s.vaddr;
                    let n = ((s.memsz - into) as usize).min(left);
                    if into + n as u64 <= s.filesz {
                        let at = (s.offset + into) as usize;
                        let src = self.data.get(at..at + n).ok_or_else(fail)?;
                        buf[done..done + n].copy_from_slice(src);
                        n
                    } else {
                        self.read_backing(a, &mut buf[done..done + n])
                            .ok_or_else(fail)?
                    }
                }
                None => {
                    // Not in the core (gdb leaves unmodified file mappings out): up to the
                    // next segment, from the file.
                    let next = self.segments.partition_point(|s| s.vaddr <= a);
                    let room = self
                        .segments
                        .get(next)
                        .map_or(left, |s| (s.vaddr - a).min(left as u64) as usize);
                    self.read_backing(a, &mut buf[done..done + room])
                        .ok_or_else(fail)?
                }
            };
            done += n;
        }
        Ok(())
    }
}

/// `NT_FILE`: count, page size, then (start, end, offset in pages) per file, then the paths.
fn parse_file_note(d: &[u8]) -> Vec<MapRange> {
    let f = Fields(d);
    if d.len() < 16 {
        return Vec::new();
    }
    let count = f.u64(0) as usize;
    let page = f.u64(8);
    let Some(names_at) = count.checked_mul(24).and_then(|n| n.checked_add(16)) else {
        return Vec::new();
    };
    if names_at > d.len() {
        return Vec::new();
    }
    let mut names = d[names_at..].split(|&b| b == 0);
    (0..count)
        .map_while(|i| {
            let at = 16 + 24 * i;
            let name = names.next()?;
            Some(MapRange {
                start: f.u64(at),
                end: f.u64(at + 8),
                readable: true,
                writable: false,
                executable: false,
                offset: f.u64(at + 16).wrapping_mul(page),
                inode: 0,
                path: String::from_utf8_lossy(name).into_owned(),
            })
        })
        .collect()
}

/// The mapped files with their permissions from the segments, then the anonymous segments.
fn memory_map(files: &[MapRange], flags: &[(u64, u64, u32)]) -> Vec<MapRange> {
    let mut out: Vec<MapRange> = files
        .iter()
        .map(|f| {
            let mut m = f.clone();
            if let Some(&(_, _, fl)) = flags.iter().find(|(s, e, _)| *s <= f.start && f.start < *e)
            {
                m.writable = fl & PF_W != 0;
                m.executable = fl & PF_X != 0;
            }
            m
        })
        .collect();
    for &(start, end, fl) in flags {
        if !files.iter().any(|f| f.start < end && start < f.end) {
            out.push(MapRange {
                start,
                end,
                readable: true,
                writable: fl & PF_W != 0,
                executable: fl & PF_X != 0,
                offset: 0,
                inode: 0,
                path: String::new(),
            });
        }
    }
    out.sort_by_key(|m| m.start);
    out
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_note_parses_and_damage_is_bounded() {
        let mut d = Vec::new();
        for w in [2u64, 4096, 0x1000, 0x3000, 0, 0x5000, 0x6000, 2] {
            d.extend_from_slice(&w.to_le_bytes());
        }
        d.extend_from_slice(b"/usr/bin/python3\0/lib/libc.so.6\0");
        let m = parse_file_note(&d);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].offset, 0x2000);
        assert_eq!(m[1].path, "/lib/libc.so.6");
        // A count that claims more than the note holds gives nothing rather than garbage.
        d[0..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse_file_note(&d).is_empty());
        assert!(parse_file_note(&d[..10]).is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_core_is_refused() {
        let exe = std::env::current_exe().unwrap();
        let err = CoreFile::open(&exe, FileFinder::default()).err().unwrap();
        assert!(format!("{err:#}").contains("not a core dump"), "{err:#}");
        let err = CoreFile::open(Path::new("/etc/hostname"), FileFinder::default())
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("is not an ELF file"), "{err:#}");
    }
}
