//! The session's `meta` table as types: what a capture knew when it started
//! ([`CaptureStart`]) and how it ended ([`CaptureEnd`]). The writer stores them as the
//! key/value rows `docs/session-format.md` lists; the reader parses them back into
//! [`SessionMeta`], leniently (a killed capture has no end; a damaged value reads as absent),
//! keeping every row as it was for tools that show the raw table.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::model::config::{LockingStrategy, RecordDuration};

/// How samples were taken: the `options` key, as JSON (older files also hold a `progress`
/// flag there, which is ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingOptions {
    /// Snapshots per second requested.
    pub rate: u64,
    pub duration: RecordDuration,
    /// `Lock` (the target paused while read) or `NonBlocking`.
    pub blocking: LockingStrategy,
    pub native: bool,
    pub subprocesses: bool,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            rate: 100,
            duration: RecordDuration::Unlimited,
            blocking: LockingStrategy::Lock,
            native: false,
            subprocesses: false,
        }
    }
}

/// How the profiled program was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    Attached,
    Spawned,
    /// Read from a core file (`dump --core`, `capture --core`).
    Core,
}

impl Started {
    pub fn as_str(self) -> &'static str {
        match self {
            Started::Attached => "attached",
            Started::Spawned => "spawned",
            Started::Core => "core",
        }
    }
}

/// Written when a capture starts.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureStart {
    pub tool_version: String,
    /// The target's command line.
    pub command_line: String,
    pub started: Started,
    pub pid: i32,
    /// The target's Python version ("3.11.7").
    pub python: String,
    pub host: String,
    pub options: SamplingOptions,
}

/// Written when a capture ends (absent when it was killed).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaptureEnd {
    /// Microseconds from the start to the end of the capture.
    pub end_us: u64,
    pub snapshots: u64,
    pub samples: u64,
    /// Snapshots that failed while the process was alive.
    pub errors: u64,
    /// Thread samples stored as errors (plus failed snapshots before any thread was known).
    pub error_samples: u64,
    /// Snapshots more than a sampling period late.
    pub late_snapshots: u64,
    /// Ticks skipped because sampling fell behind.
    pub skipped_ticks: u64,
    /// `duration`, `interrupted` or `process_exited`.
    pub stop_reason: String,
    pub last_error: Option<String>,
    /// The longest pause of a target for one snapshot, in µs (blocking mode).
    pub longest_pause_us: u64,
    /// Snapshots taken without pausing in blocking mode, because pausing every thread would
    /// have stopped the program too long.
    pub unpaused_snapshots: u64,
}

impl CaptureStart {
    /// The rows this writes (the writer adds `start_unix_us`).
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("tool", "py-spy".to_string()),
            ("tool_version", self.tool_version.clone()),
            ("command_line", self.command_line.clone()),
            ("started", self.started.as_str().to_string()),
            ("pid", self.pid.to_string()),
            ("python", self.python.clone()),
            ("host", self.host.clone()),
            ("rate", self.options.rate.to_string()),
            (
                "options",
                serde_json::to_string(&self.options).unwrap_or_default(),
            ),
        ]
    }
}

impl CaptureEnd {
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("end_us", self.end_us.to_string()),
            ("snapshots", self.snapshots.to_string()),
            ("samples", self.samples.to_string()),
            ("errors", self.errors.to_string()),
            ("error_samples", self.error_samples.to_string()),
            ("late_snapshots", self.late_snapshots.to_string()),
            ("skipped_ticks", self.skipped_ticks.to_string()),
            ("stop_reason", self.stop_reason.clone()),
            ("longest_pause_us", self.longest_pause_us.to_string()),
            ("unpaused_snapshots", self.unpaused_snapshots.to_string()),
        ];
        if let Some(e) = &self.last_error {
            rows.push(("last_error", e.clone()));
        }
        rows
    }
}

/// The meta table of an open session.
#[derive(Debug, Clone, Default)]
pub struct SessionMeta {
    /// The time base: samples' times are microseconds after this (Unix time, µs).
    pub start_unix_us: u64,
    /// What the capture knew at its start (`None` for a file written by other means, such as
    /// a test, without these rows).
    pub start: Option<CaptureStart>,
    /// How the capture ended (`None` while it runs, or when it was killed).
    pub end: Option<CaptureEnd>,
    /// Every row as stored.
    pub rows: BTreeMap<String, String>,
    /// Rows whose value does not parse (a damaged or edited file), said for people: what was
    /// found and what is used instead.
    pub damaged: Vec<String>,
}

