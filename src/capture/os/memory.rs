//! Reading another process's memory.
//!
//! Everything the capture layer knows about a target comes through the [`Memory`] trait:
//! a live process (`process_vm_readv`), and later core files, recorded snapshots and fuzz
//! inputs. Reads land in local buffers and are decoded there, so garbage in the target can
//! only ever produce an error, never undefined behaviour here.

use std::fmt;
use std::mem::MaybeUninit;

/// A failed read of target memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub addr: u64,
    pub len: usize,
    /// errno from the kernel, or 0 for a short read / address outside the image.
    pub errno: i32,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            0 => write!(f, "short read of {} bytes at {:#x}", self.len, self.addr),
            libc::ESRCH => write!(f, "the process has exited (read at {:#x})", self.addr),
            libc::EPERM => write!(
                f,
                "permission denied reading {:#x} (needs root or CAP_SYS_PTRACE)",
                self.addr
            ),
            e => write!(
                f,
                "failed to read {} bytes at {:#x}: {}",
                self.len,
                self.addr,
                std::io::Error::from_raw_os_error(e)
            ),
        }
    }
}

impl std::error::Error for ReadError {}

/// Upper bound on any single read the walkers make: a corrupt length field in the target must
/// not make us allocate gigabytes.
pub const MAX_READ: usize = 16 << 20;

/// Something whose memory can be read: a live process, a core file, a test image.
pub trait Memory {
    /// Fill `buf` from `addr`; all of it or an error.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError>;

    /// Fill several ranges of one buffer at once: `ranges` holds (target address, offset in
    /// `buf`, length); `ok` (as long as `ranges`) is set per range to whether it was read in
    /// full, allocating nothing: the walkers' batches use it. Implementations that can batch
    /// (process_vm_readv takes many remote ranges) override it.
    fn read_ranges(&self, ranges: &[(u64, usize, usize)], buf: &mut [u8], ok: &mut [bool]) {
        for (&(addr, at, len), ok) in ranges.iter().zip(ok.iter_mut()) {
            *ok = buf
                .get_mut(at..at.saturating_add(len))
                .is_some_and(|b| self.read(addr, b).is_ok());
        }
    }

    /// Number of read calls made so far (syscalls for a live process), for cost accounting.
    fn reads_made(&self) -> u64 {
        0
    }

    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, ReadError> {
        if len > MAX_READ {
            return Err(ReadError {
                addr,
                len,
                errno: libc::EFBIG,
            });
        }
        let mut v = vec![0u8; len];
        self.read(addr, &mut v)?;
        Ok(v)
    }

    fn read_u64(&self, addr: u64) -> Result<u64, ReadError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

/// Every aligned 8-byte word of `ranges` (at most [`MAX_READ`] bytes of each; unreadable
/// ranges are skipped), as (address, value): for searching a binary's data when a symbol is missing.
pub fn words_in<'a>(
    mem: &'a dyn Memory,
    ranges: &'a [(u64, u64)],
) -> impl Iterator<Item = (u64, u64)> + 'a {
    ranges.iter().flat_map(move |&(start, end)| {
        let len = (end.saturating_sub(start) as usize).min(MAX_READ);
        let bytes = mem.read_vec(start, len).unwrap_or_default();
        (0..bytes.len() / 8).map(move |i| {
            let w = Fields(&bytes).u64(8 * i);
            (start + 8 * i as u64, w)
        })
    })
}

/// The memory of a live process, read with `process_vm_readv`.
pub struct LiveMemory {
    pid: libc::pid_t,
    calls: std::cell::Cell<u64>,
}

impl LiveMemory {
    pub fn new(pid: libc::pid_t) -> LiveMemory {
        LiveMemory {
            pid,
            calls: std::cell::Cell::new(0),
        }
    }

    fn readv(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> Result<usize, i32> {
        self.calls.set(self.calls.get() + 1);
        // SAFETY: every local iovec points into a live, writable buffer of its stated length
        // owned by the caller; the remote side is only read by the kernel.
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(n as usize)
        }
    }
}

