use super::*;
use crate::storage::SessionId;

/// A loss gap at 10 Hz: instants 100 ms apart, `missing` of them lost
/// after the instant at `from_ms`.
fn loss(from_ms: i64, missing: i64) -> Gap {
    Gap {
        sensor: SensorId(1),
        session: Some(SessionId(7)),
        from_ns: from_ms * 1_000_000,
        to_ns: (from_ms + (missing + 1) * 100) * 1_000_000,
        samples: missing,
        cause: GapCause::Loss,
    }
}

fn ms(v: i64) -> i64 {
    v * 1_000_000
}

fn bounds(pieces: &[Gap]) -> Vec<(i64, i64, i64)> {
    pieces
        .iter()
        .map(|g| (g.from_ns / 1_000_000, g.to_ns / 1_000_000, g.samples))
        .collect()
}

#[test]
fn a_sample_in_the_middle_splits_a_gap() {
    // Lost 100..=900; 500 comes back.
    let cut = cut_by_stored(&loss(0, 9), &[ms(500)]).unwrap();
    assert_eq!(bounds(&cut), vec![(0, 500, 4), (500, 1000, 4)]);
    assert!(cut.iter().all(|g| g.cause == GapCause::Loss));
}

#[test]
fn samples_at_an_edge_shrink_it_and_all_of_them_remove_it() {
    let g = loss(0, 9);
    let cut = cut_by_stored(&g, &[ms(100), ms(200), ms(300)]).unwrap();
    assert_eq!(bounds(&cut), vec![(300, 1000, 6)]);
    let all: Vec<i64> = (1..=9).map(|k| ms(k * 100)).collect();
    assert_eq!(cut_by_stored(&g, &all).unwrap(), vec![]);
}

#[test]
fn stamps_a_little_off_the_grid_still_count_as_their_instant() {
    // The bounds come from the collector's mapping, the samples from the
    // agent's stamps: 0.3 ms apart here.
    let cut = cut_by_stored(&loss(0, 3), &[ms(100) + 300_000, ms(200) - 300_000]).unwrap();
    assert_eq!(bounds(&cut), vec![(199, 400, 1)]);
}

#[test]
fn nothing_inside_leaves_the_gap_alone() {
    let g = loss(1000, 3);
    assert_eq!(cut_by_stored(&g, &[]), None);
    // The bounds themselves are stored instants, not inside.
    assert_eq!(cut_by_stored(&g, &[ms(1000), ms(1400), ms(9000)]), None);
}

#[test]
fn expiry_keeps_the_pieces_outside_and_counts_the_inside() {
    // Lost 100..=900; instants strictly between 300 and 700 are gone for
    // good; 300 and 700 may still come.
    let (outside, inside) = split_for_expiry(&loss(0, 9), ms(300), ms(700)).unwrap();
    assert_eq!(bounds(&outside), vec![(0, 400, 3), (600, 1000, 3)]);
    assert_eq!(inside, 3);
    // The usual case: from the committed mark (the gap's start) to the
    // oldest instant the spool holds.
    let (outside, inside) = split_for_expiry(&loss(0, 9), 0, ms(400)).unwrap();
    assert_eq!(bounds(&outside), vec![(300, 1000, 6)]);
    assert_eq!(inside, 3);
    // The whole gap inside: nothing kept.
    let (outside, inside) = split_for_expiry(&loss(0, 9), ms(-5000), ms(5000)).unwrap();
    assert!(outside.is_empty());
    assert_eq!(inside, 9);
}

#[test]
fn expiry_ignores_gaps_that_cannot_fill_or_lie_outside() {
    let mut source = loss(0, 9);
    source.cause = GapCause::Source;
    assert_eq!(split_for_expiry(&source, ms(300), ms(700)), None);
    assert_eq!(split_for_expiry(&loss(0, 9), ms(1000), ms(2000)), None);
    assert_eq!(split_for_expiry(&loss(0, 9), ms(-100), ms(0)), None);
}

#[test]
fn an_expired_range_nobody_described_is_counted_at_the_rate() {
    assert_eq!(instants_between(0, ms(1000), 10.0), 9);
    assert_eq!(instants_between(0, ms(100), 10.0), 0);
    assert_eq!(instants_between(ms(5), 0, 10.0), 0);
    assert_eq!(instants_between(0, ms(1000), f64::NAN), 0);
    let g = declared_gap(
        SensorId(3),
        (0, ms(1000)),
        GapCause::Expired,
        None,
        Some(10.0),
    )
    .unwrap();
    assert_eq!((g.samples, g.cause), (9, GapCause::Expired));
    let g = declared_gap(
        SensorId(3),
        (0, ms(1000)),
        GapCause::Expired,
        Some(4),
        Some(10.0),
    )
    .unwrap();
    assert_eq!(g.samples, 4);
    // Without a rate the range is kept, its size unknown.
    let g = declared_gap(SensorId(3), (0, ms(1000)), GapCause::Expired, None, None).unwrap();
    assert_eq!(g.samples, 0);
}

#[test]
fn a_declared_range_without_an_instant_inside_is_no_gap() {
    // The last backfilled instant and the first live one, a step apart.
    for overlapped in [None, Some(0)] {
        let g = declared_gap(
            SensorId(3),
            (ms(900), ms(1000)),
            GapCause::Source,
            overlapped,
            Some(10.0),
        );
        assert_eq!(g, None, "{overlapped:?}");
    }
}

#[test]
fn only_late_readings_span_a_fill() {
    let reading = |sensor: i64, ts_ns: i64, source| Reading {
        session: SessionId(1),
        sensor: SensorId(sensor),
        seq: 0,
        index: 0,
        ts_ns,
        raws: vec![Some(1)],
        source,
    };
    let spans = late_spans(&[
        reading(1, 50, ReadingSource::Live),
        reading(1, 300, ReadingSource::Backfilled),
        reading(1, 200, ReadingSource::Resent),
        reading(2, 10, ReadingSource::Live),
        reading(3, 7, ReadingSource::Backfilled),
    ]);
    assert_eq!(spans, vec![(SensorId(1), 200, 300), (SensorId(3), 7, 7)]);
}
