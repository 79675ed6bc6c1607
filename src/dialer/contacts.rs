//! Contact uploads: CSV (a header row; `phone` required, `name`, `timezone`, every other
//! column a variable for the agent) or JSON (an array of objects, the same keys, plus an
//! optional `variables` object). Each row is checked on its own: invalid rows are reported
//! with their line number and reason, valid rows are kept.
//!
//! Parsing and validation only; no I/O beyond the bytes handed in.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use super::model::is_e164;
use super::window::zone;

/// Rows accepted in one upload.
pub const MAX_ROWS: usize = 100_000;
/// Variables per contact.
pub const MAX_VARIABLES: usize = 50;
/// Longest variable value, bytes.
pub const MAX_VALUE_LEN: usize = 500;

/// Stream parameters the server sets itself: not usable as variable names.
pub const RESERVED: &[&str] = &[
    "From",
    "To",
    "CallSid",
    "token",
    "direction",
    "agent",
    "campaign_id",
    "contact_id",
    "attempt_id",
];

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub line: u32,
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub variables: BTreeMap<String, String>,
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RowError {
    /// CSV: the file's line (the header is line 1). JSON: the item's position, from 1.
    pub line: u32,
    pub error: String,
}

/// What an upload held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub contacts: Vec<NewContact>,
    pub rejected: Vec<RowError>,
}

/// An upload that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("CSV: {0}")]
    Csv(String),
    #[error("JSON: {0}")]
    Json(String),
    #[error("no `phone` column")]
    NoPhone,
    #[error("column {0:?} is reserved (the server sets it)")]
    Reserved(String),
    #[error("more than {MAX_ROWS} rows")]
    TooMany,
}

/// Parse a CSV upload.
pub fn parse_csv(bytes: &[u8]) -> Result<Parsed, UploadError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| UploadError::Csv(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_owned())
        .collect();
    check_columns(header.iter().map(String::as_str))?;
    let mut rows = Rows::default();
    for (i, record) in reader.records().enumerate() {
        // The file's line, counted from the record's byte offset (the reader's own line count
        // skips blank lines).
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 2, |p| line_at(bytes, p.byte() as usize)) as u32;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.reject(line, format!("unreadable row: {e}"));
                continue;
            }
        };
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() > header.len() {
            rows.reject(
                line,
                format!("{} fields, the header has {}", record.len(), header.len()),
            );
            continue;
        }
        let fields = header.iter().map(String::as_str).zip(record.iter());
        rows.add(line, fields)?;
    }
    Ok(rows.done())
}

/// Parse a JSON upload: `[{"phone": …, "name": …, "timezone": …, "variables": {…}, …}]`.
pub fn parse_json(items: &[serde_json::Value]) -> Result<Parsed, UploadError> {
    let mut rows = Rows::default();
    for (i, item) in items.iter().enumerate() {
        let line = i as u32 + 1;
        let Some(obj) = item.as_object() else {
            rows.reject(line, "not an object".into());
            continue;
        };
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut bad = None;
        for (k, v) in obj {
            if k == "variables" {
                match v.as_object() {
                    Some(vars) => {
                        for (vk, vv) in vars {
                            match scalar(vv) {
                                Some(s) => fields.push((vk.clone(), s)),
                                None => bad = Some(format!("variable {vk:?} is not a scalar")),
                            }
                        }
                    }
                    None => bad = Some("`variables` is not an object".into()),
                }
                continue;
            }
            match scalar(v) {
                Some(s) => fields.push((k.clone(), s)),
                None => bad = Some(format!("{k:?} is not a scalar")),
            }
        }
        if let Some(e) = bad {
            rows.reject(line, e);
            continue;
        }
        if let Some((k, _)) = fields.iter().find(|(k, _)| RESERVED.contains(&k.as_str())) {
            return Err(UploadError::Reserved(k.clone()));
        }
        rows.add(line, fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    }
    Ok(rows.done())
}

/// The 1-based line of the record read from byte `offset` (blank lines before it skipped).
fn line_at(bytes: &[u8], offset: usize) -> usize {
    let mut at = offset.min(bytes.len());
    while at < bytes.len() && matches!(bytes[at], b'\n' | b'\r') {
        at += 1;
    }
    bytes[..at].iter().filter(|b| **b == b'\n').count() + 1
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Null => Some(String::new()),
        _ => None,
    }
}

