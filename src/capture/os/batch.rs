//! A batch of reads of target memory made in one call, with typed handles to what each read
//! brought back.
//!
//! Requests are queued ([`Batch::bytes`], [`Batch::word`]), then [`Batch::read`] reads every
//! request queued since the last `read` in one [`Memory::read_ranges`] call. A request's
//! bytes stay in the batch, at a fixed offset of its buffer, until [`Batch::clear`]: the
//! stack walker keeps the frame stacks it copied there and looks frames up in them. The buffers
//! are kept between snapshots, so a batch of the usual size allocates nothing.

use super::memory::Memory;

/// A queued read of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(u32);

/// A queued read of a little-endian `u64` (a pointer, most often).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word(Bytes);

/// A queued read of a little-endian `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int(Bytes);

/// Consecutive reads queued together: the `k`-th is [`Run::nth`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Run {
    first: u32,
    len: u32,
}

impl Run {
    pub fn nth(self, k: usize) -> Option<Bytes> {
        (k < self.len as usize).then(|| Bytes(self.first + k as u32))
    }
}

#[derive(Debug, Default)]
pub struct Batch {
    /// (target address, offset in `buf`, length) per request, in request order.
    ranges: Vec<(u64, usize, usize)>,
    buf: Vec<u8>,
    ok: Vec<bool>,
    /// Requests before this one have been read.
    done: usize,
    /// Read calls made since the last `clear`.
    pub calls: u32,
}

impl Batch {
    /// Forget every request (keeping the buffers).
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.buf.clear();
        self.ok.clear();
        self.done = 0;
        self.calls = 0;
    }

    /// Queue a read of `len` bytes at `addr`.
    pub fn bytes(&mut self, addr: u64, len: usize) -> Bytes {
        let at = self.buf.len();
        self.buf.resize(at + len, 0);
        self.ranges.push((addr, at, len));
        self.ok.push(false);
        Bytes(self.ranges.len() as u32 - 1)
    }

    pub fn word(&mut self, addr: u64) -> Word {
        Word(self.bytes(addr, 8))
    }

    pub fn int(&mut self, addr: u64) -> Int {
        Int(self.bytes(addr, 4))
    }

    /// Queue `count` reads, the `k`-th at `addr(k)` of `len(k)` bytes.
    pub fn run(&mut self, count: usize, mut addr_len: impl FnMut(usize) -> (u64, usize)) -> Run {
        let first = self.ranges.len() as u32;
        for k in 0..count {
            let (addr, len) = addr_len(k);
            self.bytes(addr, len);
        }
        Run {
            first,
            len: count as u32,
        }
    }

    /// Read everything queued since the last `read`, in one call (none if nothing is queued).
    pub fn read(&mut self, mem: &dyn Memory) {
        if self.done == self.ranges.len() {
            return;
        }
        let from = self.done;
        mem.read_ranges(&self.ranges[from..], &mut self.buf, &mut self.ok[from..]);
        self.done = self.ranges.len();
        self.calls += 1;
    }

    /// The bytes of a request that was read in full (`None`: not read, or not yet).
    pub fn get(&self, h: Bytes) -> Option<&[u8]> {
        let i = h.0 as usize;
        if !*self.ok.get(i)? {
            return None;
        }
        let (_, at, len) = self.ranges[i];
        Some(&self.buf[at..at + len])
    }

    pub fn u64(&self, h: Word) -> Option<u64> {
        Some(u64::from_le_bytes(self.get(h.0)?.try_into().ok()?))
    }

    pub fn u32(&self, h: Int) -> Option<u32> {
        Some(u32::from_le_bytes(self.get(h.0)?.try_into().ok()?))
    }

    /// Where a request's bytes are in [`Batch::buffer`].
    pub fn offset(&self, h: Bytes) -> usize {
        self.ranges[h.0 as usize].1
    }

    /// Every request's bytes, back to back (regions of a request not read are zero or stale).
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes queued so far, for budgets.
    pub fn size(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::os::memory::ImageMemory;

    #[test]
    fn handles_find_their_bytes_across_reads() {
        let mut mem = ImageMemory::new();
        mem.add(0x1000, (0..64u8).collect());
        let mut b = Batch::default();
        let w = b.word(0x1008);
        let missing = b.bytes(0x9000, 4);
        let i = b.int(0x1004);
        assert_eq!(b.u64(w), None, "not read yet");
        b.read(&mem);
        let run = b.run(2, |k| (0x1000 + 16 * k as u64, 2));
        b.read(&mem);
        b.read(&mem);
        assert_eq!(b.calls, 2, "an empty read costs nothing");
        assert_eq!(mem.reads_made(), 2);
        assert_eq!(
            b.u64(w),
            Some(u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]))
        );
        assert_eq!(b.get(missing), None);
        assert_eq!(b.u32(i), Some(u32::from_le_bytes([4, 5, 6, 7])));
        assert_eq!(b.get(run.nth(1).unwrap()), Some(&[16u8, 17][..]));
        assert_eq!(run.nth(2), None);
        let at = b.offset(run.nth(0).unwrap());
        assert_eq!(&b.buffer()[at..at + 2], &[0, 1]);
    }
}
