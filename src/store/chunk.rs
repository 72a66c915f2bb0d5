//! A batch of samples as stored: columns (time deltas, thread, stack, flags, lateness),
//! bincode with variable-length integers, then zstd.

use anyhow::{bail, Context, Result};
use bincode::Options;
use serde::{Deserialize, Serialize};

/// The thread was running (or runnable) rather than waiting.
pub const FLAG_ACTIVE: u8 = 1;
/// The thread held the GIL.
pub const FLAG_GIL: u8 = 2;
/// The stack was cut short: deeper than the walk's limit (its innermost frames are true).
pub const FLAG_TRUNCATED: u8 = 4;
/// The thread's stack could not be read (format 2): `stack` is then an `errors.id`, the
/// reason, and the sample stands for time whose stack is unknown.
pub const FLAG_ERROR: u8 = 8;
/// The target was paused while this sample's snapshot was read (blocking mode within its
/// pause bound): the stacks of one snapshot are one instant. Without it the
/// program ran on while it was read (`--nonblocking`, a pause that would have been too long,
/// or a file written before this flag existed; readers ignore bits they do not know).
pub const FLAG_PAUSED: u8 = 16;

/// Most samples a chunk may hold: the writer sends at most 16,384 per chunk; a file that
/// claims more is damaged or crafted.
pub const MAX_CHUNK_SAMPLES: u64 = 1 << 20;
/// Most bytes one sample takes decoded: bincode's variable-length integers (9 for a u64, 5
/// for a u32) and a flags byte.
const MAX_SAMPLE_BYTES: u64 = 9 + 5 + 5 + 1 + 5;
/// The five columns' length prefixes.
const COLUMN_HEADERS: u64 = 5 * 9;
const ZSTD_LEVEL: i32 = 3;

/// One thread's stack at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Microseconds since the start of the session.
    pub t_us: u64,
    /// Row id in `threads`.
    pub thread: u32,
    /// Row id in `stacks`.
    pub stack: u32,
    pub flags: u8,
    /// How late the snapshot was against its due time, in microseconds.
    pub late_us: u32,
}

impl Sample {
    pub fn active(&self) -> bool {
        self.flags & FLAG_ACTIVE != 0
    }
    pub fn gil(&self) -> bool {
        self.flags & FLAG_GIL != 0
    }
    /// An error sample: `stack` is an `errors.id`.
    pub fn error(&self) -> bool {
        self.flags & FLAG_ERROR != 0
    }
    /// Read with the target paused (see [`FLAG_PAUSED`]).
    pub fn paused(&self) -> bool {
        self.flags & FLAG_PAUSED != 0
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Columns {
    t_delta: Vec<u64>,
    thread: Vec<u32>,
    stack: Vec<u32>,
    flags: Vec<u8>,
    late_us: Vec<u32>,
}

fn codec() -> impl Options {
    bincode::DefaultOptions::new().with_varint_encoding()
}

/// Encode samples (in time order) taken after `start_us`.
pub fn encode(samples: &[Sample], start_us: u64) -> Result<Vec<u8>> {
    let mut c = Columns::default();
    let mut prev = start_us;
    for s in samples {
        c.t_delta.push(s.t_us.saturating_sub(prev));
        prev = s.t_us.max(prev);
        c.thread.push(s.thread);
        c.stack.push(s.stack);
        c.flags.push(s.flags);
        c.late_us.push(s.late_us);
    }
    let raw = codec().serialize(&c).context("could not encode samples")?;
    zstd::bulk::compress(&raw, ZSTD_LEVEL).context("could not compress samples")
}

/// Decode a chunk written by [`encode`] with the same `start_us`, holding `claimed` samples
/// (the chunk index's count). Memory is bounded by the claim, and the claim by
/// [`MAX_CHUNK_SAMPLES`]: a chunk that decompresses to more than its samples can take
/// (a decompression bomb) or to another number of samples is refused as damaged.
pub fn decode(data: &[u8], start_us: u64, claimed: u64) -> Result<Vec<Sample>> {
    if claimed > MAX_CHUNK_SAMPLES {
        bail!(
            "a sample chunk claims {claimed} samples, more than a capture writes \
             ({MAX_CHUNK_SAMPLES}) (damaged file?)"
        );
    }
    let limit = claimed * MAX_SAMPLE_BYTES + COLUMN_HEADERS;
    let raw = zstd::bulk::decompress(data, limit as usize).with_context(|| {
        format!(
            "a sample chunk does not decompress within the {limit} bytes its {claimed} samples \
             can take (damaged file?)"
        )
    })?;
    let c: Columns = codec()
        .with_limit(limit)
        .deserialize(&raw)
        .context("a sample chunk does not decode (damaged file?)")?;
    let n = c.t_delta.len();
    if n as u64 != claimed {
        bail!("a sample chunk holds {n} samples where its index says {claimed} (damaged file?)");
    }
    if [
        c.thread.len(),
        c.stack.len(),
        c.flags.len(),
        c.late_us.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        bail!("a sample chunk has columns of different lengths (damaged file?)");
    }
    let mut t = start_us;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        t = t.saturating_add(c.t_delta[i]);
        out.push(Sample {
            t_us: t,
            thread: c.thread[i],
            stack: c.stack[i],
            flags: c.flags[i],
            late_us: c.late_us[i],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decompression_bomb_is_refused_without_using_its_memory() {
        // A few KB of zstd that would expand to 64 MB.
        let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
        assert!(bomb.len() < 100 << 10, "{} bytes", bomb.len());
        let err = decode(&bomb, 0, 16_384).unwrap_err().to_string();
        assert!(err.contains("does not decompress within"), "{err}");
    }

    #[test]
    fn round_trip_and_garbage() {
        let samples: Vec<Sample> = (0..1000)
            .map(|i| Sample {
                t_us: 5_000 + i * 1000 + (i % 7),
                thread: (i % 3) as u32,
                stack: (i % 11) as u32,
                flags: (i % 4) as u8,
                late_us: (i % 13) as u32,
            })
            .collect();
        let data = encode(&samples, 5_000).unwrap();
        assert_eq!(decode(&data, 5_000, samples.len() as u64).unwrap(), samples);
        // A count that disagrees with the chunk, or beyond any capture's, is refused.
        assert!(decode(&data, 5_000, samples.len() as u64 - 1).is_err());
        assert!(decode(&data, 5_000, MAX_CHUNK_SAMPLES + 1).is_err());
        assert!(data.len() < samples.len() * 4, "{} bytes", data.len());
        for bad in [&b""[..], b"garbage", &data[..data.len() / 2]] {
            assert!(decode(bad, 0, samples.len() as u64).is_err());
        }
    }
}
