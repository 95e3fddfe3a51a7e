use super::*;
use crate::sdp::{ChannelSpec, EventFormat, SampleFormat, StreamDescription, Unit};
use std::time::Duration;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn samples_layout_matches_the_documented_example() {
    // docs/protocol.md example: 3 channels, 2 instants, one value missing.
    let values = [2150, 451, 101325, 2151, MISSING, 101324];
    let mut buf = [0u8; 64];
    let n = encode_samples(&mut buf, 1, 3, &values).unwrap();
    assert_eq!(n, 28);
    assert_eq!(
        hex(&buf[..n]),
        concat!(
            "10010302", "00000866", "000001c3", "00018bcd", "00000867", "80000000", "00018bcc"
        )
    );
    let Payload::Samples(s) = decode(&buf[..n]).unwrap() else {
        panic!("kind")
    };
    assert_eq!((s.config, s.channels, s.count), (1, 3, 2));
    assert_eq!(s.raw(0, 2), Some(101325));
    assert_eq!(s.raw(1, 1), Some(MISSING));
    assert_eq!(s.raw(2, 0), None);
    assert_eq!(s.raw(0, 3), None);
    let second: Vec<_> = s.instant(1).collect();
    assert_eq!(second, [Some(2151), None, Some(101324)]);
    assert_eq!(s.instant(9).count(), 0);
}

#[test]
fn negative_values_are_twos_complement_big_endian() {
    let mut buf = [0u8; 8];
    let n = encode_samples(&mut buf, 0, 1, &[-2]).unwrap();
    assert_eq!(hex(&buf[..n]), "10000101fffffffe");
    let Payload::Samples(s) = decode(&buf[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(s.raw(0, 0), Some(-2));
}

#[test]
fn encode_samples_rejects_bad_shapes() {
    let mut buf = [0u8; 2048];
    assert_eq!(
        encode_samples(&mut buf, 0, 0, &[]),
        Err(EncodeError::Channels(0))
    );
    assert_eq!(
        encode_samples(&mut buf, 0, 65, &[0; 65]),
        Err(EncodeError::Channels(65))
    );
    assert_eq!(
        encode_samples(&mut buf, 0, 2, &[1, 2, 3]),
        Err(EncodeError::Shape {
            values: 3,
            channels: 2
        })
    );
    assert_eq!(
        encode_samples(&mut buf, 0, 2, &[]),
        Err(EncodeError::Samples(0))
    );
    assert_eq!(
        encode_samples(&mut buf, 0, 1, &[0; 256]),
        Err(EncodeError::Samples(256))
    );
    assert_eq!(
        encode_samples(&mut buf[..11], 0, 2, &[1, 2]),
        Err(EncodeError::BufferTooSmall { need: 12, have: 11 })
    );
}

#[test]
fn events_layout_matches_the_documented_example() {
    // Two inputs (door, motion); door opened 0.25 tick before the packet's
    // timestamp; motion currently high.
    let rec = EventRecord {
        serial: 0x0102,
        input: 0,
        state: true,
        offset: -(1i64 << 30),
    };
    let mut buf = [0u8; 64];
    let n = encode_events(&mut buf, 1, 2, 0b11, &[rec]).unwrap();
    assert_eq!(n, 4 + 4 + 12);
    assert_eq!(
        hex(&buf[..n]),
        concat!(
            "11010201",
            "c0000000",
            "0102",
            "00",
            "01",
            "ffffffffc0000000"
        )
    );
    let Payload::Events(e) = decode(&buf[..n]).unwrap() else {
        panic!("kind")
    };
    assert_eq!((e.config, e.inputs, e.states), (1, 2, 0b11));
    assert_eq!(e.state(0), Some(true));
    assert_eq!(e.state(2), None);
    assert_eq!(e.len(), 1);
    assert!(!e.is_empty());
    let got: Vec<_> = e.records().collect();
    assert_eq!(got, [rec]);
    assert_eq!(got[0].offset_ticks(), -0.25);
}

#[test]
fn state_bitmap_puts_input_zero_first_and_grows_to_64() {
    let mut buf = [0u8; 64];
    let n = encode_events(&mut buf, 0, 9, 1 << 8, &[]).unwrap();
    assert_eq!(hex(&buf[..n]), "1100090000800000");
    let n = encode_events(&mut buf, 0, 64, 1 << 63 | 1, &[]).unwrap();
    assert_eq!(n, 12);
    assert_eq!(hex(&buf[4..n]), "8000000000000001");
    let Payload::Events(e) = decode(&buf[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(e.states, 1 << 63 | 1);
    assert!(e.is_empty());
    // Bits of absent inputs are not sent.
    let n = encode_events(&mut buf, 0, 3, u64::MAX, &[]).unwrap();
    assert_eq!(hex(&buf[4..n]), "e0000000");
}

#[test]
fn encode_events_rejects_bad_input() {
    let mut buf = [0u8; 4096];
    let r = EventRecord {
        input: 2,
        ..Default::default()
    };
    assert_eq!(
        encode_events(&mut buf, 0, 2, 0, &[r]),
        Err(EncodeError::Input {
            input: 2,
            inputs: 2
        })
    );
    assert_eq!(
        encode_events(&mut buf, 0, 0, 0, &[]),
        Err(EncodeError::Channels(0))
    );
    let many = [EventRecord::default(); 256];
    assert_eq!(
        encode_events(&mut buf, 0, 1, 0, &many),
        Err(EncodeError::Records(256))
    );
    assert_eq!(
        encode_events(&mut buf[..19], 0, 1, 0, &many[..1]),
        Err(EncodeError::BufferTooSmall { need: 20, have: 19 })
    );
}

#[test]
fn decode_errors_are_typed() {
    assert_eq!(decode(&[]), Err(DecodeError::Truncated(0)));
    assert_eq!(decode(&[0x10, 0, 1]), Err(DecodeError::Truncated(3)));
    assert_eq!(decode(&[0x20, 0, 1, 1]), Err(DecodeError::Version(2)));
    assert_eq!(decode(&[0x12, 0, 1, 1]), Err(DecodeError::Kind(2)));
    assert_eq!(decode(&[0x10, 0, 0, 1]), Err(DecodeError::Channels(0)));
    assert_eq!(decode(&[0x10, 0, 65, 1]), Err(DecodeError::Channels(65)));
    assert_eq!(decode(&[0x10, 0, 1, 0]), Err(DecodeError::NoSamples));
    assert_eq!(
        decode(&[0x10, 0, 1, 1, 0, 0, 0]),
        Err(DecodeError::Length {
            expected: 8,
            actual: 7
        })
    );
    assert_eq!(
        decode(&[0x10, 0, 1, 1, 0, 0, 0, 0, 0]),
        Err(DecodeError::Length {
            expected: 8,
            actual: 9
        })
    );
    assert_eq!(
        decode(&[0x11, 0, 1, 0, 0x40, 0, 0, 0]),
        Err(DecodeError::StatePadding)
    );
    assert_eq!(
        decode(&[0x11, 0, 1, 0, 0, 0, 0, 1]),
        Err(DecodeError::StatePadding)
    );
    let mut rec = vec![0x11, 0, 1, 1, 0, 0, 0, 0];
    rec.extend_from_slice(&[0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        decode(&rec),
        Err(DecodeError::Input {
            record: 0,
            input: 1,
            inputs: 1
        })
    );
    rec[10] = 0;
    rec[11] = 2;
    assert_eq!(
        decode(&rec),
        Err(DecodeError::State {
            record: 0,
            state: 2
        })
    );
    rec[11] = 1;
    assert!(decode(&rec).is_ok());
    assert_eq!(
        decode(&rec[..rec.len() - 1]),
        Err(DecodeError::Length {
            expected: 20,
            actual: 19
        })
    );
}

#[test]
fn decode_never_panics_on_any_short_input() {
    // Exhaustive over all 4-byte headers with a few body lengths: cheap
    // (2^32 would not be; the header fields are sampled at their edges).
    let edges = [
        0u8, 1, 2, 0x0f, 0x10, 0x11, 0x12, 0x1f, 0x20, 63, 64, 65, 0x80, 0xff,
    ];
    let body = [0xffu8; 1100];
    for &a in &edges {
        for &b in &edges {
            for &c in &edges {
                for &d in &edges {
                    for len in [0usize, 4, 8, 12, 16, 20, 260, 1020] {
                        let mut p = vec![a, b, c, d];
                        p.extend_from_slice(&body[..len]);
                        if let Ok(Payload::Samples(s)) = decode(&p) {
                            assert_eq!(p.len(), samples_len(s.channels.into(), s.count.into()));
                            let _ = s.instant(usize::from(s.count) - 1).count();
                        }
                    }
                }
            }
        }
    }
}

fn desc() -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 4,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 1,
            samples_per_packet: 2,
            channels: vec![
                ChannelSpec {
                    name: "t".into(),
                    unit: Unit::from_symbol("Cel").unwrap(),
                    scale: -2,
                },
                ChannelSpec {
                    name: "h".into(),
                    unit: Unit::from_symbol("%RH").unwrap(),
                    scale: -1,
                },
            ],
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into()],
        }),
    }
}

