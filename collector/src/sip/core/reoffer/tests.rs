//! Changes of a running stream, both ways.

use crate::sip::core::testing::*;

fn set_rate(hz: f64) -> Request {
    Request::SetRate {
        sensor: "s1".into(),
        hz,
    }
}

#[test]
fn set_rate_sends_a_reinvite_and_records_the_new_stream() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_control(set_rate(50.0), ReplyTo(3), clock.at(20));
    let acts = actions(&mut c);
    let [
        Action::ExpectConfig { media, until },
        Action::Reinvite {
            session: s, offer, ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!((*media, *s), (StreamKey(500), session(1)));
    assert_eq!(*until, clock.at(55).instant);
    let offer = offer.clone();
    // A second change waits for the first.
    c.handle_control(set_rate(25.0), ReplyTo(4), clock.at(21));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(4),
            reply: Reply::error("a change of sip:s1@example.net's stream is already under way")
        }]
    );
    c.handle_event(
        UaEvent::ReofferAnswered {
            session: session(1),
            answer: sensor_answer(&offer),
        },
        clock.at(22),
    );
    let acts = actions(&mut c);
    let [
        Action::Renegotiate {
            opened: o,
            call_id,
            agreed,
            answer: None,
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!((*o, call_id.as_str()), (opened(), "call-1"));
    assert_eq!(agreed.description.samples.as_ref().unwrap().period, 2);
    let agreed = agreed.clone();
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: None,
            result: Ok((SessionId(51), agreed)),
        },
        clock.at(23),
    );
    let acts = actions(&mut c);
    let [Action::Reply { to, reply }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(*to, ReplyTo(3));
    assert!(reply.ok, "{reply:?}");
    assert!(reply.message.starts_with("sip:s1@example.net now streams "));
    // The same rate again changes nothing.
    c.handle_control(set_rate(50.0), ReplyTo(5), clock.at(24));
    let acts = actions(&mut c);
    let [Action::Reply { reply, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert!(reply.ok);
    assert!(
        reply
            .message
            .starts_with("sip:s1@example.net already streams ")
    );
}

/// A streaming sensor, asked by `set-rate` (reply 3) at 20 s, refuses the
/// re-INVITE with `status` at 21 s.
fn refused_set_rate(c: &mut Core, clock: &Clock, status: u16, warning: Option<&str>) {
    active_incoming(c, clock);
    c.handle_control(set_rate(50.0), ReplyTo(3), clock.at(20));
    actions(c);
    c.handle_event(
        UaEvent::ReofferRejected {
            session: session(1),
            status,
            warning: warning.map(str::to_owned),
        },
        clock.at(21),
    );
}

#[test]
fn a_refused_or_unsent_reinvite_is_reported_and_another_may_follow() {
    let (mut c, clock) = core();
    refused_set_rate(&mut c, &clock, 488, Some("no"));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(3),
            reply: Reply::error("sip:s1@example.net refused the change with 488: no")
        }]
    );
    c.handle_control(set_rate(50.0), ReplyTo(4), clock.at(22));
    assert_eq!(actions(&mut c).len(), 2);
    c.handle_report(
        Report::ReinviteFailed {
            session: session(1),
            error: UaError::OfferPending(session(1)),
        },
        clock.at(22),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(4),
            reply: Reply::error(UaError::OfferPending(session(1)).to_string())
        }]
    );
}

/// The UA answered the sensor's challenge itself (RFC 3261 22.2); a
/// refusal that is still about credentials names what to fix.
#[test]
fn a_reinvite_refused_for_its_credentials_names_sip_calling() {
    for (calling, status, wanted) in [
        (
            Some("collector"),
            401,
            "did not accept sip.calling user \"collector\"",
        ),
        (
            Some("collector"),
            403,
            "did not accept sip.calling user \"collector\"",
        ),
        (None, 401, "set sip.calling"),
    ] {
        let (mut c, clock) = core_with(|s| s.calling_user = calling.map(str::to_owned));
        refused_set_rate(&mut c, &clock, status, None);
        let acts = actions(&mut c);
        let [Action::Reply { reply, .. }] = &acts[..] else {
            panic!("{acts:?}")
        };
        assert!(!reply.ok);
        assert!(reply.message.contains(wanted), "{}", reply.message);
    }
}

