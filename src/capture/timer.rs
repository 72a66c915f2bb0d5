//! The sampling clock: keeps a requested rate without drift and says how late each tick was.
//!
//! Tick *n* is due at `start + n/rate`, whatever happened before it, so the rate does not
//! drift with the time each sample takes. A tick taken after its due time reports how late
//! it was; when sampling falls a whole period behind, the missed ticks are skipped (counted
//! in [`Ticker::skipped`]) rather than taken in a burst.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::model::config::RecordDuration;

/// Longest single sleep, so that a stop request is seen quickly even at low rates.
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Why sampling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Every tick of the duration was taken or skipped.
    Duration,
    /// A stop was requested (Ctrl-C, or the consumer went away).
    Interrupted,
    /// The profiled processes exited.
    ProcessExited,
    /// One snapshot was asked for, and taken (`dump`).
    Snapshot,
}

impl StopReason {
    /// The name stored in a session's `stop_reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Interrupted => "interrupted",
            StopReason::ProcessExited => "process_exited",
            StopReason::Snapshot => "snapshot",
        }
    }
}

/// What a tick's work says about the ticks after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop(StopReason),
}

pub struct Ticker {
    start: Instant,
    period_ns: u64,
    next: u64,
    /// Ticks in all (rate × seconds), when the duration is limited.
    limit: Option<u64>,
    /// Ticks skipped because sampling fell behind.
    pub skipped: u64,
}

impl Ticker {
    /// A clock ticking `rate` times a second, the first tick due now.
    pub fn new(rate: u64) -> Ticker {
        Ticker {
            start: Instant::now(),
            period_ns: (1_000_000_000 / rate.max(1)).max(1),
            next: 0,
            limit: None,
            skipped: 0,
        }
    }

    /// A clock for `duration` at `rate`: [`Ticker::finished`] once rate × seconds ticks are
    /// taken or skipped (so the duration is wall time, as skipped ticks count).
    pub fn for_duration(rate: u64, duration: &RecordDuration) -> Ticker {
        Ticker {
            limit: match duration {
                RecordDuration::Unlimited => None,
                RecordDuration::Seconds(s) => Some(s.saturating_mul(rate.max(1))),
            },
            ..Ticker::new(rate)
        }
    }

    /// Whether every tick of the duration has been taken or skipped.
    pub fn finished(&self) -> bool {
        // By ticks, and by the clock: a snapshot that ran long must not stretch the duration.
        self.limit.is_some_and(|l| {
            self.next >= l
                || self.start.elapsed() >= Duration::from_nanos(self.period_ns.saturating_mul(l))
        })
    }

    /// The sampling loop (the capture's and py-spy's `Sampler`'s): wait for each tick until
    /// the duration ends or `stop` is set, run `tick` with how late the tick is, move on; a
    /// tick's error ends the loop with that error.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut tick: impl FnMut(Duration) -> anyhow::Result<Flow>,
    ) -> anyhow::Result<StopReason> {
        loop {
            if self.finished() {
                return Ok(StopReason::Duration);
            }
            let Some(late) = self.wait(stop) else {
                return Ok(StopReason::Interrupted);
            };
            let flow = tick(late)?;
            self.advance();
            if let Flow::Stop(reason) = flow {
                return Ok(reason);
            }
        }
    }

    /// The time between ticks.
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_ns)
    }

    /// When tick `n` is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_nanos(self.period_ns.saturating_mul(n))
    }

    /// Sleep until the next tick is due. Returns `None` if `stop` was set meanwhile,
    /// otherwise how late the tick is (zero when on time).
    pub fn wait(&mut self, stop: &AtomicBool) -> Option<Duration> {
        let due = self.due(self.next);
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let now = Instant::now();
            if now >= due {
                return Some(now - due);
            }
            std::thread::sleep((due - now).min(MAX_SLEEP));
        }
    }

    /// The tick was taken: move to the next one, skipping those already a period past due
    /// (never past the duration's last tick: ticks after it are not skipped, they are not due).
    pub fn advance(&mut self) {
        self.next += 1;
        let behind = (self.start.elapsed().as_nanos() / self.period_ns as u128) as u64;
        let behind = behind.min(self.limit.unwrap_or(u64::MAX));
        if behind > self.next {
            self.skipped += behind - self.next;
            self.next = behind;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_rate_and_skips_when_behind() {
        let stop = AtomicBool::new(false);
        let mut t = Ticker::new(1000);
        let begin = Instant::now();
        for _ in 0..50 {
            t.wait(&stop).unwrap();
            t.advance();
        }
        let took = begin.elapsed();
        assert!(took >= Duration::from_millis(49), "{took:?}");
        std::thread::sleep(Duration::from_millis(20));
        let late = t.wait(&stop).unwrap();
        assert!(late >= Duration::from_millis(15), "{late:?}");
        t.advance();
        assert!(t.skipped >= 15, "skipped {}", t.skipped);
        stop.store(true, Ordering::Relaxed);
        let mut slow = Ticker::new(1);
        slow.advance();
        assert!(slow.wait(&stop).is_none());
    }

    #[test]
    fn the_loop_ends_by_duration_stop_or_a_tick() {
        let never = AtomicBool::new(false);
        let mut ticks = 0;
        let mut t = Ticker::for_duration(1000, &RecordDuration::Seconds(1));
        t.limit = Some(20);
        let reason = t.run(&never, |_| {
            ticks += 1;
            Ok(Flow::Continue)
        });
        // Every tick is run or, on a loaded machine, skipped as late (or the clock says the
        // duration is over first): never more than 20.
        assert_eq!(reason.unwrap(), StopReason::Duration);
        assert!(
            ticks >= 1 && ticks + t.skipped <= 20,
            "{ticks} run, {} skipped",
            t.skipped
        );
        let mut t = Ticker::new(1000);
        let reason = t.run(&never, |_| Ok(Flow::Stop(StopReason::ProcessExited)));
        assert_eq!(reason.unwrap(), StopReason::ProcessExited);
        let failed = Ticker::new(1000).run(&never, |_| anyhow::bail!("disk full"));
        assert_eq!(failed.unwrap_err().to_string(), "disk full");
        let stop = AtomicBool::new(true);
        let reason = Ticker::new(1000).run(&stop, |_| unreachable!("no tick after a stop"));
        assert_eq!(reason.unwrap(), StopReason::Interrupted);
    }

    #[test]
    fn a_duration_ends_after_its_ticks_even_a_huge_one() {
        let mut t = Ticker::for_duration(100, &RecordDuration::Seconds(1));
        assert_eq!(t.period(), Duration::from_millis(10));
        for _ in 0..100 {
            assert!(!t.finished());
            t.next += 1;
        }
        assert!(t.finished());
        // Wall time: however few ticks were taken, the duration ends on time.
        let mut late = Ticker::for_duration(10, &RecordDuration::Seconds(1));
        late.start -= Duration::from_millis(1100);
        assert!(late.finished() && late.next == 0);
        let huge = Ticker::for_duration(1_000_000, &RecordDuration::Seconds(u64::MAX));
        assert!(!huge.finished(), "no overflow");
        assert!(!Ticker::for_duration(100, &RecordDuration::Unlimited).finished());
    }
}
