//! Offer/answer and stream-description tests; the examples are the ones
//! docs/protocol.md shows, byte for byte.

use super::*;
use crate::ids::IdGenerator;
use std::net::SocketAddr;

fn unit(s: &str) -> Unit {
    Unit::from_symbol(s).unwrap()
}

pub(super) fn ch(name: &str, u: &str, scale: i8) -> ChannelSpec {
    ChannelSpec {
        name: name.into(),
        unit: unit(u),
        scale,
    }
}

/// The agent of docs/protocol.md: BME280 at 10 Hz on a 100 Hz clock, a
/// door contact and a motion sensor.
pub(super) fn agent_desc() -> StreamDescription {
    StreamDescription {
        clock_rate: 100,
        config: 1,
        samples: Some(SampleFormat {
            payload_type: 96,
            period: 10,
            samples_per_packet: 5,
            channels: vec![
                ch("temperature", "Cel", -2),
                ch("humidity", "%RH", -1),
                ch("pressure", "Pa", 0),
            ],
        }),
        events: Some(EventFormat {
            payload_type: 97,
            inputs: vec!["door".into(), "motion".into()],
        }),
    }
}

pub(super) fn agent_local() -> LocalMedia {
    LocalMedia {
        rtp: "198.51.100.10:40000".parse().unwrap(),
        rtcp: None,
        ssrc: Some(0x1a2b3c4d),
        cname: Some("s1@198.51.100.10".into()),
        security: Default::default(),
    }
}

pub(super) fn agent_origin() -> LocalSdp {
    LocalSdp::with_session_id("s1", "198.51.100.10".parse().unwrap(), 3_900_000_001)
}

pub(super) fn collector_local() -> LocalMedia {
    LocalMedia::new("203.0.113.5:50000".parse().unwrap())
}

pub(super) fn collector_origin() -> LocalSdp {
    LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 3_900_000_002)
}

pub(super) const AGENT_OFFER: &str = "v=0\r\n\
o=s1 3900000001 1 IN IP4 198.51.100.10\r\n\
s=sipsensor\r\n\
c=IN IP4 198.51.100.10\r\n\
t=0 0\r\n\
m=application 40000 RTP/AVP 96 97\r\n\
a=rtpmap:96 sensor/100\r\n\
a=fmtp:96 ver=1;cfg=1;period=10;spp=5\r\n\
a=sensor-channel:96 0 temperature Cel -2\r\n\
a=sensor-channel:96 1 humidity %RH -1\r\n\
a=sensor-channel:96 2 pressure Pa 0\r\n\
a=rtpmap:97 sensor-event/100\r\n\
a=fmtp:97 ver=1;cfg=1\r\n\
a=sensor-input:97 0 door\r\n\
a=sensor-input:97 1 motion\r\n\
a=ptime:500\r\n\
a=ssrc:439041101 cname:s1@198.51.100.10\r\n\
a=sendonly\r\n";

const COLLECTOR_ANSWER_5HZ: &str = "v=0\r\n\
o=collector 3900000002 1 IN IP4 203.0.113.5\r\n\
s=sipsensor\r\n\
c=IN IP4 203.0.113.5\r\n\
t=0 0\r\n\
m=application 50000 RTP/AVP 96 97\r\n\
a=rtpmap:96 sensor/100\r\n\
a=fmtp:96 ver=1;cfg=1;period=20;spp=5\r\n\
a=sensor-channel:96 0 temperature Cel -2\r\n\
a=sensor-channel:96 1 pressure Pa 0\r\n\
a=rtpmap:97 sensor-event/100\r\n\
a=fmtp:97 ver=1;cfg=1\r\n\
a=sensor-input:97 0 door\r\n\
a=sensor-input:97 1 motion\r\n\
a=ptime:1000\r\n\
a=recvonly\r\n";

fn receive(channels: Option<&[&str]>, max_rate_hz: Option<f64>) -> AnswerPolicy {
    AnswerPolicy::Receive(ReceivePolicy {
        channels: channels.map(|c| c.iter().map(|s| s.to_string()).collect()),
        max_rate_hz,
        ..ReceivePolicy::default()
    })
}

#[test]
fn agent_offer_is_the_documented_one() {
    let sdp = offer(
        &agent_desc(),
        Role::Sender,
        &agent_local(),
        &mut agent_origin(),
    )
    .unwrap();
    assert_eq!(sdp.to_string(), AGENT_OFFER);
    let m = &parse_str(AGENT_OFFER).unwrap().media[0];
    assert_eq!(
        StreamDescription::from_media(m).unwrap(),
        Some(agent_desc())
    );
}

