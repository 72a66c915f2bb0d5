//! `analyze --timeline` written as a text chart (one column per time bucket, one digit per
//! share), CSV or JSON (one row per thread and bucket).

use anyhow::Result;
use std::io::Write;

use super::table::{csv_quote, TableFormat};
use crate::analyze::timeline::{Cell, Timeline};

/// One character for a share of a cell's samples: blank without samples, `.` for none,
/// `1`–`9` for up to 10%–90%, `#` for all or nearly all.
fn level(cell: &Cell, n: u64) -> char {
    if cell.samples == 0 {
        return ' ';
    }
    let share = n as f64 / cell.samples as f64;
    match share {
        s if s <= 0.0 => '.',
        s if s >= 0.95 => '#',
        s => char::from_digit(((s * 10.0).ceil() as u32).clamp(1, 9), 10).unwrap_or('?'),
    }
}

pub fn write_timeline(out: &mut dyn Write, tl: &Timeline, format: TableFormat) -> Result<()> {
    match format {
        TableFormat::Table => write_chart(out, tl),
        TableFormat::Csv => {
            writeln!(out, "thread,start_s,end_s,samples,active,idle,gil,errors")?;
            for (label, row) in tl.threads.iter().zip(&tl.cells) {
                let label = csv_quote(label);
                for (i, c) in row.iter().enumerate() {
                    let (start, end) = bounds(tl, i);
                    writeln!(
                        out,
                        "{label},{start:.6},{end:.6},{},{},{},{},{}",
                        c.samples,
                        c.active,
                        c.samples - c.active,
                        c.gil,
                        c.errors
                    )?;
                }
            }
            Ok(())
        }
        TableFormat::Json => {
            let mut rows = Vec::new();
            for (label, row) in tl.threads.iter().zip(&tl.cells) {
                for (i, c) in row.iter().enumerate() {
                    let (start, end) = bounds(tl, i);
                    rows.push(serde_json::json!({
                        "thread": label,
                        "start_s": start,
                        "end_s": end,
                        "samples": c.samples,
                        "active": c.active,
                        "idle": c.samples - c.active,
                        "gil": c.gil,
                        "errors": c.errors,
                    }));
                }
            }
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
            Ok(())
        }
    }
}

/// Bucket `i`'s start and end, in seconds.
fn bounds(tl: &Timeline, i: usize) -> (f64, f64) {
    (i as f64 * tl.bucket_s, (i + 1) as f64 * tl.bucket_s)
}

fn write_chart(out: &mut dyn Write, tl: &Timeline) -> Result<()> {
    writeln!(
        out,
        "Thread activity, {} columns of {:.3} s (0 to {:.2} s): share of samples running \
         (active) and holding the GIL; . none, 1-9 up to 10%-90%, # all",
        tl.buckets,
        tl.bucket_s,
        tl.buckets as f64 * tl.bucket_s
    )?;
    for (label, row) in tl.threads.iter().zip(&tl.cells) {
        let active: String = row.iter().map(|c| level(c, c.active)).collect();
        let gil: String = row.iter().map(|c| level(c, c.gil)).collect();
        writeln!(out, "{label}")?;
        writeln!(out, "  active |{active}|")?;
        writeln!(out, "  gil    |{gil}|")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        let c = |samples, n| {
            level(
                &Cell {
                    samples,
                    active: n,
                    gil: 0,
                    errors: 0,
                },
                n,
            )
        };
        assert_eq!(c(0, 0), ' ');
        assert_eq!(c(10, 0), '.');
        assert_eq!(c(10, 1), '1');
        assert_eq!(c(10, 5), '5');
        assert_eq!(c(100, 91), '9');
        assert_eq!(c(10, 10), '#');
        assert_eq!(c(100, 1), '1');
    }
}