#[test]
fn views_check_against_their_description() {
    let d = desc();
    let mut buf = [0u8; 64];
    let n = encode_samples(&mut buf, 4, 2, &[1, 2]).unwrap();
    let Payload::Samples(s) = decode(&buf[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(s.check(&d), Ok(()));
    let n = encode_samples(&mut buf, 4, 1, &[1]).unwrap();
    let Payload::Samples(s) = decode(&buf[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(
        s.check(&d),
        Err(DecodeError::Mismatch {
            expected: 2,
            got: 1
        })
    );
    let n = encode_samples(&mut buf, 5, 2, &[1, 2]).unwrap();
    let p = decode(&buf[..n]).unwrap();
    assert_eq!(p.config(), 5);
    let Payload::Samples(s) = p else { panic!() };
    assert_eq!(s.check(&d), Err(DecodeError::UnknownConfig(5)));

    let mut buf2 = [0u8; 64];
    let n = encode_events(&mut buf2, 4, 1, 1, &[]).unwrap();
    let Payload::Events(e) = decode(&buf2[..n]).unwrap() else {
        panic!()
    };
    assert_eq!(e.check(&d), Ok(()));
    let mut no_events = d.clone();
    no_events.events = None;
    assert_eq!(e.check(&no_events), Err(DecodeError::WrongKind));
    let mut no_samples = d;
    no_samples.samples = None;
    assert_eq!(s.check(&no_samples), Err(DecodeError::WrongKind));
}

#[test]
fn tick_time_conversions_are_exact() {
    let t = TickTime::from_elapsed(Duration::from_millis(1234), 100);
    assert_eq!(t.tick, 123);
    assert_eq!(t.fraction, 0x6666_6666); // 0.4 tick, truncated
    let t = TickTime::from_elapsed(Duration::from_micros(2500), 1000);
    assert_eq!((t.tick, t.fraction), (2, 1 << 31));
    assert_eq!(t.offset_from(3), Some(-(1i64 << 31)));
    assert_eq!(t.offset_from(0), Some((2i64 << 32) + (1 << 31)));
    assert_eq!(TickTime::from_tick(1 << 40).offset_from(0), None);
    assert_eq!(TickTime::from_tick(0).offset_from(1 << 31), Some(i64::MIN));
}