fn check_columns<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), UploadError> {
    let mut phone = false;
    for name in names {
        phone |= name == "phone";
        if RESERVED.contains(&name) {
            return Err(UploadError::Reserved(name.to_owned()));
        }
    }
    if phone {
        Ok(())
    } else {
        Err(UploadError::NoPhone)
    }
}

#[derive(Default)]
struct Rows {
    parsed: Parsed,
    seen: HashSet<String>,
}

impl Rows {
    fn reject(&mut self, line: u32, error: String) {
        self.parsed.rejected.push(RowError { line, error });
    }

    fn add<'a>(
        &mut self,
        line: u32,
        fields: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), UploadError> {
        if self.parsed.contacts.len() + self.parsed.rejected.len() >= MAX_ROWS {
            return Err(UploadError::TooMany);
        }
        let mut c = NewContact {
            line,
            phone: String::new(),
            name: None,
            timezone: None,
            variables: BTreeMap::new(),
        };
        for (k, v) in fields {
            match k {
                "phone" => {
                    c.phone = v
                        .chars()
                        .filter(|ch| !matches!(ch, ' ' | '-' | '(' | ')' | '.'))
                        .collect()
                }
                "name" if !v.is_empty() => c.name = Some(v.to_owned()),
                "timezone" if !v.is_empty() => c.timezone = Some(v.to_owned()),
                "name" | "timezone" => {}
                _ if k.is_empty() => {}
                _ => {
                    c.variables.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        if c.phone.is_empty() {
            self.reject(line, "phone is missing".into());
        } else if !is_e164(&c.phone) {
            self.reject(
                line,
                format!("phone {:?} is not E.164 (+ and 8–15 digits)", c.phone),
            );
        } else if let Some(tz) = c.timezone.as_deref().filter(|tz| zone(tz).is_none()) {
            self.reject(line, format!("unknown time zone {tz:?}"));
        } else if c.variables.len() > MAX_VARIABLES {
            self.reject(line, format!("more than {MAX_VARIABLES} variables"));
        } else if let Some((k, _)) = c.variables.iter().find(|(_, v)| v.len() > MAX_VALUE_LEN) {
            self.reject(
                line,
                format!("variable {k:?} is longer than {MAX_VALUE_LEN} bytes"),
            );
        } else if !self.seen.insert(c.phone.clone()) {
            self.reject(line, format!("phone {} appears twice", c.phone));
        } else {
            self.parsed.contacts.push(c);
        }
        Ok(())
    }

    fn done(self) -> Parsed {
        self.parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_checked_one_by_one() {
        let csv = "phone,name,timezone,plan\n\
                   +14155550100,Ann,America/Los_Angeles,gold\n\
                   not-a-number,Bob,,silver\n\
                   +1 (415) 555-0101,Cy,,\n\
                   +14155550102,Di,Mars/Olympus,\n\
                   +14155550100,Ann again,,\n\
                   \n\
                   +442079460000,Ed,Europe/London,bronze\n";
        let p = parse_csv(csv.as_bytes()).unwrap();
        let phones: Vec<&str> = p.contacts.iter().map(|c| c.phone.as_str()).collect();
        assert_eq!(phones, ["+14155550100", "+14155550101", "+442079460000"]);
        assert_eq!(p.contacts[0].variables["plan"], "gold");
        assert_eq!(p.contacts[0].line, 2);
        assert_eq!(p.contacts[2].line, 8);
        let lines: Vec<u32> = p.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 5, 6], "{:?}", p.rejected);
        assert!(p.rejected[1].error.contains("time zone"));
        assert!(p.rejected[2].error.contains("twice"));
    }

    #[test]
    fn bad_uploads() {
        assert_eq!(parse_csv(b"name\nAnn\n"), Err(UploadError::NoPhone));
        assert_eq!(
            parse_csv(b"phone,agent\n+14155550100,x\n"),
            Err(UploadError::Reserved("agent".into()))
        );
    }

    #[test]
    fn json_items() {
        let items: Vec<serde_json::Value> = serde_json::from_str(
            r#"[{"phone":"+14155550100","name":"Ann","plan":"gold","variables":{"n":3}},
                {"phone":"12"}, 7, {"phone":"+14155550101","x":{"a":1}}]"#,
        )
        .unwrap();
        let p = parse_json(&items).unwrap();
        assert_eq!(p.contacts.len(), 1);
        assert_eq!(p.contacts[0].variables["n"], "3");
        assert_eq!(p.contacts[0].variables["plan"], "gold");
        let lines: Vec<u32> = p.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 4]);
    }
}
