//! Tests of the stream description and its SDP lines.

use super::*;
use crate::sdp::tests::{AGENT_OFFER, PHONE_OFFER, agent_desc, agent_local, agent_origin, ch};
use crate::sdp::{Attribute, Media, NegotiationError, Role, offer, parse_str};

#[test]
fn descriptions_are_validated() {
    fn s(d: &mut StreamDescription) -> &mut SampleFormat {
        d.samples.as_mut().unwrap()
    }
    let check = |f: &dyn Fn(&mut StreamDescription), want: StreamError| {
        let mut d = agent_desc();
        f(&mut d);
        assert_eq!(d.validate(), Err(want.clone()));
        let e = offer(&d, Role::Sender, &agent_local(), &mut agent_origin()).unwrap_err();
        assert_eq!(e, NegotiationError::Stream(want));
    };
    check(&|d| d.clock_rate = 0, StreamError::ClockRate(0));
    check(
        &|d| d.clock_rate = MAX_CLOCK_RATE + 1,
        StreamError::ClockRate(MAX_CLOCK_RATE + 1),
    );
    check(
        &|d| {
            d.samples = None;
            d.events = None
        },
        StreamError::Empty,
    );
    check(&|d| s(d).period = 0, StreamError::Period(0));
    check(
        &|d| s(d).period = 100 * 86_400 + 1,
        StreamError::Period(100 * 86_400 + 1),
    );
    check(
        &|d| s(d).samples_per_packet = 0,
        StreamError::SamplesPerPacket(0),
    );
    check(
        &|d| s(d).samples_per_packet = 100,
        StreamError::PacketTooLarge {
            channels: 3,
            samples: 100,
        },
    );
    check(&|d| s(d).channels.clear(), StreamError::NoChannels);
    check(
        &|d| {
            s(d).samples_per_packet = 1;
            s(d).channels = (0..65).map(|i| ch(&format!("c{i}"), "V", 0)).collect();
        },
        StreamError::TooManyChannels(65),
    );
    check(
        &|d| s(d).channels[0].name = "a b".into(),
        StreamError::BadName("a b".into()),
    );
    check(
        &|d| s(d).channels[0].name = "x".repeat(33),
        StreamError::BadName("x".repeat(33)),
    );
    check(
        &|d| s(d).channels[1].name = "Temperature".into(),
        StreamError::DuplicateName("Temperature".into()),
    );
    check(
        &|d| d.events.as_mut().unwrap().inputs[0] = "pressure".into(),
        StreamError::DuplicateName("pressure".into()),
    );
    check(&|d| s(d).channels[0].scale = 19, StreamError::Scale(19));
    check(&|d| s(d).payload_type = 0, StreamError::PayloadType(0));
    check(
        &|d| d.events.as_mut().unwrap().payload_type = 96,
        StreamError::SamePayloadType(96),
    );
    check(
        &|d| d.events.as_mut().unwrap().inputs.clear(),
        StreamError::NoChannels,
    );
    check(
        &|d| d.events.as_mut().unwrap().inputs = (0..65).map(|i| format!("i{i}")).collect(),
        StreamError::TooManyChannels(65),
    );
    check(
        &|d| d.events.as_mut().unwrap().payload_type = 128,
        StreamError::PayloadType(128),
    );
}

#[test]
fn stream_figures() {
    let d = agent_desc();
    assert_eq!(d.sample_rate_hz(), Some(10.0));
    assert_eq!(
        d.packet_interval(),
        Some(std::time::Duration::from_millis(500))
    );
    // (4 + 3*5*4 + 40) bytes * 8 bits * 2 packets/s
    assert_eq!(d.session_bandwidth_bps(), 104 * 8 * 2);
    let mut events_only = d.clone();
    events_only.samples = None;
    assert_eq!(events_only.sample_rate_hz(), None);
    assert_eq!(events_only.packet_interval(), None);
    assert_eq!(events_only.session_bandwidth_bps(), 1000);
    // Slow sensor: one sample a minute on a 1 Hz clock; ptime 60000 ms.
    let slow = StreamDescription {
        clock_rate: 1,
        config: 0,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 60,
            samples_per_packet: 1,
            channels: vec![ch("t", "Cel", -2)],
        }),
        events: None,
    };
    let (_, attrs) = slow.to_media_parts();
    assert!(attrs.contains(&Attribute::value("ptime", "60000")));
    // 3 Hz clock, period 1: ptime 333.3 ms is not whole, so it is left out.
    let mut third = slow.clone();
    third.clock_rate = 3;
    third.samples.as_mut().unwrap().period = 1;
    let (_, attrs) = third.to_media_parts();
    assert!(!attrs.iter().any(|a| a.name == "ptime"));
}

fn media_of(extra: &str) -> Media {
    let text = AGENT_OFFER.replace("a=ptime:500\r\n", extra);
    parse_str(&text).unwrap().media.remove(0)
}

