//! Mapping between records and rows: bind values, column lists, and decoding a row back into a
//! [`CallRecord`] or [`CallBrief`]. A row that does not decode is reported as
//! [`StoreError::Corrupt`] naming the call, never a panic.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;

use crate::quality::report::{Band, Reason};
use crate::store::error::StoreError;
use crate::store::events::CallEvents;
use crate::store::filter::CallBrief;
use crate::store::record::{
    CallQuality, CallRecord, CallStatus, CallTimes, Direction, RecordContext, Recording,
};

/// A value to bind, in `$N` order.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Float(Option<f64>),
    Text(Option<String>),
}

/// SQL text with `$N` placeholders and the values that go with them.
#[derive(Debug, Default)]
pub struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Append a placeholder for `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    /// Append the placeholder of an argument bound earlier (`index` counts from 1).
    pub fn again(&mut self, index: usize) -> &mut Self {
        self.text.push_str(&format!("${index}"));
        self
    }

    pub fn query(&self) -> Query<'_, sqlx::Any, AnyArguments<'_>> {
        bind_all(sqlx::query(&self.text), &self.args)
    }
}

pub fn bind_all<'q>(
    mut q: Query<'q, sqlx::Any, AnyArguments<'q>>,
    args: &[Arg],
) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    for arg in args {
        q = match arg.clone() {
            Arg::Int(v) => q.bind(v),
            Arg::Float(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
        };
    }
    q
}

pub fn int(v: i64) -> Arg {
    Arg::Int(Some(v))
}

pub fn opt_int(v: Option<u64>) -> Arg {
    Arg::Int(v.map(u64_to_i64))
}

pub fn text(v: &str) -> Arg {
    Arg::Text(Some(v.to_owned()))
}

pub fn opt_text(v: Option<&str>) -> Arg {
    Arg::Text(v.map(str::to_owned))
}

pub fn time(t: DateTime<Utc>) -> Arg {
    int(t.timestamp_micros())
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> Arg {
    Arg::Int(t.map(|t| t.timestamp_micros()))
}

pub fn u64_to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn json<T: serde::Serialize>(call_sid: &str, v: &T) -> Result<Arg, StoreError> {
    serde_json::to_string(v)
        .map(|s| Arg::Text(Some(s)))
        .map_err(|e| StoreError::Invalid {
            call_sid: call_sid.to_owned(),
            message: e.to_string(),
        })
}

/// Columns of a brief row (list pages), in the order [`brief`] reads them.
pub const BRIEF_COLUMNS: &str = "call_sid, direction, status, from_number, to_number, \
    agent_profile, engine, campaign_id, contact_id, parameters, started_at_us, answered_at_us, \
    ended_at_us, duration_ms, end_reason, outcome, band, reasons, mos, recording_location";

/// Columns of a whole record: the brief ones and the rest.
pub const RECORD_COLUMNS: &str = "call_sid, direction, status, from_number, to_number, \
    agent_profile, engine, campaign_id, contact_id, parameters, started_at_us, answered_at_us, \
    ended_at_us, duration_ms, end_reason, outcome, band, reasons, mos, recording_location, \
    stream_sid, recording_content_type, quality_report, events";

/// Reads columns of one row, naming the call in every error.
struct Reader<'r> {
    row: &'r AnyRow,
    call_sid: String,
}

impl<'r> Reader<'r> {
    fn new(row: &'r AnyRow) -> Result<Self, StoreError> {
        let call_sid: String = row.try_get("call_sid")?;
        Ok(Self { row, call_sid })
    }

    fn bad(&self, message: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            call_sid: self.call_sid.clone(),
            message: message.to_string(),
        }
    }

    fn text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.row
            .try_get::<Option<String>, _>(col)
            .map_err(|e| self.bad(format!("{col}: {e}")))
    }

    fn int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.row
            .try_get::<Option<i64>, _>(col)
            .map_err(|e| self.bad(format!("{col}: {e}")))
    }

    fn float(&self, col: &str) -> Result<Option<f64>, StoreError> {
        self.row
            .try_get::<Option<f64>, _>(col)
            .map_err(|e| self.bad(format!("{col}: {e}")))
    }

    fn time(&self, col: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.int(col)? {
            None => Ok(None),
            Some(us) => DateTime::from_timestamp_micros(us)
                .map(Some)
                .ok_or_else(|| self.bad(format!("{col}: {us} is out of range"))),
        }
    }

    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>, StoreError> {
        match self.text(col)? {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| self.bad(format!("{col}: {e}"))),
        }
    }

    fn parsed<T>(&self, col: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
        let s = self.text(col)?.unwrap_or_default();
        parse(&s).ok_or_else(|| self.bad(format!("{col}: unknown value {s:?}")))
    }

    fn band(&self) -> Result<Option<Band>, StoreError> {
        match self.text("band")? {
            None => Ok(None),
            Some(s) => Band::ALL
                .into_iter()
                .find(|b| b.as_str() == s)
                .map(Some)
                .ok_or_else(|| self.bad(format!("band: unknown value {s:?}"))),
        }
    }
}

/// One list row.
pub fn brief(row: &AnyRow) -> Result<CallBrief, StoreError> {
    let r = Reader::new(row)?;
    let started_at = r.time("started_at_us")?.ok_or_else(|| r.bad("no start"))?;
    Ok(CallBrief {
        call_sid: r.call_sid.clone(),
        direction: r.parsed("direction", Direction::parse)?,
        status: r.parsed("status", CallStatus::parse)?,
        from: r.text("from_number")?,
        to: r.text("to_number")?,
        context: RecordContext {
            agent_profile: r.text("agent_profile")?,
            engine: r.text("engine")?,
            campaign_id: r.text("campaign_id")?,
            contact_id: r.text("contact_id")?,
            custom_parameters: r.json("parameters")?.unwrap_or_default(),
        },
        times: CallTimes {
            started_at,
            answered_at: r.time("answered_at_us")?,
            ended_at: r.time("ended_at_us")?,
            duration_ms: r.int("duration_ms")?.map(|v| v.max(0) as u64),
        },
        end_reason: r.text("end_reason")?,
        outcome: r.text("outcome")?,
        band: r.band()?,
        reasons: r.json::<Vec<Reason>>("reasons")?.unwrap_or_default(),
        mos: r.float("mos")?,
        has_recording: r.text("recording_location")?.is_some(),
    })
}

/// One whole record.
pub fn record(row: &AnyRow) -> Result<CallRecord, StoreError> {
    let b = brief(row)?;
    let r = Reader::new(row)?;
    let quality = match (b.band, r.json::<serde_json::Value>("quality_report")?) {
        (Some(band), report) => Some(CallQuality {
            band,
            reasons: b.reasons.clone(),
            mos: b.mos.unwrap_or(1.0),
            report: report.unwrap_or(serde_json::Value::Null),
        }),
        (None, _) => None,
    };
    let recording = match (
        r.text("recording_location")?,
        r.text("recording_content_type")?,
    ) {
        (Some(location), content_type) => Some(Recording {
            location,
            content_type: content_type.unwrap_or_else(|| "application/octet-stream".into()),
        }),
        (None, _) => None,
    };
    Ok(CallRecord {
        call_sid: b.call_sid,
        stream_sid: r.text("stream_sid")?,
        direction: b.direction,
        status: b.status,
        from: b.from,
        to: b.to,
        context: b.context,
        times: b.times,
        end_reason: b.end_reason,
        outcome: b.outcome,
        quality,
        recording,
        events: r.json::<CallEvents>("events")?.unwrap_or_default(),
    })
}
