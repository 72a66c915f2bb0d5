//! A fast, non-cryptographic hasher for the hot maps of sampling and replay (code objects by
//! address, frames by (code, line), stacks by frame ids): the multiply-rotate scheme of
//! Firefox's and rustc's FxHash, written here. Keys come from our own bookkeeping or from
//! bounded, validated target data, so flooding resistance (SipHash's reason to be slow) is
//! not needed; a pathological target could only slow its own profile down.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(i as u32 as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FastBuild = BuildHasherDefault<FastHasher>;
pub type FastMap<K, V> = HashMap<K, V, FastBuild>;
pub type FastSet<K> = HashSet<K, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keys_spread() {
        let mut m: FastMap<(u64, i32), u32> = FastMap::default();
        for i in 0..10_000u64 {
            m.insert((i * 4096, (i % 7) as i32), i as u32);
        }
        for i in 0..10_000u64 {
            assert_eq!(m[&(i * 4096, (i % 7) as i32)], i as u32);
        }
        let mut s: FastSet<Vec<u32>> = FastSet::default();
        s.insert(vec![1, 2, 3]);
        assert!(s.contains(&vec![1, 2, 3]) && !s.contains(&vec![1, 2]));
    }
}
