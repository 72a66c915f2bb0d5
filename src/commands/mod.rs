//! The commands, apart from parsing arguments: the only place that chains the layers
//! (capture → store → analyze → render). One module per command; this file holds what they
//! share (stopping cleanly on Ctrl-C, naming output files).

pub mod analyze;
pub mod capture;
pub mod dump;
pub mod info;
pub mod output;
pub mod query;
pub mod record;
pub mod render;
pub mod top;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use capture::Launch;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Make SIGINT (Ctrl-C) and SIGTERM end a capture cleanly instead of killing the process;
/// returns the flag they set.
pub fn install_stop_handler() -> &'static AtomicBool {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    &STOP
}

/// Where a command keeps its session: the path it was asked to keep it at, or a temporary
/// file (removed, with SQLite's side files, when this is dropped).
pub struct SessionPath {
    pub path: PathBuf,
    temporary: bool,
}

impl SessionPath {
    /// `keep`, or a fresh temporary file. A path that cannot hold a session is refused here,
    /// before anything is started.
    pub fn new(keep: Option<&Path>) -> anyhow::Result<SessionPath> {
        if let Some(p) = keep {
            crate::store::schema::session_target(p)?;
            return Ok(SessionPath {
                path: p.to_path_buf(),
                temporary: false,
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("py-spy-{}-{nanos}.pyspy", std::process::id());
        let dir = std::env::temp_dir();
        if !crate::store::schema::writable(&dir) {
            anyhow::bail!(
                "the session is written to a temporary file first, and the temporary folder {} \
                 is not writable: set TMPDIR to a writable folder, or keep the session with \
                 --session FILE",
                dir.display()
            );
        }
        Ok(SessionPath {
            path: dir.join(name),
            temporary: true,
        })
    }
}

impl Drop for SessionPath {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
            for side in crate::store::schema::side_files(&self.path) {
                let _ = std::fs::remove_file(side);
            }
        }
    }
}

/// The width of the rule between processes in a dump: the terminal's when standard output
/// is one (as py-spy draws it), else 79.
pub fn rule_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a winsize into `ws` only.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    79
}

/// Local time as `YYYY-MM-DDTHH:MM:SS±HH:MM`, for default file names (as py-spy names them).
pub fn local_timestamp() -> String {
    // SAFETY: localtime_r writes only into `tm`.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return now.to_string();
        }
        let off = tm.tm_gmtoff / 60;
        let zone = if off == 0 {
            "Z".to_string()
        } else {
            format!(
                "{}{:02}:{:02}",
                if off < 0 { '-' } else { '+' },
                off.abs() / 60,
                off.abs() % 60
            )
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec
        )
    }
}

/// py-spy's default output name: `PROGRAM-TIME.EXT` or `PID-TIME.EXT`.
pub fn default_output(launch: &Launch, ext: &str) -> PathBuf {
    let name = match launch {
        Launch::Spawn(argv) => argv
            .first()
            .map(|p| {
                Path::new(p)
                    .file_name()
                    .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "unknown".into()),
        Launch::Attach(pid) => pid.to_string(),
    };
    PathBuf::from(format!("{name}-{}.{ext}", local_timestamp()))
}
