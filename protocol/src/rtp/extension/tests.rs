use super::*;

#[test]
fn one_byte_block_round_trips_and_is_padded_to_32_bits() {
    let mut buf = [0xffu8; 32];
    let instant = SampleInstant {
        first_ns: 1_767_225_600_500_000_000,
        step_ns: 200_000_000,
    }
    .encode();
    let n = write_one_byte(&mut buf, &[(1, &instant), (3, &[0xaa])]).unwrap();
    // 1 + 16 + 1 + 1 = 19 bytes, padded to 20 with a zero byte.
    assert_eq!(n, 20);
    assert_eq!(buf[0], 0x1f, "ID 1, L = 15 (16 bytes)");
    assert_eq!(&buf[17..20], &[0x30, 0xaa, 0x00]);
    let ext = HeaderExtension {
        profile: ONE_BYTE_PROFILE,
        data: &buf[..n],
    };
    assert_eq!(ext.element(1).unwrap(), Some(&instant[..]));
    assert_eq!(ext.element(3).unwrap(), Some(&[0xaa][..]));
    assert_eq!(ext.element(2).unwrap(), None);
}

#[test]
fn padding_bytes_between_elements_are_skipped_and_id_15_stops_parsing() {
    // RFC 8285 4.2: zero bytes pad; ID 15 ends the walk, even before a
    // well-formed element.
    let data = [0x00, 0x00, 0x21, 0xab, 0xcd, 0xf0, 0x10, 0x77];
    let ext = HeaderExtension {
        profile: ONE_BYTE_PROFILE,
        data: &data,
    };
    let all: Vec<_> = ext.elements().collect();
    assert_eq!(all, vec![Ok((2, &[0xab, 0xcd][..]))]);
    assert_eq!(ext.element(1).unwrap(), None);
}

#[test]
fn id_0_with_a_length_is_malformed_not_an_element() {
    // Found by fuzz/rtp_parse: 0x01 is ID 0, L=1, which RFC 8285 4.2
    // reserves; it must not come out as element 0.
    let data = [0x01, 0xaa, 0xbb, 0x00];
    let ext = HeaderExtension {
        profile: ONE_BYTE_PROFILE,
        data: &data,
    };
    assert_eq!(
        ext.elements().collect::<Vec<_>>(),
        vec![Err(ExtensionError::Id(0))]
    );
    assert_eq!(ext.element(1), Err(ExtensionError::Id(0)));
}

#[test]
fn an_element_longer_than_its_block_is_an_error_not_a_panic() {
    let data = [0x1f, 1, 2, 3];
    let ext = HeaderExtension {
        profile: ONE_BYTE_PROFILE,
        data: &data,
    };
    assert_eq!(ext.element(1), Err(ExtensionError::Truncated { id: 1 }));
    // Every prefix of a valid block either parses or fails, never panics.
    let mut buf = [0u8; 24];
    let n = write_one_byte(&mut buf, &[(5, &[9; 16]), (6, &[1, 2])]).unwrap();
    for end in 0..=n {
        let ext = HeaderExtension {
            profile: ONE_BYTE_PROFILE,
            data: &buf[..end],
        };
        let _ = ext.elements().count();
    }
}

#[test]
fn two_byte_form_is_read_and_other_profiles_hold_no_elements() {
    let data = [0x00, 0x07, 0x02, 0xde, 0xad, 0x00, 0x00, 0x00];
    let two = HeaderExtension {
        profile: 0x1003,
        data: &data,
    };
    assert_eq!(two.element(7).unwrap(), Some(&[0xde, 0xad][..]));
    let other = HeaderExtension {
        profile: 0x0001,
        data: &data,
    };
    assert_eq!(other.element(7).unwrap(), None);
    let cut = HeaderExtension {
        profile: 0x1000,
        data: &[0x07],
    };
    assert_eq!(cut.element(7), Err(ExtensionError::Truncated { id: 7 }));
}

#[test]
fn writing_refuses_ids_and_lengths_the_one_byte_form_cannot_carry() {
    let mut buf = [0u8; 64];
    assert_eq!(
        write_one_byte(&mut buf, &[(0, &[1])]),
        Err(ExtensionError::Id(0))
    );
    assert_eq!(
        write_one_byte(&mut buf, &[(15, &[1])]),
        Err(ExtensionError::Id(15))
    );
    assert_eq!(
        write_one_byte(&mut buf, &[(1, &[0; 17])]),
        Err(ExtensionError::Length(17))
    );
    assert_eq!(
        write_one_byte(&mut buf, &[(1, &[])]),
        Err(ExtensionError::Length(0))
    );
    assert_eq!(
        write_one_byte(&mut buf[..3], &[(1, &[1, 2])]),
        Err(ExtensionError::BufferTooSmall),
        "the padding must fit too"
    );
}

#[test]
fn sample_instants_are_integer_arithmetic_on_the_carried_pair() {
    let i = SampleInstant {
        first_ns: 1_000_000_000,
        step_ns: 333_333_333,
    };
    assert_eq!(SampleInstant::decode(&i.encode()).unwrap(), i);
    assert_eq!(i.sample(0), Some(1_000_000_000));
    assert_eq!(i.sample(3), Some(1_999_999_999));
    // The same sample, resent in a packet that starts at it: same instant.
    let later = SampleInstant {
        first_ns: i.sample(2).unwrap(),
        ..i
    };
    assert_eq!(later.sample(1), i.sample(3));
    assert_eq!(
        SampleInstant {
            first_ns: u64::MAX,
            step_ns: 1
        }
        .sample(1),
        None
    );
    assert_eq!(
        SampleInstant::decode(&[0; 15]),
        Err(ExtensionError::InstantLength(15))
    );
}

#[test]
fn every_copy_of_an_edge_gives_the_same_instant() {
    // 3 Hz clock: 333 333 333 ns per tick, not a whole number of ns per
    // second. Tick instants are base + n × step, as the agent stamps them.
    let step = 333_333_333u64;
    let base = 1_767_225_600_000_000_000u64;
    let at_tick = |n: u64| SampleInstant {
        first_ns: base + n * step,
        step_ns: step,
    };
    // An edge at tick 99.75, sent at tick 100 (offset -0.25) and again at
    // tick 104 (offset -4.25).
    let first = at_tick(100).edge(-(1i64 << 30)).unwrap();
    let again = at_tick(104).edge(-(17i64 << 30)).unwrap();
    assert_eq!(first, again);
    // floor(99.75 × 333 333 333) = 33 249 999 966 (the exact product
    // ends in .75).
    assert_eq!(first - base, 33_249_999_966);
    // A backfill packet stamped at the stored instant with offset 0.
    let backfilled = SampleInstant {
        first_ns: first,
        step_ns: step,
    }
    .edge(0);
    assert_eq!(backfilled, Some(first));
    assert_eq!(
        SampleInstant {
            first_ns: 0,
            step_ns: step
        }
        .edge(-(1 << 32)),
        None,
        "before the epoch"
    );
}