#[test]
fn collector_narrows_channels_and_halves_the_rate() {
    let offer_sdp = parse_str(AGENT_OFFER).unwrap();
    let policy = receive(Some(&["temperature", "PRESSURE"]), Some(5.0));
    let (ans, agreed) = answer(
        &offer_sdp,
        &policy,
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert_eq!(ans.to_string(), COLLECTOR_ANSWER_5HZ);
    assert_eq!(agreed.direction, Direction::RecvOnly);
    assert_eq!(agreed.remote_ssrc, Some(0x1a2b3c4d));
    assert_eq!(agreed.remote_cname.as_deref(), Some("s1@198.51.100.10"));
    assert_eq!(
        agreed.remote,
        Some(RemoteMedia {
            rtp: "198.51.100.10:40000".parse().unwrap(),
            rtcp: "198.51.100.10:40001".parse().unwrap(),
        })
    );
    let s = agreed.description.samples.as_ref().unwrap();
    assert_eq!(s.period, 20);
    assert_eq!(agreed.description.sample_rate_hz(), Some(5.0));
    // The agent takes the answer and agrees on the same thing.
    let at_agent = apply_answer(&offer_sdp, &ans, Role::Sender).unwrap();
    assert_eq!(at_agent.description, agreed.description);
    assert_eq!(at_agent.direction, Direction::SendOnly);
    assert!(at_agent.is_active());
    assert_eq!(
        at_agent.remote.unwrap().rtcp,
        "203.0.113.5:50001".parse::<SocketAddr>().unwrap()
    );
}

#[test]
fn rate_caps_pick_the_smallest_multiple_of_the_period() {
    let offer_sdp = parse_str(AGENT_OFFER).unwrap(); // 10 Hz
    for (cap, period) in [
        (100.0, 10),
        (10.0, 10),
        (9.99, 20),
        (3.0, 40),
        (0.5, 200),
        (1e-3, 100_000),
    ] {
        let (_, a) = answer(
            &offer_sdp,
            &receive(None, Some(cap)),
            &collector_local(),
            &mut collector_origin(),
        )
        .unwrap();
        assert_eq!(a.description.samples.unwrap().period, period, "cap {cap}");
    }
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = answer(
            &offer_sdp,
            &receive(None, Some(bad)),
            &collector_local(),
            &mut collector_origin(),
        )
        .unwrap_err();
        assert!(matches!(e, NegotiationError::Rate(_)), "{bad}: {e:?}");
    }
    let e = answer(
        &offer_sdp,
        &receive(None, Some(1e-9)),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap_err();
    assert!(matches!(e, NegotiationError::Rate(_)));
}

#[test]
fn collector_can_drop_the_events_or_the_samples() {
    let offer_sdp = parse_str(AGENT_OFFER).unwrap();
    let p = AnswerPolicy::Receive(ReceivePolicy {
        inputs: Some(vec![]),
        samples_per_packet: Some(1),
        ..ReceivePolicy::default()
    });
    let (ans, a) = answer(&offer_sdp, &p, &collector_local(), &mut collector_origin()).unwrap();
    assert!(a.description.events.is_none());
    assert_eq!(ans.media[0].formats, ["96"]);
    assert_eq!(
        a.description.samples.as_ref().unwrap().samples_per_packet,
        1
    );
    assert_eq!(
        apply_answer(&offer_sdp, &ans, Role::Sender)
            .unwrap()
            .description,
        a.description
    );

    let (ans, a) = answer(
        &offer_sdp,
        &receive(Some(&[]), None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert!(a.description.samples.is_none());
    assert_eq!(ans.media[0].formats, ["97"]);
    assert!(!ans.media[0].attributes.iter().any(|a| a.name == "ptime"));

    let p = AnswerPolicy::Receive(ReceivePolicy {
        channels: Some(vec!["nothing".into()]),
        inputs: Some(vec![]),
        ..ReceivePolicy::default()
    });
    let e = answer(&offer_sdp, &p, &collector_local(), &mut collector_origin()).unwrap_err();
    assert_eq!(e, NegotiationError::NothingSelected);
    assert_eq!((e.status_code(), e.warning_code()), (488, 304));
}

pub(super) const PHONE_OFFER: &str = "v=0\r\n\
o=- 1 1 IN IP4 198.51.100.20\r\n\
s=-\r\n\
c=IN IP4 198.51.100.20\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
m=application 10002 RTP/AVP 98\r\n\
a=rtpmap:98 t140/1000\r\n";

#[test]
fn an_audio_phone_offer_gets_488_304_with_a_reason() {
    let e = answer(
        &parse_str(PHONE_OFFER).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap_err();
    assert_eq!(e.status_code(), 488);
    assert_eq!(
        e.warning_header("collector.example"),
        "304 collector.example \"no sensor stream offered (audio RTP/AVP, \
         application RTP/AVP without a sensor format)\""
    );
    assert!(e.peer_cannot_take_sensor_streams());
}

#[test]
fn warning_text_is_escaped() {
    let e = NegotiationError::NoSensorStream("a \"quoted\\\" one\r\n".into());
    assert_eq!(
        e.warning_header("h"),
        "304 h \"no sensor stream offered (a \\\"quoted\\\\\\\" one  )\""
    );
}

#[test]
fn offer_problems_map_to_warning_codes() {
    let cases: &[(&str, &str, u16, u16)] = &[
        ("RTP/AVP 96 97", "RTP/SAVP 96 97", 488, 302),
        ("ver=1;cfg=1;period", "ver=2;cfg=1;period", 488, 305),
        ("temperature Cel", "temperature degC", 488, 306),
        ("sensor-event/100", "sensor-event/50", 488, 305),
        ("period=10", "period=0", 488, 307),
        ("period=10", "period=x", 488, 307),
        ("a=sensor-channel:96 1", "a=sensor-channel:96 0", 488, 306),
        (
            "c=IN IP4 198.51.100.10",
            "c=IN IP4 sensor.example",
            488,
            301,
        ),
        ("v=0\r\n", "v=0\r\nq\r\n", 400, 399),
    ];
    for (from, to, status, code) in cases {
        let text = AGENT_OFFER.replacen(from, to, 1);
        assert_ne!(text, AGENT_OFFER, "{from}");
        let e = match parse_str(&text) {
            Ok(sdp) => answer(
                &sdp,
                &receive(None, None),
                &collector_local(),
                &mut collector_origin(),
            )
            .unwrap_err(),
            Err(e) => NegotiationError::from(e),
        };
        assert_eq!(
            (e.status_code(), e.warning_code()),
            (*status, *code),
            "{to}: {e}"
        );
    }
}

#[test]
fn other_streams_are_rejected_in_place_with_port_zero() {
    let text = AGENT_OFFER.replace(
        "m=application 40000",
        "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\nm=application 40000",
    ) + "m=video 30002 RTP/AVP 31\r\n";
    let offer_sdp = parse_str(&text).unwrap();
    let (ans, _) = answer(
        &offer_sdp,
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert_eq!(ans.media.len(), 3);
    assert_eq!(
        (ans.media[0].media.as_str(), ans.media[0].port),
        ("audio", 0)
    );
    assert_eq!(ans.media[0].formats, ["0"]);
    assert_eq!(ans.media[1].port, 50000);
    assert_eq!(
        (ans.media[2].media.as_str(), ans.media[2].port),
        ("video", 0)
    );
    let agreed = apply_answer(&offer_sdp, &ans, Role::Sender).unwrap();
    assert_eq!(agreed.description, agent_desc());
}

#[test]
fn a_phone_answering_the_agent_is_recognised() {
    let offer_sdp = parse_str(AGENT_OFFER).unwrap();
    // baresip-style: the unknown application stream is refused with port 0.
    let declined = parse_str(
        "v=0\r\no=- 2 2 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n\
         m=application 0 RTP/AVP 96 97\r\n",
    )
    .unwrap();
    let e = apply_answer(&offer_sdp, &declined, Role::Sender).unwrap_err();
    assert_eq!(e, NegotiationError::Declined);
    assert!(e.peer_cannot_take_sensor_streams());
    // A broken UA answering with audio.
    let audio = parse_str(&PHONE_OFFER.replace(
        "m=application 10002 RTP/AVP 98\r\na=rtpmap:98 t140/1000\r\n",
        "",
    ))
    .unwrap();
    let e = apply_answer(&offer_sdp, &audio, Role::Sender).unwrap_err();
    assert!(matches!(e, NegotiationError::NotSensorPeer(_)), "{e:?}");
    assert!(e.peer_cannot_take_sensor_streams());
    let two = parse_str(PHONE_OFFER).unwrap();
    let e = apply_answer(&offer_sdp, &two, Role::Sender).unwrap_err();
    assert!(matches!(e, NegotiationError::NotSensorPeer(_)), "{e:?}");
    let no_format = parse_str(
        "v=0\r\no=- 2 2 IN IP4 198.51.100.20\r\ns=-\r\nc=IN IP4 198.51.100.20\r\nt=0 0\r\n\
         m=application 9 RTP/AVP 96\r\n",
    )
    .unwrap();
    let e = apply_answer(&offer_sdp, &no_format, Role::Sender).unwrap_err();
    assert!(matches!(e, NegotiationError::NotSensorPeer(_)), "{e:?}");
}

#[test]
fn answers_that_widen_the_offer_are_refused() {
    let offer_sdp = parse_str(AGENT_OFFER).unwrap();
    let cases: &[(&str, &str)] = &[
        ("period=20", "period=25"),
        ("cfg=1;period", "cfg=2;period"),
        ("0 temperature Cel -2", "0 temperature Cel -3"),
        ("0 temperature Cel", "0 temperature K"),
        ("0 temperature", "0 windspeed"),
        ("sensor-input:97 0 door", "sensor-input:97 0 window"),
        ("sensor/100", "sensor/200"),
    ];
    for (from, to) in cases {
        let text = COLLECTOR_ANSWER_5HZ.replacen(from, to, 1);
        assert_ne!(text, COLLECTOR_ANSWER_5HZ);
        let e = apply_answer(&offer_sdp, &parse_str(&text).unwrap(), Role::Sender).unwrap_err();
        assert!(
            matches!(
                e,
                NegotiationError::AnswerMismatch(_) | NegotiationError::Stream(_)
            ),
            "{to}: {e:?}"
        );
    }
    // A changed payload type number.
    let text = COLLECTOR_ANSWER_5HZ
        .replace(":96", ":98")
        .replace(" 96 97", " 98 97");
    let e = apply_answer(&offer_sdp, &parse_str(&text).unwrap(), Role::Sender).unwrap_err();
    assert!(matches!(e, NegotiationError::AnswerMismatch(_)), "{e:?}");
    // An answer that is sendonly too.
    let text = COLLECTOR_ANSWER_5HZ.replace("a=recvonly", "a=sendonly");
    let e = apply_answer(&offer_sdp, &parse_str(&text).unwrap(), Role::Sender).unwrap_err();
    assert!(matches!(e, NegotiationError::Direction(..)), "{e:?}");
}

#[test]
fn the_collector_re_offers_and_the_agent_answers_within_its_means() {
    // Session running at the agent's full description; the collector now
    // asks for 4 Hz of humidity and temperature (in that order) and door.
    let mut cur = agent_desc();
    cur.samples.as_mut().unwrap().channels.swap(0, 1);
    let mut asked = cur.clone();
    {
        let s = asked.samples.as_mut().unwrap();
        s.period = 25;
        s.channels.truncate(2);
        s.channels[0].scale = 0; // a stale scale: the agent's own wins
        asked.events.as_mut().unwrap().inputs = vec!["door".into(), "window".into()];
    }
    let asked = asked.next_config_after(&agent_desc());
    assert_eq!(asked.config, 2);
    let mut corigin = collector_origin();
    let offer_sdp = offer(&asked, Role::Receiver, &collector_local(), &mut corigin).unwrap();
    assert!(offer_sdp.media[0].has_flag("recvonly"));
    let caps = AnswerPolicy::Send {
        capabilities: agent_desc(),
    };
    let (ans, at_agent) = answer(&offer_sdp, &caps, &agent_local(), &mut agent_origin()).unwrap();
    let s = at_agent.description.samples.as_ref().unwrap();
    assert_eq!(s.period, 50, "lcm of asked 25 and the device's 10");
    let names: Vec<_> = s
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.scale))
        .collect();
    assert_eq!(names, [("humidity", -1), ("temperature", -2)]);
    assert_eq!(
        at_agent.description.events.as_ref().unwrap().inputs,
        ["door"]
    );
    assert_eq!(at_agent.description.config, 2);
    assert_eq!(at_agent.direction, Direction::SendOnly);
    assert!(ans.media[0].has_flag("sendonly"));
    assert_eq!(at_agent.remote.unwrap().rtp.port(), 50000);
    let at_collector = apply_answer(&offer_sdp, &ans, Role::Receiver).unwrap();
    assert_eq!(at_collector.description, at_agent.description);
    assert_eq!(at_collector.direction, Direction::RecvOnly);
    assert_eq!(at_collector.remote_ssrc, Some(0x1a2b3c4d));
}

#[test]
fn the_agent_refuses_what_it_cannot_send() {
    let mut asked = agent_desc();
    asked.clock_rate = 1000;
    let sdp = offer(
        &asked,
        Role::Receiver,
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    let caps = AnswerPolicy::Send {
        capabilities: agent_desc(),
    };
    let e = answer(&sdp, &caps, &agent_local(), &mut agent_origin()).unwrap_err();
    assert_eq!((e.status_code(), e.warning_code()), (488, 305));

    let mut asked = agent_desc();
    asked.samples.as_mut().unwrap().channels = vec![ch("co2", "/", 0)];
    asked.events = None;
    let sdp = offer(
        &asked,
        Role::Receiver,
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    let e = answer(&sdp, &caps, &agent_local(), &mut agent_origin()).unwrap_err();
    assert_eq!(e, NegotiationError::NothingSelected);

    // An offer that wants to send to the sensor.
    let sdp = offer(
        &agent_desc(),
        Role::Sender,
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    let e = answer(&sdp, &caps, &agent_local(), &mut agent_origin()).unwrap_err();
    assert!(
        matches!(e, NegotiationError::Direction("sendonly", _)),
        "{e:?}"
    );
    // And a collector that is offered a receive-only stream.
    let sdp = offer(
        &agent_desc(),
        Role::Receiver,
        &agent_local(),
        &mut agent_origin(),
    )
    .unwrap();
    let e = answer(
        &sdp,
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap_err();
    assert!(
        matches!(e, NegotiationError::Direction("recvonly", _)),
        "{e:?}"
    );
}

#[test]
fn hold_and_inactive_streams_stop_sending() {
    let text = AGENT_OFFER.replace("a=sendonly", "a=inactive");
    let (ans, a) = answer(
        &parse_str(&text).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert_eq!(a.direction, Direction::Inactive);
    assert!(!a.is_active());
    assert!(ans.media[0].has_flag("inactive"));
    // RFC 3264 8.4 old-style hold: c=0.0.0.0.
    let text = AGENT_OFFER.replace("c=IN IP4 198.51.100.10", "c=IN IP4 0.0.0.0");
    let (_, a) = answer(
        &parse_str(&text).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert_eq!(a.remote, None);
    assert!(!a.is_active());
    // Session-level direction applies when the media has none.
    let text = AGENT_OFFER
        .replace("a=sendonly\r\n", "")
        .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let (ans, _) = answer(
        &parse_str(&text).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert!(ans.media[0].has_flag("recvonly"));
    // An answer of inactive to an active offer.
    let offer_sdp = parse_str(AGENT_OFFER).unwrap();
    let inactive = parse_str(&COLLECTOR_ANSWER_5HZ.replace("a=recvonly", "a=inactive")).unwrap();
    assert_eq!(
        apply_answer(&offer_sdp, &inactive, Role::Sender)
            .unwrap()
            .direction,
        Direction::Inactive
    );
}

#[test]
fn rtcp_attribute_and_ipv6_addresses() {
    let local = LocalMedia {
        rtp: "[2001:db8::10]:40000".parse().unwrap(),
        rtcp: Some("[2001:db8::11]:40005".parse().unwrap()),
        ssrc: None,
        cname: None,
        security: Default::default(),
    };
    let mut origin = LocalSdp::new(
        "s1",
        "2001:db8::10".parse().unwrap(),
        &mut IdGenerator::seeded(3),
    );
    let sdp = offer(&agent_desc(), Role::Sender, &local, &mut origin).unwrap();
    let text = sdp.to_string();
    assert!(text.contains("c=IN IP6 2001:db8::10\r\n"), "{text}");
    assert!(
        text.contains("a=rtcp:40005 IN IP6 2001:db8::11\r\n"),
        "{text}"
    );
    assert!(!text.contains("a=ssrc"));
    let clocal = LocalMedia::new("[2001:db8::5]:50000".parse().unwrap());
    let mut corigin = LocalSdp::new(
        "c",
        "2001:db8::5".parse().unwrap(),
        &mut IdGenerator::seeded(4),
    );
    let (_, a) = answer(&sdp, &receive(None, None), &clocal, &mut corigin).unwrap();
    assert_eq!(
        a.remote.unwrap().rtcp,
        "[2001:db8::11]:40005".parse::<SocketAddr>().unwrap()
    );
    // Port-only a=rtcp uses the stream's address.
    let text = AGENT_OFFER.replace("a=sendonly", "a=rtcp:40009\r\na=sendonly");
    let (_, a) = answer(
        &parse_str(&text).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap();
    assert_eq!(
        a.remote.unwrap().rtcp,
        "198.51.100.10:40009".parse::<SocketAddr>().unwrap()
    );
    // A family this side does not speak, or a bad a=rtcp.
    let e = answer(
        &sdp,
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap_err();
    assert_eq!(e.warning_code(), 301);
    let text = AGENT_OFFER.replace("a=sendonly", "a=rtcp:x\r\na=sendonly");
    let e = answer(
        &parse_str(&text).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap_err();
    assert!(matches!(e, NegotiationError::Address(_)));
    // No c= anywhere.
    let text = AGENT_OFFER.replace("c=IN IP4 198.51.100.10\r\n", "");
    let e = answer(
        &parse_str(&text).unwrap(),
        &receive(None, None),
        &collector_local(),
        &mut collector_origin(),
    )
    .unwrap_err();
    assert!(matches!(e, NegotiationError::Address(_)));
    // A media-level c= different from the session's is kept.
    let mut other = agent_local();
    other.rtp = "198.51.100.99:40000".parse().unwrap();
    let sdp = offer(&agent_desc(), Role::Sender, &other, &mut agent_origin()).unwrap();
    assert_eq!(sdp.media[0].connections[0].address, "198.51.100.99");
}

#[test]
fn session_version_rises_only_when_the_sdp_changes() {
    // RFC 3264 section 8.
    let mut origin = agent_origin();
    let a = offer(&agent_desc(), Role::Sender, &agent_local(), &mut origin).unwrap();
    let b = offer(&agent_desc(), Role::Sender, &agent_local(), &mut origin).unwrap();
    assert_eq!(a, b);
    let mut slower = agent_desc();
    slower.samples.as_mut().unwrap().period = 20;
    let slower = slower.next_config_after(&agent_desc());
    let c = offer(&slower, Role::Sender, &agent_local(), &mut origin).unwrap();
    assert_eq!(c.origin.session_version, a.origin.session_version + 1);
    assert_eq!(c.origin.session_id, a.origin.session_id);
    assert_eq!(origin.session_id(), a.origin.session_id);
    // The same description again keeps its config number.
    assert_eq!(
        slower.clone().next_config_after(&slower).config,
        slower.config
    );
    let mut wrap = slower.clone();
    wrap.config = 255;
    assert_eq!(agent_desc().next_config_after(&wrap).config, 0);
}

#[test]
fn local_sdp_usernames_fall_back_to_a_dash() {
    let mut o = LocalSdp::new(
        "a b",
        "198.51.100.1".parse().unwrap(),
        &mut IdGenerator::seeded(5),
    );
    let sdp = o.stamp(vec![]);
    assert_eq!(sdp.origin.username, "-");
    assert!(sdp.origin.session_id < 1 << 63);
}

#[test]
fn negotiation_survives_corrupted_offers() {
    // Every prefix and many byte flips of a real offer go through parse and
    // answer without a panic: Ok or a typed error.
    let bytes = AGENT_OFFER.as_bytes();
    let policy = receive(Some(&["temperature"]), Some(2.0));
    let run = |b: &[u8]| {
        if let Ok(sdp) = parse(b)
            && let Ok((ans, _)) = answer(&sdp, &policy, &collector_local(), &mut collector_origin())
        {
            let _ = apply_answer(&sdp, &ans, Role::Sender);
        }
    };
    for end in 0..bytes.len() {
        run(&bytes[..end]);
    }
    let mut copy = bytes.to_vec();
    for i in 0..copy.len() {
        for v in [b'0', b'9', b' ', b':', b'/', b'-', 0x80] {
            let old = copy[i];
            copy[i] = v;
            run(&copy);
            copy[i] = old;
        }
    }
}
