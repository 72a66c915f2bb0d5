//! `top`'s screen: the live table laid out as py-spy 0.4's console view lays it out (a
//! header, then `%Own %Total OwnTime TotalTime Function (filename)`), for a terminal of a
//! given size. Plain lines with an emphasis each; drawing them is the terminal's business.

use crate::analyze::live::{LiveSort, LiveTable};

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emphasis {
    Plain,
    /// The column headings (reversed, as py-spy draws them).
    Heading,
    /// Something the user should notice (errors, lag, the program's end).
    Warning,
}

/// One line of the screen, at most the screen's width.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenLine {
    pub text: String,
    pub emphasis: Emphasis,
}

/// What the screen shows.
#[derive(Debug, Clone)]
pub struct TopScreen<'a> {
    /// The profiled program's command line and Python version.
    pub command: &'a str,
    pub python: &'a str,
    pub subprocesses: bool,
    /// Snapshots a second requested.
    pub rate: u64,
    pub table: &'a LiveTable,
    /// Rows by line rather than by function.
    pub lines: bool,
    pub sort: LiveSort,
    /// The one thread shown (its title), or all.
    pub thread: Option<String>,
    pub filter: &'a str,
    /// The filter is being typed.
    pub editing_filter: bool,
    /// The display is frozen while sampling goes on.
    pub paused: bool,
    pub help: bool,
    /// Why sampling ended (the program exited, an error), shown until a key is pressed.
    pub ended: Option<&'a str>,
}

/// py-spy's time format: fewer decimals as the number grows.
pub fn display_time(seconds: f64) -> String {
    if seconds > 1000.0 {
        format!("{seconds:.0}")
    } else if seconds >= 100.0 {
        format!("{seconds:.1}")
    } else if seconds >= 1.0 {
        format!("{seconds:.2}")
    } else {
        format!("{seconds:.3}")
    }
}

