//! How long blocking mode may pause the target: [`PauseBudget`] predicts a snapshot's pause
//! from the pauses measured so far and says whether the next snapshot may pause at all.
//!
//! Pausing takes each thread in turn (a ptrace stop per thread), so its cost grows with the
//! thread count; on a busy machine a single pause can also stretch while a stopped thread
//! waits for a core. The cost of pausing one thread is therefore the *least* of the last few
//! measured (one stretched pause does not stop pausing), and a target read without pausing
//! because its predicted pause was only a little over the bound is paused again now and
//! then to learn whether that is still so (with growing intervals while it is).

use std::time::{Duration, Instant};

/// Longest pause of the target that blocking mode allows itself for one snapshot. Pausing
/// costs each thread a ptrace stop in turn, so a process with thousands of threads would be
/// frozen for most of a second: beyond this, a snapshot is taken without pausing (and
/// counted in [`CaptureStats::unpaused`](super::CaptureStats::unpaused)).
pub const MAX_PAUSE: Duration = Duration::from_millis(20);
/// Cost of pausing one thread, assumed until a pause was measured.
const PER_THREAD_GUESS: Duration = Duration::from_micros(100);
/// Pauses whose per-thread cost is remembered.
const REMEMBERED: usize = 4;
/// A predicted pause at most this many times [`MAX_PAUSE`] is tried again now and then: it
/// may have been a busy moment. A longer one (thousands of threads) is never tried.
const PROBE_FACTOR: u32 = 4;
/// First and longest wait before trying a pause again.
const PROBE_FIRST: Duration = Duration::from_secs(1);
const PROBE_LONGEST: Duration = Duration::from_secs(32);

/// The pause bound's bookkeeping (see the module doc).
#[derive(Debug)]
pub struct PauseBudget {
    /// Per-thread cost of the last [`REMEMBERED`] pauses (a ring; none before the first).
    per_thread: [Option<Duration>; REMEMBERED],
    next: usize,
    /// When a snapshot was last paused (or the budget made).
    last_pause: Instant,
    /// How long to read without pausing before trying a pause again.
    probe_wait: Duration,
}

impl Default for PauseBudget {
    fn default() -> Self {
        PauseBudget {
            per_thread: [None; REMEMBERED],
            next: 0,
            last_pause: Instant::now(),
            probe_wait: PROBE_FIRST,
        }
    }
}

impl PauseBudget {
    /// The pause that pausing `threads` threads is expected to cost.
    pub fn predict(&self, threads: u32) -> Duration {
        let each = self.per_thread.iter().flatten().min().copied();
        let each = each.unwrap_or(PER_THREAD_GUESS);
        each.saturating_mul(threads.max(1))
    }

    /// May the next snapshot of `threads` threads pause the target (at `now`)?
    pub fn allows(&mut self, threads: u32, now: Instant) -> bool {
        let predicted = self.predict(threads);
        if predicted <= MAX_PAUSE {
            return true;
        }
        if predicted > MAX_PAUSE * PROBE_FACTOR {
            return false;
        }
        if now.saturating_duration_since(self.last_pause) < self.probe_wait {
            return false;
        }
        // Try again; if it is still too long, wait twice as long before the next try.
        self.probe_wait = (self.probe_wait * 2).min(PROBE_LONGEST);
        true
    }

    /// A pause of `threads` threads took `pause`, ending at `now`.
    pub fn record(&mut self, pause: Duration, threads: u32, now: Instant) {
        self.per_thread[self.next] = Some(pause / threads.max(1));
        self.next = (self.next + 1) % REMEMBERED;
        self.last_pause = now;
        if pause <= MAX_PAUSE {
            self.probe_wait = PROBE_FIRST;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn few_threads_pause_and_many_never_do() {
        let mut b = PauseBudget::default();
        let now = Instant::now();
        assert!(b.allows(5, now));
        // Guessed at 100 µs a thread: 1000 threads would be 100 ms, never tried.
        assert!(!b.allows(1000, now + ms(3_600_000)));
    }

    #[test]
    fn one_stretched_pause_does_not_stop_pausing() {
        let mut b = PauseBudget::default();
        let t0 = Instant::now();
        b.record(ms(2), 5, t0);
        b.record(ms(150), 5, t0 + ms(10));
        assert!(b.allows(5, t0 + ms(20)), "the least recent cost counts");
    }

    #[test]
    fn a_busy_spell_stops_pausing_then_it_is_tried_again_with_growing_waits() {
        let mut b = PauseBudget::default();
        let t0 = Instant::now();
        for i in 0..REMEMBERED as u64 {
            b.record(ms(30), 5, t0 + ms(i));
        }
        let last = t0 + ms(REMEMBERED as u64 - 1);
        assert!(!b.allows(5, last + ms(500)));
        assert!(b.allows(5, last + ms(1000)), "tried again after a second");
        // Still too long: the next try waits two seconds.
        b.record(ms(30), 5, last + ms(1000));
        assert!(!b.allows(5, last + ms(2500)));
        assert!(b.allows(5, last + ms(3000)));
        // Short again: pausing resumes once the short pauses are the least remembered.
        b.record(ms(3), 5, last + ms(3000));
        assert!(b.allows(5, last + ms(3001)));
    }

    #[test]
    fn waits_between_tries_are_bounded() {
        let mut b = PauseBudget::default();
        let mut now = Instant::now();
        b.record(ms(60), 5, now);
        for _ in 0..20 {
            now += PROBE_LONGEST;
            assert!(b.allows(5, now));
            b.record(ms(60), 5, now);
        }
    }
}
