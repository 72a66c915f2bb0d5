//! Tests of the walker on memory images: garbage, planted interpreters, costs.

use super::*;
use crate::capture::os::memory::ImageMemory;
use crate::capture::python::code::CodeCache;
use crate::capture::python::objects::ObjectReader;

/// xorshift: reproducible garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Regions of random bytes whose 8-byte words are often pointers back into the regions,
/// so walks go deep into garbage: every call must return (Ok or Err), never panic or hang.
#[test]
fn garbage_memory_never_panics() {
    const BASES: [u64; 4] = [0x10000, 0x20000, 0x30000, 0x40000];
    for seed in 1..400u64 {
        // Every table, in turn: each frame shape, string, int and dict format.
        let layout = crate::capture::python::tables::ALL
            [seed as usize % crate::capture::python::tables::ALL.len()];
        let mut rng = Rng(seed.wrapping_mul(0x9e3779b97f4a7c15));
        let mut mem = ImageMemory::new();
        for base in BASES {
            let mut bytes = vec![0u8; 0x4000];
            for w in bytes.chunks_mut(8) {
                let r = rng.next();
                let v = match r % 4 {
                    0 => BASES[(r >> 8) as usize % 4] + (((r >> 16) % 0x4000) & !7),
                    1 => 0,
                    2 => r % 64,
                    _ => r,
                };
                w.copy_from_slice(&v.to_le_bytes());
            }
            mem.add(base, bytes);
        }
        let mut walker = Walker::new(
            layout,
            0x20000 + (seed % 64) * 8,
            GilWords {
                holder: 0x10000 + 576,
                locked: (seed % 2 == 0).then_some(0x10000 + 592),
            },
        );
        let mut codes = CodeCache::default();
        let mut threads = Vec::new();
        for _ in 0..2 {
            if walker.snapshot(&mem, &mut threads).is_ok() {
                for t in &threads {
                    assert!(t.frames.len() <= MAX_DEPTH);
                    for f in &t.frames {
                        if codes.get(&mem, layout, f.code).is_ok() {
                            codes.line(layout, f.code, f.instr_offset);
                        }
                    }
                }
            }
        }
        let mut reader = ObjectReader::new(&mem, layout);
        for base in BASES {
            let addr = base + ((rng.next() % 0x4000) & !7);
            let _ = reader.repr(addr, 128);
            let _ = reader.dict_items(addr);
            let _ = reader.instance_dict_items(addr);
        }
    }
}
