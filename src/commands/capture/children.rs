//! `--subprocesses`: finding the profiled program's descendants while it is sampled and
//! attaching to those that run Python, one try per scan so that sampling the others is not
//! held up (the policy is `AttachPolicy::DESCENDANT`).

use anyhow::Result;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::process::{register, Attached};
use super::sink::SampleSink;
use crate::capture::attach::AttachPolicy;
use crate::capture::os::proc;
use crate::capture::spy::PythonSpy;
use crate::model::config::Config;
use crate::model::trace::Pid;

/// How often descendants are looked for.
const SCAN_EVERY: Duration = Duration::from_millis(500);

pub(crate) struct Descendants {
    root: Pid,
    /// Processes attached (the root included).
    known: HashSet<Pid>,
    /// Attempts at each descendant not attached yet, and whether they are given up.
    tries: HashMap<Pid, (u64, bool)>,
    last_scan: Instant,
}

impl Descendants {
    pub fn new(root: Pid) -> Descendants {
        Descendants {
            root,
            known: HashSet::from([root]),
            tries: HashMap::new(),
            last_scan: Instant::now(),
        }
    }

    /// Processes attached so far, the root included.
    pub fn attached(&self) -> usize {
        self.known.len()
    }

    /// If a scan is due, attach to new Python descendants: each is registered in the
    /// session under its parent and added to `procs`.
    pub fn scan(
        &mut self,
        config: &Config,
        writer: &mut impl SampleSink,
        procs: &mut Vec<Attached>,
    ) -> Result<()> {
        if self.last_scan.elapsed() < SCAN_EVERY {
            return Ok(());
        }
        self.last_scan = Instant::now();
        for (pid, parent) in proc::descendants(self.root) {
            if self.known.contains(&pid) {
                continue;
            }
            let (tries, failed) = self.tries.entry(pid).or_insert((0, false));
            if *failed {
                continue;
            }
            *tries += 1;
            let attached = PythonSpy::new(pid, config).map_err(|e| {
                *failed = AttachPolicy::DESCENDANT.is_final(&e, *tries, Duration::ZERO);
            });
            if let Ok(spy) = attached {
                register(writer, &spy, Some(parent))?;
                self.known.insert(pid);
                procs.push(Attached::new(spy));
            }
        }
        Ok(())
    }
}
