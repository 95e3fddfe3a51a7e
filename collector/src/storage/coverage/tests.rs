use super::*;

fn query(limit: u32, scan_limit: u32) -> CoverageQuery {
    CoverageQuery {
        sensor: SensorId(1),
        from_ns: 0,
        to_ns: 1_000,
        limit,
        scan_limit,
    }
}

fn run(class: i64, from_ns: i64, to_ns: i64, count: i64, resent: i64) -> RunRow {
    RunRow {
        class,
        from_ns,
        to_ns,
        count,
        resent,
        missing: None,
        cause: None,
    }
}

fn gap(from_ns: i64, to_ns: i64, missing: i64, cause: &str) -> RunRow {
    RunRow {
        class: -1,
        from_ns,
        to_ns,
        count: 1,
        resent: 0,
        missing: Some(missing),
        cause: Some(cause.into()),
    }
}

#[test]
fn runs_become_labelled_ranges() {
    let rows = vec![
        run(0, 10, 100, 10, 0),
        gap(100, 200, 9, "session_break"),
        run(2, 200, 300, 11, 0),
        run(0, 310, 400, 10, 2),
        gap(400, 500, 9, "expired"),
    ];
    let c = assemble(rows, &query(10, 1_000)).unwrap();
    let kinds: Vec<_> = c.ranges.iter().map(|r| (r.kind, r.cause)).collect();
    assert_eq!(
        kinds,
        vec![
            (CoverageKind::Live, None),
            (CoverageKind::Missing, Some(GapCause::SessionBreak)),
            (CoverageKind::Backfilled, None),
            (CoverageKind::Resent, None),
            (CoverageKind::Missing, Some(GapCause::Expired)),
        ]
    );
    // A gap counts its missing instants, not its one row.
    assert_eq!(c.ranges[1].instants, 9);
    assert_eq!((c.ranges[3].instants, c.ranges[3].resent), (10, 2));
    assert_eq!(c.next_from_ns, None);
}

#[test]
fn the_limit_cuts_after_a_whole_range_and_says_where_to_go_on() {
    let rows = vec![
        run(0, 10, 100, 10, 0),
        gap(100, 200, 9, "loss"),
        run(2, 200, 300, 11, 0),
    ];
    // After a range of readings: just past its last instant.
    let c = assemble(rows.clone(), &query(1, 1_000)).unwrap();
    assert_eq!(c.ranges.len(), 1);
    assert_eq!(c.next_from_ns, Some(101));
    // After a gap: at its end, which a window must pass to overlap it.
    let c = assemble(rows, &query(2, 1_000)).unwrap();
    assert_eq!(c.next_from_ns, Some(200));
}

#[test]
fn the_scan_limit_leaves_the_last_range_open() {
    let rows = vec![run(0, 10, 100, 10, 0), run(2, 110, 150, 5, 0)];
    let c = assemble(rows.clone(), &query(10, 15)).unwrap();
    assert_eq!(c.ranges.len(), 2);
    assert_eq!(c.next_from_ns, Some(151));
    // Fewer readings than the scan limit: the answer is whole.
    assert_eq!(assemble(rows, &query(10, 16)).unwrap().next_from_ns, None);
    // A continuation at or past the window's end is none.
    let mut q = query(10, 15);
    q.to_ns = 151;
    let c = assemble(vec![run(0, 10, 100, 10, 0), run(2, 110, 150, 5, 0)], &q).unwrap();
    assert_eq!(c.next_from_ns, None);
}

#[test]
fn unknown_classes_and_causes_are_errors() {
    assert!(assemble(vec![run(7, 1, 2, 1, 0)], &query(5, 5)).is_err());
    assert!(assemble(vec![gap(1, 2, 1, "meteor")], &query(5, 5)).is_err());
    let mut no_cause = gap(1, 2, 1, "loss");
    no_cause.cause = None;
    assert!(assemble(vec![no_cause], &query(5, 5)).is_err());
}

#[test]
fn a_cut_run_joins_its_rest_and_nothing_else() {
    let range = |kind, from_ns, to_ns, instants, resent| CoverageRange {
        kind,
        from_ns,
        to_ns,
        instants,
        resent,
        cause: None,
    };
    let mut live = range(CoverageKind::Live, 10, 100, 10, 0);
    // The rest of the live stream, with a resent reading: one range.
    assert_eq!(
        live.join(range(CoverageKind::Resent, 110, 200, 10, 1)),
        None
    );
    assert_eq!(live, range(CoverageKind::Resent, 10, 200, 20, 1));
    // Backfilled after live is another range.
    let bf = range(CoverageKind::Backfilled, 210, 300, 10, 0);
    assert_eq!(live.join(bf), Some(bf));
    let mut bf2 = bf;
    assert_eq!(
        bf2.join(range(CoverageKind::Backfilled, 310, 320, 2, 0)),
        None
    );
    assert_eq!((bf2.to_ns, bf2.instants), (320, 12));
    // A range that does not start after it is never joined.
    let mut again = range(CoverageKind::Live, 10, 100, 10, 0);
    let overlap = range(CoverageKind::Live, 100, 120, 3, 0);
    assert_eq!(again.join(overlap), Some(overlap));
    // Nor a gap.
    let gap = CoverageRange {
        cause: Some(GapCause::Loss),
        ..range(CoverageKind::Missing, 100, 110, 1, 0)
    };
    assert_eq!(again.join(gap), Some(gap));
}
