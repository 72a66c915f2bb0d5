//! The one attach policy: when a failed [`PythonSpy::new`] is worth another try, and when it
//! is final. A process that is gone or that we may not read is final at once; "not Python"
//! and "unsupported version" are final once they have lasted [`AttachPolicy::settle`] (a
//! program just started may exec Python, or load libpython, a moment later); anything else
//! (an interpreter still initialising, a stack caught mid-change) is tried again until the
//! policy's tries or time run out.

use anyhow::Result;
use std::time::{Duration, Instant};

use super::errors::AttachError;
use super::spy::PythonSpy;
use crate::model::config::Config;
use crate::model::trace::Pid;

/// How hard to try attaching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttachPolicy {
    /// Attempts before giving up.
    pub max_tries: u64,
    /// Time before giving up, from the first attempt.
    pub deadline: Duration,
    /// How long "not Python" or "unsupported version" must last to be final (`None`: never
    /// final, only tries and time end the attempts).
    pub settle: Option<Duration>,
    /// Wait between attempts.
    pub pause: Duration,
    /// Take one sample before calling the process attached (py-spy's `retry_new` does).
    pub first_sample: bool,
}

impl AttachPolicy {
    /// A process that is already running (`--pid`): its answer is what it is.
    pub const RUNNING: AttachPolicy = AttachPolicy {
        max_tries: 3,
        deadline: Duration::from_secs(10),
        settle: Some(Duration::ZERO),
        pause: Duration::from_millis(20),
        first_sample: false,
    };

    /// A program we just started: it loads and initialises Python for a while.
    pub const STARTING: AttachPolicy = AttachPolicy {
        max_tries: u64::MAX,
        deadline: Duration::from_secs(20),
        settle: Some(Duration::from_secs(5)),
        pause: Duration::from_millis(5),
        first_sample: false,
    };

    /// A descendant found while sampling (`--subprocesses`): one try per scan of the process
    /// tree, so the samples of the others are not held up; a few scans before deciding.
    pub const DESCENDANT: AttachPolicy = AttachPolicy {
        max_tries: 6,
        deadline: Duration::from_secs(60),
        settle: None,
        pause: Duration::ZERO,
        first_sample: false,
    };

    /// py-spy 0.4's `retry_new(pid, config, max_retries)`.
    pub fn retries(max_retries: u64) -> AttachPolicy {
        AttachPolicy {
            max_tries: max_retries.max(1),
            deadline: Duration::MAX,
            settle: None,
            pause: Duration::from_millis(20),
            first_sample: true,
        }
    }

    /// Whether `err`, after `tries` attempts over `elapsed`, ends the attempts.
    pub fn is_final(&self, err: &anyhow::Error, tries: u64, elapsed: Duration) -> bool {
        // Gone or forbidden: final at once; an answer, once it lasted `settle`.
        let by_kind = match kind(err) {
            Some(e) if e.is_answer() => self.settle.is_some_and(|s| elapsed >= s),
            Some(_) => true,
            None => false,
        };
        by_kind || tries >= self.max_tries || elapsed >= self.deadline
    }

    /// Attach to `pid` under this policy. `give_up` is asked after each failed attempt: a
    /// reason it returns (the program exited, the user asked to stop) ends the attempts, with
    /// the last error under that reason.
    pub fn attach(
        &self,
        pid: Pid,
        config: &Config,
        give_up: &mut dyn FnMut() -> Option<String>,
    ) -> Result<PythonSpy> {
        let begin = Instant::now();
        let mut tries = 0;
        // The last "not Python" or "unsupported" answer: when the program then exits, that
        // is what the user needs to hear, not that it is gone.
        let mut telling: Option<anyhow::Error> = None;
        loop {
            let attempt = PythonSpy::new(pid, config).and_then(|mut spy| {
                if self.first_sample {
                    spy.get_stack_traces()?;
                }
                Ok(spy)
            });
            let err = match attempt {
                Ok(spy) => return Ok(spy),
                Err(e) => e,
            };
            tries += 1;
            let err = match kind(&err) {
                Some(e) if e.is_gone() => telling.take().unwrap_or(err),
                _ => err,
            };
            if let Some(reason) = give_up() {
                return Err(err.context(reason));
            }
            if self.is_final(&err, tries, begin.elapsed()) {
                return Err(err);
            }
            if kind(&err).is_some_and(AttachError::is_answer) {
                telling = Some(err);
            }
            std::thread::sleep(self.pause);
        }
    }
}

fn kind(err: &anyhow::Error) -> Option<&AttachError> {
    err.downcast_ref::<AttachError>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::python::version::Version;

    #[test]
    fn what_ends_the_attempts() {
        let gone = anyhow::Error::from(AttachError::NoSuchProcess(1));
        let denied = anyhow::Error::from(AttachError::PermissionDenied(1));
        let not_python = anyhow::Error::from(AttachError::NotPython {
            pid: 1,
            exe: "sh".into(),
        });
        let old = anyhow::Error::from(AttachError::UnsupportedVersion {
            pid: 1,
            version: Version::new(3, 5, 0),
        });
        let starting = anyhow::anyhow!("the interpreter is not initialised yet");
        let now = Duration::ZERO;
        for p in [
            AttachPolicy::RUNNING,
            AttachPolicy::STARTING,
            AttachPolicy::DESCENDANT,
            AttachPolicy::retries(10),
        ] {
            assert!(p.is_final(&gone, 1, now) && p.is_final(&denied, 1, now));
            assert!(!p.is_final(&starting, 1, now), "{p:?}");
            assert!(p.is_final(&starting, p.max_tries, now));
        }
        // A running process's "not Python" is its answer; a starting program's must last.
        assert!(AttachPolicy::RUNNING.is_final(&not_python, 1, now));
        assert!(!AttachPolicy::STARTING.is_final(&old, 1, Duration::from_secs(1)));
        assert!(AttachPolicy::STARTING.is_final(&old, 1, Duration::from_secs(6)));
        assert!(AttachPolicy::STARTING.is_final(&starting, 9, Duration::from_secs(21)));
        assert!(!AttachPolicy::retries(10).is_final(&not_python, 9, Duration::from_secs(60)));
    }

    #[test]
    fn a_process_that_is_not_there_fails_at_once() {
        let begin = Instant::now();
        let err = AttachPolicy::STARTING
            .attach(i32::MAX - 1, &Config::default(), &mut || None)
            .err()
            .expect("attaching fails");
        assert!(matches!(
            err.downcast_ref::<AttachError>(),
            Some(AttachError::NoSuchProcess(_))
        ));
        assert!(begin.elapsed() < Duration::from_secs(1));
        let mut asked = 0;
        let err = AttachPolicy::retries(50)
            .attach(std::process::id() as Pid, &Config::default(), &mut || {
                asked += 1;
                Some("stopped".into())
            })
            .err()
            .expect("attaching fails");
        assert_eq!(asked, 1, "give_up is asked after the first failure");
        assert!(format!("{err:#}").starts_with("stopped: "), "{err:#}");
    }
}