/// The kernel takes at most this many iovecs per call (IOV_MAX on Linux), local and remote
/// alike.
const IOV_BATCH: usize = 1024;

/// Most bytes between two ranges read as one remote range: each remote range costs the kernel
/// a page-table walk and a lock (about 0.4 µs, as much as copying 4 KiB), so ranges this close
/// are read with the bytes between them (into a scratch buffer). Less than a page, so the
/// bytes between two ranges lie in pages that hold one of them: merging never makes an
/// unmapped page part of a read.
const MAX_GAP: usize = 2048;

/// One call's worth of ranges, planned: remote ranges (merged where close), the local
/// iovecs they fill, and where each range ends in the stream of bytes read.
struct Plan {
    local: [MaybeUninit<libc::iovec>; IOV_BATCH],
    remote: [MaybeUninit<libc::iovec>; IOV_BATCH],
    /// Per range of the call (from its first): the stream offset its last byte ends at.
    ends: [usize; IOV_BATCH],
    nl: usize,
    nr: usize,
}

impl Plan {
    fn push(v: &mut [MaybeUninit<libc::iovec>], n: &mut usize, base: *mut u8, len: usize) {
        v[*n].write(libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: len,
        });
        *n += 1;
    }

    /// Plan the ranges from `start` on, as many as fit in one call; returns the end of them.
    fn fill(
        &mut self,
        start: usize,
        n: usize,
        range: &mut impl FnMut(usize) -> (u64, *mut u8, usize),
        gap: *mut u8,
    ) -> usize {
        self.nl = 0;
        self.nr = 0;
        let mut stream = 0usize;
        // End (target address) of the last remote range, while others may join it.
        let mut open: Option<u64> = None;
        let mut i = start;
        while i < n && self.nl + 2 <= IOV_BATCH && self.nr < IOV_BATCH {
            let (addr, buf, len) = range(i);
            let joins = open
                .and_then(|end| addr.checked_sub(end))
                .filter(|&g| g as usize <= MAX_GAP && len > 0);
            match joins {
                Some(g) => {
                    if g > 0 {
                        Plan::push(&mut self.local, &mut self.nl, gap, g as usize);
                    }
                    // SAFETY: remote[nr - 1] was written when that range was opened.
                    let last = unsafe { self.remote[self.nr - 1].assume_init_mut() };
                    last.iov_len += g as usize + len;
                    stream += g as usize;
                }
                None => Plan::push(
                    &mut self.remote,
                    &mut self.nr,
                    addr as usize as *mut u8,
                    len,
                ),
            }
            Plan::push(&mut self.local, &mut self.nl, buf, len);
            stream += len;
            self.ends[i - start] = stream;
            open = (len > 0).then(|| addr.checked_add(len as u64)).flatten();
            i += 1;
        }
        i
    }

    /// The planned iovecs, local and remote.
    fn iovecs(&self) -> (&[libc::iovec], &[libc::iovec]) {
        // SAFETY: the first `nl` and `nr` entries were written by `fill`, and
        // `MaybeUninit<T>` has the layout of `T`.
        unsafe {
            (
                &*(&self.local[..self.nl] as *const [MaybeUninit<libc::iovec>]
                    as *const [libc::iovec]),
                &*(&self.remote[..self.nr] as *const [MaybeUninit<libc::iovec>]
                    as *const [libc::iovec]),
            )
        }
    }
}

