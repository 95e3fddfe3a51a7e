//! Readings as both backends read them back: one row per sampling instant,
//! expanded into one [`StoredSample`] per channel value for a query, and
//! the text form of the values in SQLite.

use crate::storage::{
    ChannelSpec, ReadingSource, SampleQuery, SensorId, SessionId, StoredSample, scaled,
};
use std::collections::HashMap;
use std::fmt::Write;

/// A stored reading as a range query returns it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReadingRow {
    pub session: SessionId,
    pub seq: i64,
    pub index: u32,
    pub ts_ns: i64,
    pub raws: Vec<Option<i64>>,
    pub source: ReadingSource,
}

/// Rows a backend fetches for `q`: one more than the limit, because the
/// row the after-key names is fetched again (its later channels may not
/// have been returned yet) and may contribute nothing.
pub(crate) fn rows_to_fetch(q: &SampleQuery) -> i64 {
    i64::from(q.limit) + 1
}

/// Expands rows, fetched in `q.order` with `(ts, session, seq, index)` at
/// or past the after-key's, into samples: channels ascending (descending
/// for [`Order::Desc`](crate::storage::Order::Desc)), the channels at or
/// before the key's in its own row skipped, at most `q.limit`.
/// `channels` describes each session; a channel it lacks is still returned,
/// named by its number, unscaled.
pub(crate) fn expand(
    rows: Vec<ReadingRow>,
    q: &SampleQuery,
    channels: &HashMap<SessionId, Vec<ChannelSpec>>,
) -> Vec<StoredSample> {
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(limit.min(rows.len().saturating_mul(4)));
    let descending = matches!(q.order, crate::storage::Order::Desc);
    for row in rows {
        let specs = channels.get(&row.session).map(Vec::as_slice).unwrap_or(&[]);
        let values = row
            .raws
            .iter()
            .enumerate()
            .filter_map(|(ch, raw)| Some((u16::try_from(ch).ok()?, (*raw)?)));
        let values: Box<dyn Iterator<Item = (u16, i64)>> = if descending {
            Box::new(values.rev())
        } else {
            Box::new(values)
        };
        for (channel, raw) in values {
            let sample = stored(&row, q.sensor, channel, raw, specs);
            let past_key = q.after.is_none_or(|k| {
                if descending {
                    sample.key() < k
                } else {
                    sample.key() > k
                }
            });
            if !past_key {
                continue;
            }
            if out.len() == limit {
                return out;
            }
            out.push(sample);
        }
    }
    out
}

fn stored(
    row: &ReadingRow,
    sensor: SensorId,
    channel: u16,
    raw: i64,
    specs: &[ChannelSpec],
) -> StoredSample {
    let spec = specs.get(usize::from(channel));
    StoredSample {
        session: row.session,
        sensor,
        channel,
        name: spec.map_or_else(|| format!("channel {channel}"), |c| c.name.clone()),
        unit: spec.map(|c| c.unit.clone()).unwrap_or_default(),
        seq: row.seq,
        index: row.index,
        ts_ns: row.ts_ns,
        raw,
        value: scaled(raw, spec.map_or(1.0, |c| c.scale)),
        source: row.source,
    }
}

/// The SQLite form of a reading's values: a JSON array in channel order,
/// `null` where the sensor had no reading, so `json_extract(raws, '$[0]')`
/// reads a channel in plain SQL.
pub(crate) fn to_json(raws: &[Option<i64>]) -> String {
    list_literal(raws, ('[', ']'), "null")
}

/// A PostgreSQL array literal of the values: `{2508,NULL,101325}`.
pub(crate) fn to_pg_array(raws: &[Option<i64>]) -> String {
    list_literal(raws, ('{', '}'), "NULL")
}

fn list_literal(raws: &[Option<i64>], (open, close): (char, char), null: &str) -> String {
    let mut s = String::with_capacity(2 + raws.len() * 8);
    s.push(open);
    for (i, raw) in raws.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        match raw {
            // Writing to a String cannot fail.
            Some(v) => {
                let _ = write!(s, "{v}");
            }
            None => s.push_str(null),
        }
    }
    s.push(close);
    s
}