fn millis(d: std::time::Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

const KEYS: &[(&str, &str)] = &[
    (
        "1",
        "Sort by %Own (% of time currently spent in the function)",
    ),
    (
        "2",
        "Sort by %Total (% of time currently in the function and its children)",
    ),
    ("3", "Sort by OwnTime (overall time spent in the function)"),
    (
        "4",
        "Sort by TotalTime (overall time in the function and its children)",
    ),
    (
        "L",
        "Toggle between aggregating by line number or by function",
    ),
    (
        "T",
        "Show the next thread alone (all threads, then one at a time)",
    ),
    (
        "/",
        "Show only rows holding a text (Enter keeps it, Esc drops it)",
    ),
    ("P", "Pause the display (sampling goes on)"),
    ("R", "Reset statistics"),
    ("?", "Show or hide this help"),
    ("Q", "Quit (also Control-C)"),
];

/// The screen, exactly `height` lines of at most `width` characters.
pub fn top_screen(s: &TopScreen, width: usize, height: usize) -> Vec<ScreenLine> {
    let t = s.table;
    let mut head = Vec::new();
    let plain = |text: String| ScreenLine {
        text,
        emphasis: Emphasis::Plain,
    };
    let warn = |text: String| ScreenLine {
        text,
        emphasis: Emphasis::Warning,
    };
    head.push(plain(if s.subprocesses {
        format!("Collecting samples from '{}' and subprocesses", s.command)
    } else {
        format!(
            "Collecting samples from '{}' (python v{})",
            s.command, s.python
        )
    }));
    let error_rate = t.error_samples as f64 / t.overall_samples.max(1) as f64;
    if error_rate >= 0.01 && t.overall_samples > 100 {
        head.push(warn(format!(
            "Total Samples {}, Error Rate {:.2}% ({})",
            t.overall_snapshots,
            100.0 * error_rate,
            t.last_error.as_deref().unwrap_or("")
        )));
    } else {
        head.push(plain(format!("Total Samples {}", t.overall_snapshots)));
    }
    head.push(plain(format!(
        "GIL: {:.2}%, Active: {:.2}%, Threads: {}{}",
        t.gil_percent,
        t.active_percent,
        t.threads,
        if s.subprocesses {
            format!(", Processes {}", t.processes)
        } else {
            String::new()
        }
    )));
    let sampling = format!(
        "Sampling {}/s, lag {} (worst {}), {} unreadable stacks",
        s.rate,
        millis(t.last_lag),
        millis(t.worst_lag),
        t.error_samples
    );
    let behind = t.worst_lag > std::time::Duration::from_secs(1);
    head.push(if behind {
        warn(sampling)
    } else {
        plain(sampling)
    });
    let sort = match s.sort {
        LiveSort::CurrentOwn => "%Own",
        LiveSort::CurrentTotal => "%Total",
        LiveSort::OverallOwn => "OwnTime",
        LiveSort::OverallTotal => "TotalTime",
    };
    let mut view = format!(
        "Sort: {sort} · Thread: {} · Filter: {}",
        s.thread.as_deref().unwrap_or("all"),
        if s.filter.is_empty() {
            "none".to_string()
        } else {
            format!("'{}'", s.filter)
        }
    );
    if s.paused {
        view.push_str(" · PAUSED (P resumes)");
    }
    head.push(plain(view));
    head.push(plain(String::new()));

    let function_width = width.saturating_sub(35).max(10);
    let heading = format!(
        "{:>7}{:>8}{:>9}{:>11}{:w$}",
        "%Own ",
        "%Total",
        "OwnTime",
        "TotalTime",
        if s.lines {
            "  Function (filename:line)"
        } else {
            "  Function (filename)"
        },
        w = function_width
    );
    let footer = match (s.ended, s.editing_filter) {
        (Some(why), _) => warn(format!("{why}: press any key to exit")),
        (None, true) => plain(format!(
            "Filter: {}_  (Enter keeps it, Esc drops it)",
            s.filter
        )),
        (None, false) => plain("Press Control-C or Q to quit, or ? for help.".to_string()),
    };

    let mut body = Vec::new();
    let room = height.saturating_sub(head.len() + 3);
    if s.help {
        body.push(plain(" Keyboard Shortcuts ".to_string()));
        body.push(plain(String::new()));
        body.push(plain(format!("{:^12}{}", "key", "action")));
        for (key, action) in KEYS {
            body.push(plain(format!("{key:^12}{action}")));
        }
    } else {
        let per_snapshot = |n: u64| 100.0 * n as f64 / t.current_snapshots.max(1) as f64;
        let seconds = |n: u64| display_time(n as f64 / s.rate.max(1) as f64);
        for row in &t.rows {
            let c = &row.counts;
            let label: String = row
                .label
                .chars()
                .take(function_width.saturating_sub(2))
                .collect();
            body.push(plain(format!(
                "{:>6.2}% {:>6.2}% {:>7}s {:>8}s   {}",
                per_snapshot(c.current_own),
                per_snapshot(c.current_total),
                seconds(c.overall_own),
                seconds(c.overall_total),
                label
            )));
        }
        if t.rows.is_empty() {
            body.push(plain(if t.overall_snapshots == 0 {
                "   (no samples yet)".to_string()
            } else {
                "   (no samples match: idle threads are left out unless --idle is given)"
                    .to_string()
            }));
        }
    }
    body.truncate(room);

    let mut screen = head;
    screen.push(ScreenLine {
        text: heading,
        emphasis: Emphasis::Heading,
    });
    screen.extend(body);
    while screen.len() + 2 < height {
        screen.push(plain(String::new()));
    }
    screen.push(plain(String::new()));
    screen.push(footer);
    screen.truncate(height);
    for line in &mut screen {
        if line.text.chars().count() > width {
            line.text = line.text.chars().take(width).collect();
        }
    }
    screen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::live::{Counts, LiveRow};

    #[test]
    fn fits_an_80_by_24_terminal_and_keeps_py_spy_columns() {
        let table = LiveTable {
            rows: (0..40)
                .map(|i| LiveRow {
                    label: format!("function_{i} (package/module_with_a_long_name_{i}.py)"),
                    counts: Counts {
                        current_own: 50,
                        current_total: 100,
                        overall_own: 250,
                        overall_total: 500,
                    },
                })
                .collect(),
            current_snapshots: 100,
            overall_snapshots: 500,
            threads: 2,
            processes: 1,
            ..LiveTable::default()
        };
        let s = TopScreen {
            command: "python prog.py",
            python: "3.12.1",
            subprocesses: false,
            rate: 100,
            table: &table,
            lines: false,
            sort: LiveSort::OverallOwn,
            thread: None,
            filter: "",
            editing_filter: false,
            paused: false,
            help: false,
            ended: None,
        };
        let screen = top_screen(&s, 80, 24);
        assert_eq!(screen.len(), 24);
        assert!(screen.iter().all(|l| l.text.chars().count() <= 80));
        assert_eq!(
            screen[0].text,
            "Collecting samples from 'python prog.py' (python v3.12.1)"
        );
        assert_eq!(screen[1].text, "Total Samples 500");
        assert_eq!(screen[6].emphasis, Emphasis::Heading);
        assert!(screen[6]
            .text
            .starts_with("  %Own   %Total  OwnTime  TotalTime  Function"));
        assert_eq!(
            screen[7].text,
            " 50.00% 100.00%    2.50s     5.00s   function_0 (package/module_with_a_long_name"
        );
        assert_eq!(
            screen[23].text,
            "Press Control-C or Q to quit, or ? for help."
        );
        // Tiny terminals still get whole lines.
        let small = top_screen(&s, 20, 5);
        assert_eq!(small.len(), 5);
        assert!(small.iter().all(|l| l.text.chars().count() <= 20));
    }
}