impl LiveMemory {
    /// Read `n` ranges, range `i` being `range(i)` = (target address, local buffer, length),
    /// in as few `process_vm_readv` calls and remote ranges as the kernel allows (ranges that
    /// follow each other closely in the target are read as one); `ok[i]` says whether range
    /// `i` was read in full. Ranges are read in the order given: callers put first what must
    /// be read first. Nothing is allocated.
    fn readv_all(
        &self,
        n: usize,
        mut range: impl FnMut(usize) -> (u64, *mut u8, usize),
        ok: &mut [bool],
    ) {
        // Left uninitialised: only the entries a call uses are written (zeroing them per
        // read would cost more than the reads of a small batch). The bytes between merged
        // ranges land in `gap` and are never looked at.
        let mut plan = Plan {
            local: [MaybeUninit::uninit(); IOV_BATCH],
            remote: [MaybeUninit::uninit(); IOV_BATCH],
            ends: [0; IOV_BATCH],
            nl: 0,
            nr: 0,
        };
        let mut gap = [MaybeUninit::<u8>::uninit(); MAX_GAP];
        let gap = gap.as_mut_ptr() as *mut u8;
        let mut start = 0;
        while start < n {
            let end = plan.fill(start, n, &mut range, gap);
            ok[start..end].fill(false);
            let (l, r) = plan.iovecs();
            // The kernel stops at the first remote range it cannot read in full; the ranges
            // before the stop are complete. The range it stopped in is read alone to be sure
            // (it may share a merged remote range with an unreadable one), then the rest.
            let read = self.readv(l, r).unwrap_or(0);
            let mut i = start;
            while i < end && plan.ends[i - start] <= read {
                ok[i] = true;
                i += 1;
            }
            if i < end {
                let (addr, buf, len) = range(i);
                let alone = [libc::iovec {
                    iov_base: buf as *mut libc::c_void,
                    iov_len: len,
                }];
                let from = [libc::iovec {
                    iov_base: addr as usize as *mut libc::c_void,
                    iov_len: len,
                }];
                ok[i] = len == 0 || self.readv(&alone, &from) == Ok(len);
                start = i + 1;
                continue;
            }
            start = end;
        }
    }
}

impl Memory for LiveMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.is_empty() {
            return Ok(());
        }
        let local = [libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        }];
        let remote = [libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: buf.len(),
        }];
        match self.readv(&local, &remote) {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(_) => Err(ReadError {
                addr,
                len: buf.len(),
                errno: 0,
            }),
            Err(errno) => Err(ReadError {
                addr,
                len: buf.len(),
                errno,
            }),
        }
    }

    fn read_ranges(&self, ranges: &[(u64, usize, usize)], buf: &mut [u8], ok: &mut [bool]) {
        // Every range must lie in `buf`: the kernel is handed raw pointers into it.
        assert!(ranges
            .iter()
            .all(|&(_, at, len)| at.checked_add(len).is_some_and(|end| end <= buf.len())));
        let base = buf.as_mut_ptr();
        self.readv_all(
            ranges.len(),
            // `at` is within `buf` (checked above), so the pointer stays in its allocation.
            |i| (ranges[i].0, base.wrapping_add(ranges[i].1), ranges[i].2),
            ok,
        );
    }

    fn reads_made(&self) -> u64 {
        self.calls.get()
    }
}

/// A memory image made of (address, bytes) regions: for unit tests of the decoders and
/// walkers, the fuzzers, and replaying recorded snapshots. It counts its read calls as a live
/// process counts syscalls (a batch is one call). A read is served by the first region that
/// holds all of it; after [`ImageMemory::coalesce`] regions are sorted and disjoint, and found
/// by binary search.
#[derive(Default, Clone)]
pub struct ImageMemory {
    regions: Vec<(u64, Vec<u8>)>,
    sorted: bool,
    calls: std::cell::Cell<u64>,
}

impl ImageMemory {
    pub fn new() -> ImageMemory {
        ImageMemory::default()
    }

    pub fn add(&mut self, addr: u64, bytes: Vec<u8>) {
        self.regions.push((addr, bytes));
        self.sorted = false;
    }

    /// The regions, as added (or as merged by [`ImageMemory::coalesce`]).
    pub fn regions(&self) -> &[(u64, Vec<u8>)] {
        &self.regions
    }

