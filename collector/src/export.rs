//! `sipsensor-collector export`: one sensor's samples (or gaps, events, or
//! coverage ranges) in a time range as CSV or JSON, streamed page by page
//! so any range fits in constant memory.

use crate::storage::{
    COVERAGE_SCAN_LIMIT, CoverageQuery, CoverageRange, Order, SampleKey, SampleQuery, Sensor,
    SensorId, Storage, StorageError, each_coverage_range,
};
use crate::timefmt::format_rfc3339;
use serde::Serialize;
use std::io::Write;

/// Rows fetched per query.
const PAGE: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Samples,
    Gaps,
    Events,
    /// Ranges of live, resent and backfilled readings and of gaps by
    /// cause (`GET /api/sensors/{id}/coverage`).
    Coverage,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "no sensor {0:?} (give its id or its address of record, e.g. sip:sensor-0001@example.net)"
    )]
    UnknownSensor(String),
    #[error("--from must not be after --to")]
    BadRange,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot write the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Sensor id or address of record.
    pub sensor: String,
    pub from_ns: i64,
    /// Exclusive.
    pub to_ns: i64,
    pub format: Format,
    pub kind: Kind,
}

pub async fn resolve_sensor(storage: &dyn Storage, key: &str) -> Result<Sensor, ExportError> {
    let found = match key.parse::<i64>() {
        Ok(id) => storage.sensor(SensorId(id)).await?,
        Err(_) => storage.sensor_by_aor(key).await?,
    };
    found.ok_or_else(|| ExportError::UnknownSensor(key.to_string()))
}

#[derive(Serialize)]
struct SampleRow<'a> {
    time: String,
    ts_ns: i64,
    sensor: &'a str,
    session: i64,
    channel: u16,
    name: &'a str,
    unit: &'a str,
    seq: i64,
    index: u32,
    raw: i64,
    value: f64,
    /// `live`, `resent` or `backfilled`: how the sample came.
    source: &'static str,
}

/// A gap's cause (`expired`: can never come back; the others: missing,
/// may still be backfilled).
#[derive(Serialize)]
struct GapRow<'a> {
    sensor: &'a str,
    from: String,
    to: String,
    from_ns: i64,
    to_ns: i64,
    session: Option<i64>,
    samples: i64,
    cause: &'static str,
}

#[derive(Serialize)]
struct EventRow<'a> {
    time: String,
    ts_ns: i64,
    sensor: &'a str,
    session: i64,
    channel: u16,
    seq: i64,
    index: u32,
    value: i64,
}

/// A range of the sensor's timeline: readings `from..=to` of a `kind`
/// (`live`, `resent`, `backfilled`), or `missing` strictly between `from`
/// and `to` with its `cause`. The export names the sensor in each row; the
/// API (`http/coverage.rs`), once for the answer.
#[derive(Serialize)]
pub(crate) struct CoverageRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sensor: Option<&'a str>,
    kind: &'static str,
    from: String,
    to: String,
    from_ns: i64,
    to_ns: i64,
    instants: i64,
    resent: i64,
    cause: Option<&'static str>,
}

impl<'a> CoverageRow<'a> {
    pub(crate) fn new(sensor: Option<&'a str>, r: &CoverageRange) -> Self {
        CoverageRow {
            sensor,
            kind: r.kind.as_str(),
            from: format_rfc3339(r.from_ns),
            to: format_rfc3339(r.to_ns),
            from_ns: r.from_ns,
            to_ns: r.to_ns,
            instants: r.instants,
            resent: r.resent,
            cause: r.cause.map(|c| c.as_str()),
        }
    }
}

/// Writes rows either as CSV (header from the field names) or as one JSON
/// array, streamed.
enum Sink<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Json { out: W, first: bool },
}

impl<W: Write> Sink<W> {
    fn new(format: Format, mut out: W) -> Result<Self, ExportError> {
        Ok(match format {
            Format::Csv => Sink::Csv(Box::new(csv::Writer::from_writer(out))),
            Format::Json => {
                out.write_all(b"[")?;
                Sink::Json { out, first: true }
            }
        })
    }

    fn row<T: Serialize>(&mut self, row: &T) -> Result<(), ExportError> {
        match self {
            Sink::Csv(w) => w.serialize(row)?,
            Sink::Json { out, first } => {
                out.write_all(if *first { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, row)?;
                *first = false;
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), ExportError> {
        match self {
            Sink::Csv(mut w) => w.flush()?,
            Sink::Json { mut out, first } => {
                out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// Writes the export to `out`; returns the number of rows.
pub async fn export<W: Write>(
    storage: &dyn Storage,
    req: &ExportRequest,
    out: W,
) -> Result<u64, ExportError> {
    if req.from_ns > req.to_ns {
        return Err(ExportError::BadRange);
    }
    let sensor = resolve_sensor(storage, &req.sensor).await?;
    let mut sink = Sink::new(req.format, out)?;
    let mut rows = 0u64;
    match req.kind {
        Kind::Samples => {
            let mut after: Option<SampleKey> = None;
            loop {
                let page = storage
                    .samples(&SampleQuery {
                        sensor: sensor.id,
                        from_ns: req.from_ns,
                        to_ns: req.to_ns,
                        limit: PAGE,
                        order: Order::Asc,
                        after,
                    })
                    .await?;
                for s in &page {
                    sink.row(&SampleRow {
                        time: format_rfc3339(s.ts_ns),
                        ts_ns: s.ts_ns,
                        sensor: &sensor.aor,
                        session: s.session.0,
                        channel: s.channel,
                        name: &s.name,
                        unit: &s.unit,
                        seq: s.seq,
                        index: s.index,
                        raw: s.raw,
                        value: s.value,
                        source: s.source.as_str(),
                    })?;
                }
                rows += page.len() as u64;
                match page.last() {
                    Some(last) if page.len() == PAGE as usize => after = Some(last.key()),
                    _ => break,
                }
            }
        }
        Kind::Gaps => {
            for g in storage.gaps(sensor.id, req.from_ns, req.to_ns).await? {
                sink.row(&GapRow {
                    sensor: &sensor.aor,
                    from: format_rfc3339(g.from_ns),
                    to: format_rfc3339(g.to_ns),
                    from_ns: g.from_ns,
                    to_ns: g.to_ns,
                    session: g.session.map(|s| s.0),
                    samples: g.samples,
                    cause: g.cause.as_str(),
                })?;
                rows += 1;
            }
        }
        Kind::Coverage => {
            let q = CoverageQuery {
                sensor: sensor.id,
                from_ns: req.from_ns,
                to_ns: req.to_ns,
                limit: PAGE,
                scan_limit: COVERAGE_SCAN_LIMIT,
            };
            each_coverage_range(storage, q, |r| {
                rows += 1;
                sink.row(&CoverageRow::new(Some(&sensor.aor), &r))
            })
            .await?;
        }
        Kind::Events => {
            for e in storage.events(sensor.id, req.from_ns, req.to_ns).await? {
                sink.row(&EventRow {
                    time: format_rfc3339(e.ts_ns),
                    ts_ns: e.ts_ns,
                    sensor: &sensor.aor,
                    session: e.session.0,
                    channel: e.channel,
                    seq: e.seq,
                    index: e.index,
                    value: e.value,
                })?;
                rows += 1;
            }
        }
    }
    sink.finish()?;
    Ok(rows)
}
