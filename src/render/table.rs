//! The `analyze` table written as text (py-spy `top`'s columns), CSV or JSON.

use anyhow::Result;
use std::io::Write;

use crate::analyze::top::{DiffRow, GroupBy, TopRow, TopTable};

/// How a table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Aligned columns for a terminal: `%Own %Total OwnTime TotalTime Function (filename)`.
    Table,
    Csv,
    /// A list of objects, one per row.
    Json,
}

impl TableFormat {
    pub const ALL: [TableFormat; 3] = [TableFormat::Table, TableFormat::Csv, TableFormat::Json];

    pub fn name(self) -> &'static str {
        match self {
            TableFormat::Table => "table",
            TableFormat::Csv => "csv",
            TableFormat::Json => "json",
        }
    }
}

/// The keys of a row, in order (JSON objects and the CSV header).
const KEYS: [&str; 12] = [
    "function",
    "filename",
    "line",
    "module",
    "thread",
    "process",
    "own_samples",
    "total_samples",
    "own_percent",
    "total_percent",
    "own_seconds",
    "total_seconds",
];

/// Write the first `limit` rows of `table` (all with `None`).
pub fn write_top(
    out: &mut dyn Write,
    table: &TopTable,
    format: TableFormat,
    limit: Option<usize>,
) -> Result<()> {
    let rows = &table.rows[..limit.unwrap_or(usize::MAX).min(table.rows.len())];
    match format {
        TableFormat::Table => write_text(out, table, rows),
        TableFormat::Csv => write_csv(out, table, rows),
        TableFormat::Json => write_json(out, table, rows),
    }
}

fn heading(by: GroupBy) -> &'static str {
    match by {
        GroupBy::Function => "Function (filename:first line)",
        GroupBy::Line => "Function (filename:line)",
        GroupBy::File => "File",
        GroupBy::Module => "Module",
        GroupBy::Thread => "Thread",
        GroupBy::Process => "Process",
    }
}

fn write_text(out: &mut dyn Write, table: &TopTable, rows: &[TopRow]) -> Result<()> {
    writeln!(
        out,
        "{:>8} {:>8} {:>10} {:>10}  {}",
        "%Own",
        "%Total",
        "OwnTime",
        "TotalTime",
        heading(table.by)
    )?;
    for r in rows {
        writeln!(
            out,
            "{:>7.2}% {:>7.2}% {:>9.3}s {:>9.3}s  {}",
            table.percent(r.own_samples),
            table.percent(r.total_samples),
            table.seconds(r.own_samples),
            table.seconds(r.total_samples),
            r.label()
        )?;
    }
    Ok(())
}

/// What a row stands for, as values: function, filename, line, module, thread, process.
fn identity(r: &TopRow) -> [serde_json::Value; 6] {
    use serde_json::Value;
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    [
        text(&r.function),
        text(&r.filename),
        r.line.map_or(Value::Null, Value::from),
        text(&r.module),
        text(&r.thread),
        text(&r.process),
    ]
}

/// `x` rounded to `places` decimals.
fn round(x: f64, places: i32) -> serde_json::Value {
    let k = 10f64.powi(places);
    serde_json::Value::from((x * k).round() / k)
}

/// The row's values, in [`KEYS`] order.
fn values(table: &TopTable, r: &TopRow) -> Vec<serde_json::Value> {
    use serde_json::Value;
    let mut v = identity(r).to_vec();
    v.extend([
        Value::from(r.own_samples),
        Value::from(r.total_samples),
        round(table.percent(r.own_samples), 4),
        round(table.percent(r.total_samples), 4),
        round(table.seconds(r.own_samples), 6),
        round(table.seconds(r.total_samples), 6),
    ]);
    v
}

fn write_json(out: &mut dyn Write, table: &TopTable, rows: &[TopRow]) -> Result<()> {
    let list: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|r| {
            KEYS.iter()
                .map(|k| k.to_string())
                .zip(values(table, r))
                .collect()
        })
        .collect();
    serde_json::to_writer_pretty(&mut *out, &list)?;
    writeln!(out)?;
    Ok(())
}

/// Text as a CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub(crate) fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A value as a CSV field: null as an empty field.
fn csv_field(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => csv_quote(s),
        other => csv_quote(&other.to_string()),
    }
}

fn write_csv(out: &mut dyn Write, table: &TopTable, rows: &[TopRow]) -> Result<()> {
    writeln!(out, "{}", KEYS.join(","))?;
    for r in rows {
        let fields: Vec<String> = values(table, r).iter().map(csv_field).collect();
        writeln!(out, "{}", fields.join(","))?;
    }
    Ok(())
}

/// The keys of a compared row, in order.
const DIFF_KEYS: [&str; 14] = [
    "function",
    "filename",
    "line",
    "module",
    "thread",
    "process",
    "base_own_samples",
    "new_own_samples",
    "base_own_percent",
    "new_own_percent",
    "own_change",
    "base_total_percent",
    "new_total_percent",
    "total_change",
];

/// Write the first `limit` compared rows (`analyze NEW --diff BASE`).
pub fn write_diff_table(
    out: &mut dyn Write,
    by: GroupBy,
    rows: &[DiffRow],
    format: TableFormat,
    limit: Option<usize>,
) -> Result<()> {
    use serde_json::Value;
    let rows = &rows[..limit.unwrap_or(usize::MAX).min(rows.len())];
    let values = |d: &DiffRow| -> Vec<Value> {
        let mut v = identity(&d.row).to_vec();
        v.extend([
            Value::from(d.base_own_samples),
            Value::from(d.row.own_samples),
            round(d.base_own_percent, 4),
            round(d.new_own_percent, 4),
            round(d.own_change(), 4),
            round(d.base_total_percent, 4),
            round(d.new_total_percent, 4),
            round(d.total_change(), 4),
        ]);
        v
    };
    match format {
        TableFormat::Table => {
            writeln!(
                out,
                "{:>9} {:>9} {:>8} {:>10} {:>10}  {}",
                "%Own base",
                "%Own new",
                "Change",
                "%Tot base",
                "%Tot new",
                heading(by)
            )?;
            for d in rows {
                writeln!(
                    out,
                    "{:>8.2}% {:>8.2}% {:>+8.2} {:>9.2}% {:>9.2}%  {}",
                    d.base_own_percent,
                    d.new_own_percent,
                    d.own_change(),
                    d.base_total_percent,
                    d.new_total_percent,
                    d.row.label()
                )?;
            }
        }
        TableFormat::Csv => {
            writeln!(out, "{}", DIFF_KEYS.join(","))?;
            for d in rows {
                let fields: Vec<String> = values(d).iter().map(csv_field).collect();
                writeln!(out, "{}", fields.join(","))?;
            }
        }
        TableFormat::Json => {
            let list: Vec<serde_json::Map<String, Value>> = rows
                .iter()
                .map(|d| {
                    DIFF_KEYS
                        .iter()
                        .map(|k| k.to_string())
                        .zip(values(d))
                        .collect()
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &list)?;
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        use serde_json::Value;
        assert_eq!(csv_field(&Value::from("a,b")), "\"a,b\"");
        assert_eq!(csv_field(&Value::from("say \"hi\"")), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field(&Value::Null), "");
        assert_eq!(csv_field(&Value::from(12)), "12");
    }
}