    /// Sort the regions and merge those that overlap or touch (where two overlap, the one
    /// that starts first wins: recorded reads of a paused process agree anyway), so that reads find their region by binary search and a read that
    /// spans two recorded reads is served too.
    pub fn coalesce(&mut self) {
        let mut regions = std::mem::take(&mut self.regions);
        // Stable: of two regions at one address, the one added first stays first.
        regions.sort_by_key(|(addr, _)| *addr);
        let mut merged: Vec<(u64, Vec<u8>)> = Vec::with_capacity(regions.len());
        for (addr, bytes) in regions {
            if let Some((base, have)) = merged.last_mut() {
                let end = *base + have.len() as u64;
                if addr <= end {
                    let skip = (end - addr) as usize;
                    if skip < bytes.len() {
                        have.extend_from_slice(&bytes[skip..]);
                    }
                    continue;
                }
            }
            merged.push((addr, bytes));
        }
        self.regions = merged;
        self.sorted = true;
    }

    /// The bytes at `addr` (within one region), to change the image between reads.
    pub fn bytes_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        self.regions.iter_mut().find_map(|(base, bytes)| {
            let off = usize::try_from(addr.checked_sub(*base)?).ok()?;
            bytes.get_mut(off..off.checked_add(len)?)
        })
    }

    fn copy(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let fits = |base: u64, bytes: &[u8]| -> Option<std::ops::Range<usize>> {
            let off = usize::try_from(addr.checked_sub(base)?).ok()?;
            let end = off.checked_add(buf.len())?;
            (end <= bytes.len()).then_some(off..end)
        };
        let found = if self.sorted {
            let i = self.regions.partition_point(|(base, _)| *base <= addr);
            i.checked_sub(1).and_then(|i| {
                let (base, bytes) = &self.regions[i];
                fits(*base, bytes).map(|r| &bytes[r])
            })
        } else {
            self.regions
                .iter()
                .find_map(|(base, bytes)| fits(*base, bytes).map(|r| &bytes[r]))
        };
        match found {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(ReadError {
                addr,
                len: buf.len(),
                errno: 0,
            }),
        }
    }
}

impl Memory for ImageMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.calls.set(self.calls.get() + 1);
        self.copy(addr, buf)
    }

    fn read_ranges(&self, ranges: &[(u64, usize, usize)], buf: &mut [u8], ok: &mut [bool]) {
        self.calls.set(self.calls.get() + 1);
        for (&(addr, at, len), ok) in ranges.iter().zip(ok.iter_mut()) {
            *ok = buf
                .get_mut(at..at.saturating_add(len))
                .is_some_and(|b| self.copy(addr, b).is_ok());
        }
    }

    fn reads_made(&self) -> u64 {
        self.calls.get()
    }
}

/// Reads through another [`Memory`], keeping a copy of everything read (at most
/// `limit` bytes): what one snapshot of a live process reads becomes an [`ImageMemory`] that
/// the same code can read again offline.
pub struct RecordingMemory<'a> {
    inner: &'a dyn Memory,
    limit: usize,
    kept: std::cell::RefCell<(usize, ImageMemory)>,
}

impl<'a> RecordingMemory<'a> {
    pub fn new(inner: &'a dyn Memory, limit: usize) -> RecordingMemory<'a> {
        RecordingMemory {
            inner,
            limit,
            kept: Default::default(),
        }
    }

    fn keep(&self, addr: u64, bytes: &[u8]) {
        let mut kept = self.kept.borrow_mut();
        if kept.0 + bytes.len() <= self.limit {
            kept.0 += bytes.len();
            kept.1.add(addr, bytes.to_vec());
        }
    }

    /// Everything read so far, as an image (regions merged).
    pub fn image(&self) -> ImageMemory {
        let mut image = self.kept.borrow().1.clone();
        image.coalesce();
        image
    }
}

impl Memory for RecordingMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        self.inner.read(addr, buf)?;
        self.keep(addr, buf);
        Ok(())
    }

    fn read_ranges(&self, ranges: &[(u64, usize, usize)], buf: &mut [u8], ok: &mut [bool]) {
        self.inner.read_ranges(ranges, buf, ok);
        for (&(addr, at, len), ok) in ranges.iter().zip(ok.iter()) {
            if let Some(b) = buf.get(at..at.saturating_add(len)).filter(|_| *ok) {
                self.keep(addr, b);
            }
        }
    }

    fn reads_made(&self) -> u64 {
        self.inner.reads_made()
    }
}