impl SessionMeta {
    /// Parse the rows of a meta table. Values that do not parse read as absent.
    pub fn from_rows(rows: BTreeMap<String, String>) -> SessionMeta {
        let text = |k: &str| rows.get(k).cloned();
        let num = |k: &str| rows.get(k).and_then(|v| v.parse::<u64>().ok());
        let start = (|| {
            let mut options: SamplingOptions = text("options")
                .and_then(|o| serde_json::from_str(&o).ok())
                .unwrap_or_default();
            if let Some(rate) = num("rate").filter(|r| *r > 0) {
                options.rate = rate;
            }
            options.rate = options.rate.max(1);
            Some(CaptureStart {
                tool_version: text("tool_version").unwrap_or_default(),
                command_line: text("command_line").unwrap_or_default(),
                started: match text("started")?.as_str() {
                    "spawned" => Started::Spawned,
                    "core" => Started::Core,
                    _ => Started::Attached,
                },
                pid: text("pid")?.parse().ok()?,
                python: text("python").unwrap_or_default(),
                host: text("host").unwrap_or_default(),
                options,
            })
        })();
        let end = num("end_us").map(|end_us| CaptureEnd {
            end_us,
            snapshots: num("snapshots").unwrap_or(0),
            samples: num("samples").unwrap_or(0),
            errors: num("errors").unwrap_or(0),
            error_samples: num("error_samples").unwrap_or(0),
            late_snapshots: num("late_snapshots").unwrap_or(0),
            skipped_ticks: num("skipped_ticks").unwrap_or(0),
            stop_reason: text("stop_reason").unwrap_or_default(),
            last_error: text("last_error"),
            longest_pause_us: num("longest_pause_us").unwrap_or(0),
            unpaused_snapshots: num("unpaused_snapshots").unwrap_or(0),
        });
        let mut damaged = Vec::new();
        for key in [
            "start_unix_us",
            "pid",
            "end_us",
            "snapshots",
            "samples",
            "errors",
            "error_samples",
            "late_snapshots",
            "skipped_ticks",
        ] {
            if let Some(v) = rows.get(key).filter(|v| v.parse::<u64>().is_err()) {
                damaged.push(format!("{key} '{v}' is not a count; it is left out"));
            }
        }
        if let Some(v) = rows
            .get("rate")
            .filter(|v| !v.parse::<u64>().is_ok_and(|r| r > 0))
        {
            let used = start.as_ref().map_or(100, |s| s.options.rate);
            damaged.push(format!(
                "rate '{v}' is not a number of samples per second; {used} is used"
            ));
        }
        if let Some(v) = rows
            .get("options")
            .filter(|o| serde_json::from_str::<SamplingOptions>(o).is_err())
        {
            damaged.push(format!("options '{v}' do not parse; defaults are used"));
        }
        SessionMeta {
            start_unix_us: num("start_unix_us").unwrap_or(0),
            start,
            end,
            rows,
            damaged,
        }
    }

    /// Snapshots per second requested (100, py-spy's default, when the file does not say).
    pub fn rate(&self) -> u64 {
        self.start.as_ref().map_or(100, |s| s.options.rate)
    }

    /// Whether the capture followed subprocesses.
    pub fn subprocesses(&self) -> bool {
        self.start.as_ref().is_some_and(|s| s.options.subprocesses)
    }

    /// The capture's length in seconds, when it ended cleanly.
    pub fn duration_s(&self) -> Option<f64> {
        self.end.as_ref().map(|e| e.end_us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> CaptureStart {
        CaptureStart {
            tool_version: "0.5.0".into(),
            command_line: "python app.py".into(),
            started: Started::Spawned,
            pid: 42,
            python: "3.11.7".into(),
            host: "box".into(),
            options: SamplingOptions {
                rate: 250,
                duration: RecordDuration::Seconds(4),
                blocking: LockingStrategy::NonBlocking,
                native: false,
                subprocesses: true,
            },
        }
    }

    fn table(rows: Vec<(&'static str, String)>) -> BTreeMap<String, String> {
        rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    #[test]
    fn rows_read_back_as_written() {
        let end = CaptureEnd {
            end_us: 4_000_123,
            snapshots: 999,
            samples: 3996,
            errors: 1,
            error_samples: 4,
            late_snapshots: 2,
            skipped_ticks: 0,
            stop_reason: "duration".into(),
            last_error: Some("gone".into()),
            longest_pause_us: 1_234,
            unpaused_snapshots: 5,
        };
        let mut rows = start().rows();
        rows.extend(end.rows());
        rows.push(("start_unix_us", "1700000000000000".into()));
        let meta = SessionMeta::from_rows(table(rows));
        assert_eq!(meta.start, Some(start()));
        assert_eq!(meta.end, Some(end));
        assert_eq!(meta.start_unix_us, 1_700_000_000_000_000);
        assert_eq!(meta.rate(), 250);
        assert!(meta.subprocesses());
    }

    #[test]
    fn killed_old_or_damaged_files_read_leniently() {
        // A capture killed before its end, with an older options JSON (UI flag included).
        let mut rows = table(start().rows());
        rows.insert(
            "options".into(),
            r#"{"rate":250,"duration":"Unlimited","blocking":"Lock","native":false,"subprocesses":false,"progress":true}"#.into(),
        );
        let meta = SessionMeta::from_rows(rows.clone());
        assert!(meta.end.is_none());
        let s = meta.start.unwrap();
        assert_eq!(s.options.duration, RecordDuration::Unlimited);
        assert_eq!(s.options.blocking, LockingStrategy::Lock);
        // Damaged values: a rate of zero or text falls back, garbage JSON gives defaults.
        assert!(SessionMeta::from_rows(rows.clone()).damaged.is_empty());
        rows.insert("rate".into(), "0".into());
        rows.insert("options".into(), "{not json".into());
        let meta = SessionMeta::from_rows(rows.clone());
        assert_eq!(meta.rate(), 100);
        assert_eq!(
            meta.damaged,
            [
                "rate '0' is not a number of samples per second; 100 is used",
                "options '{not json' do not parse; defaults are used"
            ]
        );
        rows.insert("end_us".into(), "soon".into());
        assert!(SessionMeta::from_rows(rows).end.is_none());
        assert_eq!(SessionMeta::from_rows(BTreeMap::new()).rate(), 100);
    }
}