#[test]
fn from_media_reads_tolerantly_and_rejects_precisely() {
    // Encoding names are case-insensitive; unknown fmtp keys are ignored;
    // foreign formats in the same m= are skipped.
    let text = AGENT_OFFER
        .replace("sensor/100", "SENSOR/100")
        .replace(
            "ver=1;cfg=1;period=10;spp=5",
            "ver=1; cfg=1; period=10; spp=5; future=x; flag",
        )
        .replace("RTP/AVP 96 97", "RTP/AVP 100 96 97 abc")
        + "";
    let sdp = parse_str(&text).unwrap();
    assert_eq!(
        StreamDescription::from_media(&sdp.media[0]).unwrap(),
        Some(agent_desc())
    );

    let bad = |from: &str, to: &str| {
        let text = AGENT_OFFER.replacen(from, to, 1);
        assert_ne!(text, AGENT_OFFER, "{from}");
        StreamDescription::from_media(&parse_str(&text).unwrap().media[0]).unwrap_err()
    };
    assert_eq!(bad("sensor/100", "sensor"), StreamError::Rtpmap(96));
    assert!(matches!(
        bad("a=fmtp:96 ver=1;cfg=1;period=10;spp=5\r\n", ""),
        StreamError::Fmtp {
            pt: 96,
            name: "ver",
            ..
        }
    ));
    assert!(matches!(
        bad("ver=1;cfg=1;period", "ver=1;period"),
        StreamError::Fmtp { name: "cfg", .. }
    ));
    assert!(matches!(
        bad(";spp=5", ""),
        StreamError::Fmtp { name: "spp", .. }
    ));
    assert!(matches!(
        bad("period=10;", ""),
        StreamError::Fmtp { name: "period", .. }
    ));
    assert!(matches!(
        bad("cfg=1;period", "cfg=300;period"),
        StreamError::Fmtp { name: "cfg", .. }
    ));
    assert!(matches!(
        bad("spp=5", "spp=x"),
        StreamError::Fmtp { name: "spp", .. }
    ));
    assert_eq!(
        bad("a=fmtp:97 ver=1;cfg=1", "a=fmtp:97 ver=1;cfg=2"),
        StreamError::ConfigMismatch
    );
    assert!(matches!(
        bad("-2\r\n", "x\r\n"),
        StreamError::ChannelLine { .. }
    ));
    assert!(matches!(
        bad("96 1 humidity", "96 0 humidity"),
        StreamError::ChannelLine {
            reason: "index given twice",
            ..
        }
    ));
    assert!(matches!(
        bad("96 2 pressure", "96 3 pressure"),
        StreamError::ChannelLine {
            reason: "indices are not contiguous from 0",
            ..
        }
    ));
    assert!(matches!(
        bad("96 2 pressure", "96 64 pressure"),
        StreamError::ChannelLine { .. }
    ));
    assert!(matches!(
        bad("96 2 pressure Pa 0", "96 2 pressure Pa"),
        StreamError::ChannelLine {
            reason: "wrong number of fields",
            ..
        }
    ));
    assert!(matches!(
        bad("a=sensor-input:97 1 motion", "a=sensor-input:x 1 motion"),
        StreamError::ChannelLine { .. }
    ));
    assert_eq!(bad("Pa 0", "pa 0"), StreamError::Unit("pa".into()));
    assert_eq!(
        bad(
            "a=sensor-input:97 0 door\r\na=sensor-input:97 1 motion\r\n",
            ""
        ),
        StreamError::NoChannels
    );
    assert_eq!(
        bad("a=rtpmap:96 sensor/100", "a=rtpmap:96 sensor/99"),
        StreamError::ClockMismatch {
            samples: 99,
            events: 100
        }
    );
    // Lines for other payload types are ignored.
    let m = media_of("a=sensor-channel:120 0 x Cel 0\r\n");
    assert_eq!(
        StreamDescription::from_media(&m).unwrap(),
        Some(agent_desc())
    );
    // A section with no sensor format at all is not an error.
    let m = parse_str(PHONE_OFFER).unwrap().media.remove(1);
    assert_eq!(StreamDescription::from_media(&m).unwrap(), None);
}

#[test]
fn stream_configs_keep_the_previous_description() {
    let first = agent_desc();
    let mut second = first.clone();
    second.samples.as_mut().unwrap().period = 20;
    let second = second.next_config_after(&first);
    let mut c = StreamConfigs::new(first.clone());
    c.install(second.clone());
    assert_eq!(c.current(), &second);
    assert_eq!(c.get(1), Some(&first));
    assert_eq!(c.get(2), Some(&second));
    assert_eq!(c.get(3), None);
    let mut third = second.clone();
    third.samples.as_mut().unwrap().samples_per_packet = 1;
    c.install(third.clone()); // same config number: replaces
    assert_eq!(c.get(2), Some(&third));
    assert_eq!(c.get(1), Some(&first));
}

#[test]
fn fixed_point_conversions() {
    let t = ch("t", "Cel", -2);
    assert_eq!(t.to_raw(21.5), 2150);
    assert_eq!(t.to_raw(-0.004), 0);
    assert_eq!(t.to_raw(-0.005), -1, "rounds half away from zero");
    assert_eq!(t.to_value(2150), Some(21.5));
    assert_eq!(t.to_value(crate::payload::MISSING), None);
    assert_eq!(t.to_raw(f64::NAN), crate::payload::MISSING);
    assert_eq!(t.to_raw(1e300), i32::MAX);
    assert_eq!(t.to_raw(-1e300), i32::MIN + 1);
    let p = ch("p", "Pa", 2);
    assert_eq!(p.to_raw(101_325.0), 1013);
    assert_eq!(p.to_value(1013), Some(101_300.0));
    let s = agent_desc().samples.unwrap();
    assert_eq!(s.instant_timestamp(u32::MAX - 5, 1), 4);
}
