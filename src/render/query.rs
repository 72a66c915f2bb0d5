//! `py-spy query` results written as an aligned table, CSV or JSON, row by row as they come.

use anyhow::Result;
use std::io::Write;

use super::table::{csv_quote as csv_field, TableFormat};
use crate::analyze::sql::SqlValue;

/// Rows a table waits for before fixing its column widths (later rows are padded to them,
/// or overflow them).
const WIDTH_SAMPLE: usize = 1000;

/// Writes one result set in a format.
pub struct QueryWriter<'a> {
    out: &'a mut dyn Write,
    format: TableFormat,
    names: Vec<String>,
    /// A table's first rows, held until the widths are known.
    held: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    rows: u64,
}

impl<'a> QueryWriter<'a> {
    pub fn new(out: &'a mut dyn Write, format: TableFormat) -> QueryWriter<'a> {
        QueryWriter {
            out,
            format,
            names: Vec::new(),
            held: Vec::new(),
            widths: None,
            rows: 0,
        }
    }

    pub fn header(&mut self, names: &[String]) -> Result<()> {
        self.names = names.to_vec();
        match self.format {
            TableFormat::Csv => {
                let fields: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
                writeln!(self.out, "{}", fields.join(","))?;
            }
            TableFormat::Json => write!(self.out, "[")?,
            TableFormat::Table => {}
        }
        Ok(())
    }

    pub fn row(&mut self, values: &[SqlValue]) -> Result<()> {
        self.rows += 1;
        match self.format {
            TableFormat::Csv => {
                let fields: Vec<String> = values.iter().map(|v| csv_field(&text(v))).collect();
                writeln!(self.out, "{}", fields.join(","))?;
            }
            TableFormat::Json => {
                let object: serde_json::Map<String, serde_json::Value> = self
                    .names
                    .iter()
                    .cloned()
                    .zip(values.iter().map(json))
                    .collect();
                let sep = if self.rows == 1 { "\n  " } else { ",\n  " };
                write!(self.out, "{sep}{}", serde_json::Value::Object(object))?;
            }
            TableFormat::Table => {
                let cells: Vec<String> = values.iter().map(text).collect();
                if self.widths.is_some() {
                    self.write_cells(&cells)?;
                } else {
                    self.held.push(cells);
                    if self.held.len() >= WIDTH_SAMPLE {
                        self.fix_widths()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The end of the results; returns the number of rows.
    pub fn finish(mut self) -> Result<u64> {
        match self.format {
            TableFormat::Json => writeln!(self.out, "{}]", if self.rows > 0 { "\n" } else { "" })?,
            TableFormat::Table if self.widths.is_none() => self.fix_widths()?,
            _ => {}
        }
        self.out.flush()?;
        Ok(self.rows)
    }

    fn fix_widths(&mut self) -> Result<()> {
        let mut widths: Vec<usize> = self.names.iter().map(|n| n.chars().count()).collect();
        for row in &self.held {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count()).min(60);
            }
        }
        let names = self.names.clone();
        self.widths = Some(widths);
        self.write_cells(&names)?;
        let rule: Vec<String> = self
            .widths
            .iter()
            .flatten()
            .map(|w| "-".repeat(*w))
            .collect();
        self.write_cells(&rule)?;
        for row in std::mem::take(&mut self.held) {
            self.write_cells(&row)?;
        }
        Ok(())
    }

    fn write_cells(&mut self, cells: &[String]) -> Result<()> {
        let widths = self.widths.as_deref().unwrap_or(&[]);
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(self.out, "{}", line.join("  ").trim_end())?;
        Ok(())
    }
}

/// A value as text: NULL as `NULL`, a blob as `x'HEX'` (its first 32 bytes).
fn text(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(r) => r.to_string(),
        SqlValue::Text(t) => t.replace(['\n', '\r', '\t'], " "),
        SqlValue::Blob(b) => {
            let hex: String = b.iter().take(32).map(|x| format!("{x:02x}")).collect();
            let more = if b.len() > 32 { "…" } else { "" };
            format!("x'{hex}{more}'")
        }
    }
}

fn json(v: &SqlValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(*i),
        SqlValue::Real(r) => Value::from(*r),
        SqlValue::Text(t) => Value::from(t.as_str()),
        SqlValue::Blob(b) => Value::from(b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
    }
}