#[test]
fn set_rate_of_a_sensor_not_streaming_is_an_error() {
    let (mut c, clock) = core();
    c.handle_control(set_rate(50.0), ReplyTo(1), clock.at(0));
    assert_eq!(
        actions(&mut c),
        vec![Action::Reply {
            to: ReplyTo(1),
            reply: Reply::error("no active stream of s1")
        }]
    );
}

#[test]
fn a_reoffer_for_an_unknown_or_unready_call_is_refused() {
    let (mut c, clock) = core();
    let offer = sensor_offer(&capabilities());
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: offer.clone(),
        },
        clock.at(0),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            sensor: None,
            answer: Err((481, "no such stream".into()))
        }]
    );
    let req = request("INVITE", "s1", "call-1", "");
    c.handle_event(invite_event(req, PROXY, offer.clone()), clock.at(1));
    actions(&mut c);
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer,
        },
        clock.at(2),
    );
    // RFC 3261 14.2.
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            sensor: None,
            answer: Err((491, "the stream is still being set up".into()))
        }]
    );
}

#[test]
fn an_unchanged_reoffer_is_answered_at_once() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: sensor_offer(&capabilities()),
        },
        clock.at(5),
    );
    let acts = actions(&mut c);
    let [
        Action::AnswerReoffer {
            session: s,
            sensor: Some(_),
            answer: Ok(_),
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*s, session(1));
}

/// The sensor's stream with one channel only, under a new `cfg`.
fn one_channel_fewer() -> StreamDescription {
    let mut fewer = capabilities();
    if let Some(s) = fewer.samples.as_mut() {
        s.channels.truncate(1);
    }
    fewer.config = 2;
    fewer
}

#[test]
fn a_sensor_changing_its_channels_is_answered_once_recorded() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    let fewer = one_channel_fewer();
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: sensor_offer(&fewer),
        },
        clock.at(5),
    );
    let acts = actions(&mut c);
    let [
        Action::Renegotiate {
            agreed,
            answer: Some(answer),
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(agreed.description, fewer);
    let answer = answer.clone();
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: Some(answer.clone()),
            result: Err(RenegotiateError::Gone),
        },
        clock.at(6),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            sensor: None,
            answer: Err((500, "the stream is gone".into()))
        }]
    );
    let agreed = agreed.clone();
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: Some(answer.clone()),
            result: Ok((SessionId(52), agreed)),
        },
        clock.at(7),
    );
    assert_eq!(
        actions(&mut c),
        vec![Action::AnswerReoffer {
            session: session(1),
            sensor: Some(opened().sensor),
            answer: Ok(answer)
        }]
    );
}

#[test]
fn an_unanswerable_reoffer_is_refused_with_a_warning() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer: b"v=0\r\n".to_vec(),
        },
        clock.at(5),
    );
    let acts = actions(&mut c);
    let [
        Action::Warn { kind, message },
        Action::AnswerReoffer {
            answer: Err((status, _)),
            ..
        },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*kind, "reoffer");
    assert!(message.starts_with(&format!(
        "re-offer from sip:s1@example.net ({HOST}): {status} "
    )));
}

/// What a sensor of docs/protocol.md section 11 supports: instants,
/// NACK + RTX, backfill from `oldest`.
fn sensor_support(oldest: u64) -> sipsensor_protocol::RecoverySupport {
    use sipsensor_protocol::{BackfillSupport, RecoverySupport, RtxSupport};
    RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: Duration::from_secs(3),
            ssrc: Some(0x5e1f_0001),
        }),
        backfill: Some(BackfillSupport {
            oldest: Some(oldest),
            ssrc: Some(0x0bf0_0001),
            ..BackfillSupport::default()
        }),
    }
}