/// Field access on a local copy of a target structure. Out-of-range offsets read as zero,
/// which the walkers treat as a null pointer / empty value: a short or corrupt copy can't panic.
#[derive(Clone, Copy)]
pub struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    pub fn u64(&self, off: usize) -> u64 {
        self.bytes::<8>(off).map(u64::from_le_bytes).unwrap_or(0)
    }
    pub fn i64(&self, off: usize) -> i64 {
        self.u64(off) as i64
    }
    pub fn u32(&self, off: usize) -> u32 {
        self.bytes::<4>(off).map(u32::from_le_bytes).unwrap_or(0)
    }
    pub fn i32(&self, off: usize) -> i32 {
        self.u32(off) as i32
    }
    pub fn u16(&self, off: usize) -> u16 {
        self.bytes::<2>(off).map(u16::from_le_bytes).unwrap_or(0)
    }
    pub fn u8(&self, off: usize) -> u8 {
        self.0.get(off).copied().unwrap_or(0)
    }
    pub fn f64(&self, off: usize) -> f64 {
        f64::from_bits(self.u64(off))
    }
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        self.0.get(off..off.checked_add(N)?)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesced_images_read_across_recorded_reads() {
        let mut m = ImageMemory::new();
        m.add(0x2000, vec![5, 6, 7, 8]);
        m.add(0x1000, vec![1, 2, 3, 4]);
        m.add(0x1004, vec![9, 9]);
        m.add(0x1002, vec![3, 4, 9, 9, 10]);
        m.coalesce();
        assert_eq!(m.regions().len(), 2);
        assert_eq!(m.read_vec(0x1000, 7).unwrap(), [1, 2, 3, 4, 9, 9, 10]);
        assert_eq!(m.read_vec(0x2001, 3).unwrap(), [6, 7, 8]);
        assert!(m.read_vec(0x2001, 4).is_err());
        assert!(m.read_vec(0xfff, 2).is_err());
        assert!(m.read_vec(0x1006, 0x1000).is_err());
        assert!(m.read_vec(u64::MAX - 1, 8).is_err());
    }

    #[test]
    fn recording_keeps_what_was_read_within_its_limit() {
        let mut live = ImageMemory::new();
        live.add(0x1000, (0..64).collect());
        let rec = RecordingMemory::new(&live, 16);
        assert_eq!(
            rec.read_vec(0x1008, 8).unwrap(),
            (8..16).collect::<Vec<u8>>()
        );
        let mut buf = [0u8; 12];
        let mut ok = [false; 3];
        rec.read_ranges(
            &[(0x1000, 0, 4), (0x9000, 4, 4), (0x1010, 8, 4)],
            &mut buf,
            &mut ok,
        );
        assert_eq!(ok, [true, false, true]);
        // 8 + 4 + 4 bytes kept: the limit is reached, the next read is not kept.
        assert!(rec.read_vec(0x1020, 8).is_ok());
        let image = rec.image();
        assert_eq!(
            image.read_vec(0x1008, 8).unwrap(),
            (8..16).collect::<Vec<u8>>()
        );
        assert_eq!(image.read_vec(0x1000, 4).unwrap(), [0, 1, 2, 3]);
        assert_eq!(image.read_vec(0x1010, 4).unwrap(), [16, 17, 18, 19]);
        assert!(image.read_vec(0x1020, 8).is_err(), "beyond the limit");
    }

    #[test]
    fn live_reads_own_memory_in_batches() {
        let a = [1u8, 2, 3, 4];
        let b = [9u8; 100];
        let mem = LiveMemory::new(std::process::id() as libc::pid_t);
        assert!(mem.read(16, &mut [0u8; 4]).is_err());
        // Into one buffer: an unmapped range fails alone, the others are read; one call when
        // all are readable.
        let mut buf = [0u8; 112];
        let mut ok = [true; 3];
        let ranges = [
            (a.as_ptr() as u64, 0, 4),
            (8, 4, 8), // unmapped
            (b.as_ptr() as u64, 12, 100),
        ];
        mem.read_ranges(&ranges, &mut buf, &mut ok);
        assert_eq!(ok, [true, false, true]);
        assert_eq!((&buf[..4], &buf[12..]), (&a[..], &b[..]));
        let calls = mem.reads_made();
        mem.read_ranges(&[ranges[0], ranges[2]], &mut buf, &mut ok[..2]);
        assert_eq!((ok, mem.reads_made() - calls), ([true, true, true], 1));
    }

    #[test]
    fn live_reads_merge_close_ranges_and_keep_failures_apart() {
        // Three pages, the middle one unreadable.
        let page = 4096;
        // SAFETY: a fresh private anonymous mapping, unmapped at the end of the test.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the mapping is 3 pages long and writable.
        let bytes = unsafe { std::slice::from_raw_parts_mut(base as *mut u8, 3 * page) };
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        // SAFETY: the middle page of the mapping above.
        assert_eq!(
            unsafe { libc::mprotect((base as *mut u8).add(page).cast(), page, libc::PROT_NONE) },
            0
        );
        let at = base as u64;
        let expect = |addr: u64, len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| (((addr - at) as usize + i) % 251) as u8)
                .collect()
        };
        let mem = LiveMemory::new(std::process::id() as libc::pid_t);
        // (address, length): close ranges in order (merged), one running into the unreadable
        // page (merged with its readable neighbours), one behind the last (a new range),
        // an overlapping one, and one on the third page.
        let want = [
            (at, 100usize),
            (at + 160, 40),
            (at + 1000, 8),
            (at + 4000, 200),
            (at + 4010, 16),
            (at + 300, 50),
            (at + 320, 50),
            (at + 2 * page as u64 + 8, 64),
        ];
        let mut ranges = Vec::new();
        let mut off = 0;
        for &(addr, len) in &want {
            ranges.push((addr, off, len));
            off += len;
        }
        let mut buf = vec![0u8; off];
        let mut ok = vec![false; want.len()];
        let calls = mem.reads_made();
        mem.read_ranges(&ranges, &mut buf, &mut ok);
        assert_eq!(ok, [true, true, true, false, true, true, true, true]);
        for (&(addr, at_buf, len), ok) in ranges.iter().zip(&ok) {
            if *ok {
                assert_eq!(
                    buf[at_buf..at_buf + len],
                    expect(addr, len)[..],
                    "{addr:#x}"
                );
            }
        }
        // The first call stops in the range that runs into the unreadable page; it is read
        // alone, and the rest in one more call.
        assert_eq!(mem.reads_made() - calls, 3);
        let calls = mem.reads_made();
        mem.read_ranges(&ranges[..3], &mut buf, &mut ok[..3]);
        assert_eq!(mem.reads_made() - calls, 1, "close ranges: one call");
        // SAFETY: unmapping the mapping made above, no longer borrowed.
        assert_eq!(unsafe { libc::munmap(base, 3 * page) }, 0);
    }

    #[test]
    fn fields_out_of_range_read_zero() {
        let f = Fields(&[1, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(f.u64(0), 1);
        assert_eq!(f.u64(4), 0);
        assert_eq!(f.u8(8), 7);
        assert_eq!(f.u32(usize::MAX - 1), 0);
    }
}