/// A stored values text that is not a JSON array of integers (or nulls).
#[derive(Debug, thiserror::Error)]
#[error("sample values {shown:?} are not a JSON array of integers: {source}")]
pub(crate) struct NotReadings {
    /// The first 40 characters of what was found.
    shown: String,
    #[source]
    source: serde_json::Error,
}

/// Inverse of [`to_json`]; a text that is not such an array is an error
/// naming what was found.
pub(crate) fn from_json(text: &str) -> Result<Vec<Option<i64>>, NotReadings> {
    serde_json::from_str(text).map_err(|source| NotReadings {
        shown: text.chars().take(40).collect(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Order, SampleKey};

    fn row(seq: i64, ts: i64, raws: &[Option<i64>]) -> ReadingRow {
        ReadingRow {
            session: SessionId(7),
            seq,
            index: 0,
            ts_ns: ts,
            raws: raws.to_vec(),
            source: crate::storage::ReadingSource::Live,
        }
    }

    fn query(limit: u32, order: Order, after: Option<SampleKey>) -> SampleQuery {
        SampleQuery {
            sensor: SensorId(1),
            from_ns: 0,
            to_ns: i64::MAX,
            limit,
            order,
            after,
        }
    }

    fn specs() -> HashMap<SessionId, Vec<ChannelSpec>> {
        let c = |name: &str, scale| ChannelSpec {
            name: name.into(),
            unit: "Cel".into(),
            scale,
        };
        HashMap::from([(SessionId(7), vec![c("t", 0.01), c("h", 0.1)])])
    }

    #[test]
    fn json_round_trip_with_missing_values() {
        let raws = vec![Some(2508), None, Some(-9_007_199_254_740_993), Some(0)];
        let text = to_json(&raws);
        assert_eq!(text, "[2508,null,-9007199254740993,0]");
        assert_eq!(from_json(&text).unwrap(), raws);
        assert_eq!(to_json(&[]), "[]");
        assert_eq!(to_pg_array(&[Some(2508), None, Some(-3)]), "{2508,NULL,-3}");
        assert_eq!(to_pg_array(&[]), "{}");
        for bad in [
            "",
            "[1,",
            "{\"a\":1}",
            "[1.5]",
            "[\"x\"]",
            "[99999999999999999999]",
        ] {
            let e = from_json(bad).unwrap_err().to_string();
            assert!(e.contains("not a JSON array"), "{bad}: {e}");
        }
    }

    #[test]
    fn expansion_names_scales_and_skips_missing_values() {
        let rows = vec![row(1, 100, &[Some(2508), None, Some(3)])];
        let got = expand(rows, &query(10, Order::Asc, None), &specs());
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].name.as_str(), got[0].value), ("t", 25.08));
        // Channel 2 is not described: returned by number, unscaled.
        assert_eq!((got[1].channel, got[1].name.as_str()), (2, "channel 2"));
        assert_eq!((got[1].value, got[1].unit.as_str()), (3.0, ""));
    }

    #[test]
    fn paging_resumes_inside_a_row_in_both_orders() {
        let rows = || {
            vec![
                row(1, 100, &[Some(10), Some(11)]),
                row(2, 200, &[Some(20), Some(21)]),
            ]
        };
        let first = expand(rows(), &query(3, Order::Asc, None), &specs());
        let keys: Vec<_> = first.iter().map(|s| s.raw).collect();
        assert_eq!(keys, vec![10, 11, 20]);
        // The backend fetches the key's row again: it yields only channel 1.
        let after = first.last().map(StoredSample::key);
        let next = expand(rows()[1..].to_vec(), &query(3, Order::Asc, after), &specs());
        assert_eq!(next.iter().map(|s| s.raw).collect::<Vec<_>>(), vec![21]);

        let mut desc_rows = rows();
        desc_rows.reverse();
        let first = expand(desc_rows.clone(), &query(1, Order::Desc, None), &specs());
        assert_eq!(first[0].raw, 21);
        let after = first.last().map(StoredSample::key);
        let next = expand(desc_rows, &query(5, Order::Desc, after), &specs());
        assert_eq!(
            next.iter().map(|s| s.raw).collect::<Vec<_>>(),
            vec![20, 11, 10]
        );
    }
}