fn sensor_offer_with(
    desc: &StreamDescription,
    support: &sipsensor_protocol::RecoverySupport,
) -> Vec<u8> {
    let (mut local, mut origin) = sensor_media();
    local.ssrc = Some(0x1a2b_3c4d);
    local.cname = Some("s1@198.51.100.10".into());
    sipsensor_protocol::offer_with_recovery(desc, StreamRole::Sender, &local, support, &mut origin)
        .unwrap()
        .to_bytes()
}

fn reoffer(c: &mut Core, clock: &Clock, secs: u64, offer: Vec<u8>) -> Vec<Action> {
    c.handle_event(
        UaEvent::ReofferReceived {
            session: session(1),
            offer,
        },
        clock.at(secs),
    );
    actions(c)
}

#[test]
fn a_sensor_reoffer_that_changes_only_the_recovery_agreement_installs_it() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    // The same stream, now with NACK + RTX and backfill (11.1 rule 5).
    let acts = reoffer(
        &mut c,
        &clock,
        5,
        sensor_offer_with(&capabilities(), &sensor_support(1)),
    );
    let [
        Action::Recover {
            opened: o,
            recovery,
            ..
        },
        Action::AnswerReoffer { answer: Ok(_), .. },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*o, opened());
    assert_eq!(recovery.rtx.as_ref().unwrap().ssrc, Some(0x5e1f_0001));
    assert_eq!(recovery.backfill.as_ref().unwrap().ssrc, Some(0x0bf0_0001));
    // Another oldest instant asks nothing new of the stream.
    let acts = reoffer(
        &mut c,
        &clock,
        6,
        sensor_offer_with(&capabilities(), &sensor_support(9)),
    );
    assert!(
        matches!(&acts[..], [Action::AnswerReoffer { answer: Ok(_), .. }]),
        "{acts:?}"
    );
    // Without section 11 again: NACKs, RTX and backfill stop.
    let acts = reoffer(&mut c, &clock, 7, sensor_offer(&capabilities()));
    let [
        Action::Recover { recovery, .. },
        Action::AnswerReoffer { .. },
    ] = &acts[..]
    else {
        panic!("{acts:?}")
    };
    assert_eq!(*recovery, AgreedRecovery::default());
}

#[test]
fn a_changed_stream_carries_its_recovery_agreement_both_ways() {
    let (mut c, clock) = core();
    active_incoming(&mut c, &clock);
    // The sensor's re-INVITE.
    let fewer = one_channel_fewer();
    let acts = reoffer(
        &mut c,
        &clock,
        5,
        sensor_offer_with(&fewer, &sensor_support(1)),
    );
    let [Action::Renegotiate { recovery, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(recovery.backfill.as_ref().unwrap().ssrc, Some(0x0bf0_0001));
    let Action::Renegotiate { agreed, answer, .. } = &acts[0] else {
        unreachable!()
    };
    c.handle_report(
        Report::Renegotiated {
            session: session(1),
            answer: answer.clone(),
            result: Ok((SessionId(52), agreed.clone())),
        },
        clock.at(6),
    );
    actions(&mut c);
    // Ours (set-rate): the sensor's answer agrees section 11 no more.
    c.handle_control(set_rate(50.0), ReplyTo(3), clock.at(20));
    let acts = actions(&mut c);
    let [_, Action::Reinvite { offer, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    c.handle_event(
        UaEvent::ReofferAnswered {
            session: session(1),
            answer: sensor_answer(offer),
        },
        clock.at(22),
    );
    let acts = actions(&mut c);
    let [Action::Renegotiate { recovery, .. }] = &acts[..] else {
        panic!("{acts:?}")
    };
    assert_eq!(*recovery, AgreedRecovery::default());
}
