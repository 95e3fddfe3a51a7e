//! docs/protocol.md 11.1 through the controller: our offer and answer
//! state what the media layer supports, what was agreed reaches the
//! stream, and a peer that knows nothing of section 11 sees exactly the
//! SDP it saw before.

use super::*;
use crate::session::media::{RecoverySsrcs, recovery_support};
use sipsensor_protocol::{
    BackfillSupport, RecoverySupport, RtxSupport, Sdp, agreed_recovery, answer_with_recovery,
    make_offer,
};

const LIVE: u32 = 0x1a2b_3c4d;
const SSRCS: RecoverySsrcs = RecoverySsrcs {
    rtx: 0x5e1f_0001,
    backfill: 0x0bf0_0001,
};
/// 2025-12-25T00:00:00Z.
const OLDEST: i64 = 1_766_620_800_000_000_000;

fn settings_with(recovery: RecoverySupport) -> Settings {
    let mut s = settings(false);
    s.local_media.ssrc = Some(LIVE);
    s.local_media.cname = Some("s1@198.51.100.10".into());
    s.recovery = recovery;
    s
}

/// Calls at once (no registrar) and returns the offer.
fn calling(c: &mut Controller, now: Instant) -> Vec<u8> {
    c.start(now);
    let acts = actions(c);
    let Some(Action::Call { offer, .. }) = acts.into_iter().next() else {
        panic!("no call")
    };
    c.call_placed(Ok(session(1)), now);
    offer
}

/// The collector of docs/protocol.md 11.1 answering: its mark, a cap.
fn recovering_answer(offer: &[u8]) -> Vec<u8> {
    let offer = parse_sdp(offer).unwrap();
    let mut origin = LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), 7);
    let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
    let support = RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: Duration::from_secs(3),
            ssrc: None,
        }),
        backfill: Some(BackfillSupport {
            mark: Some(1_767_225_300_100_000_000),
            max_rate: Some(2000),
            ..BackfillSupport::default()
        }),
    };
    let policy = AnswerPolicy::Receive(ReceivePolicy::default());
    let (answer, _, _) =
        answer_with_recovery(&offer, &policy, &local, &support, &mut origin).unwrap();
    answer.to_bytes()
}

fn started(c: &mut Controller) -> (Agreed, AgreedRecovery) {
    let acts = actions(c);
    match acts.into_iter().next() {
        Some(Action::StartStream {
            agreed, recovery, ..
        }) => (agreed, recovery),
        other => panic!("{other:?}"),
    }
}

fn text(sdp: &[u8]) -> String {
    String::from_utf8(sdp.to_vec()).unwrap()
}

#[test]
fn our_offer_states_recovery_and_a_recovering_collector_switches_it_on() {
    let now = Instant::now();
    let support = recovery_support(SSRCS, Some(Some(OLDEST)));
    let mut c = Controller::new(settings_with(support), IdGenerator::seeded(3));
    let offer = calling(&mut c, now);
    let sdp = text(&offer);
    for line in [
        "a=extmap:1 https://github.com/sipsensor/sipsensor/blob/main/docs/protocol.md#sample-instant",
        "a=rtcp-fb:96 nack",
        "a=rtpmap:97 rtx/100",
        "a=fmtp:97 apt=96;rtx-time=3000",
        "a=rtpmap:98 sensor-backfill/100",
        "a=fmtp:98 oldest=1766620800000000000",
        "a=ssrc:1579089921 cname:s1@198.51.100.10",
        "a=ssrc-group:FID 439041101 1579089921",
        "a=ssrc:200278017 cname:s1@198.51.100.10",
    ] {
        assert!(sdp.contains(line), "{line} missing from\n{sdp}");
    }
    c.handle_event(
        UaEvent::Answered {
            session: session(1),
            answer: recovering_answer(&offer),
        },
        now,
    );
    let (_, recovery) = started(&mut c);
    assert_eq!(recovery.instant_id, Some(1));
    let rtx = recovery.rtx.expect("NACK + RTX agreed");
    assert_eq!(rtx.payload_types, [(96, 97)]);
    let backfill = recovery.backfill.expect("backfill agreed");
    assert_eq!(backfill.mark, 1_767_225_300_100_000_000);
    assert_eq!(backfill.max_rate, Some(2000));
    assert_eq!(backfill.ssrc, Some(SSRCS.backfill));
}

#[test]
fn without_a_spool_backfill_is_not_offered() {
    let now = Instant::now();
    let support = recovery_support(SSRCS, None);
    let mut c = Controller::new(settings_with(support), IdGenerator::seeded(3));
    let sdp = text(&calling(&mut c, now));
    assert!(sdp.contains("a=extmap:1 "), "{sdp}");
    assert!(sdp.contains(" rtx/100"), "{sdp}");
    assert!(!sdp.contains("sensor-backfill"), "{sdp}");
    assert!(!sdp.contains("a=ssrc:200278017"), "{sdp}");
}

#[test]
fn a_collector_without_recovery_streams_what_it_streamed_before() {
    let now = Instant::now();
    let support = recovery_support(SSRCS, Some(None));
    let mut with = Controller::new(settings_with(support), IdGenerator::seeded(3));
    let mut without = Controller::new(
        settings_with(RecoverySupport::default()),
        IdGenerator::seeded(3),
    );
    let offer = calling(&mut with, now);
    let plain_offer = calling(&mut without, now);
    // The collector of sections 1-9 answers both.
    let answer = collector_answer(&offer, ReceivePolicy::default());
    let plain_answer = collector_answer(&plain_offer, ReceivePolicy::default());
    assert_eq!(text(&answer), text(&plain_answer), "it ignored the lines");
    for (c, a) in [(&mut with, answer), (&mut without, plain_answer)] {
        c.handle_event(
            UaEvent::Answered {
                session: session(1),
                answer: a,
            },
            now,
        );
    }
    let (agreed, recovery) = started(&mut with);
    let (plain_agreed, plain_recovery) = started(&mut without);
    assert_eq!(recovery, AgreedRecovery::default(), "nothing switched on");
    assert_eq!(recovery, plain_recovery);
    assert_eq!(agreed, plain_agreed);
}

#[test]
fn a_collector_offer_without_recovery_gets_the_answer_it_got_before() {
    let now = Instant::now();
    // A collector's re-INVITE of sections 1-9 (no recovery lines).
    let collector_offer = |origin_id| -> Sdp {
        let mut origin =
            LocalSdp::with_session_id("collector", "203.0.113.5".parse().unwrap(), origin_id);
        let local = LocalMedia::new("203.0.113.5:50000".parse().unwrap());
        make_offer(&capabilities(), StreamRole::Receiver, &local, &mut origin).unwrap()
    };
    let mut answers = Vec::new();
    for support in [
        recovery_support(SSRCS, Some(Some(OLDEST))),
        RecoverySupport::default(),
    ] {
        let mut c = Controller::new(settings_with(support), IdGenerator::seeded(3));
        let offer = calling(&mut c, now);
        c.handle_event(
            UaEvent::Answered {
                session: session(1),
                answer: collector_answer(&offer, ReceivePolicy::default()),
            },
            now,
        );
        actions(&mut c);
        c.handle_event(
            UaEvent::ReofferReceived {
                session: session(1),
                offer: collector_offer(9).to_bytes(),
            },
            now,
        );
        let acts = actions(&mut c);
        let [
            Action::AnswerReoffer {
                answer: Ok(answer), ..
            },
            Action::UpdateStream(_, recovery),
        ] = &acts[..]
        else {
            panic!("{acts:?}")
        };
        assert_eq!(recovery, &AgreedRecovery::default());
        answers.push(text(answer));
    }
    // Identical but for o='s version: our earlier offers differed, so the
    // session version moved on (RFC 3264 8).
    let body = |a: &str| -> Vec<String> {
        a.lines()
            .filter(|l| !l.starts_with("o="))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(body(&answers[0]), body(&answers[1]));
    // And the agreed recovery of the exchange, from the offerer's side.
    let offer = collector_offer(9);
    let answer = parse_sdp(answers[0].as_bytes()).unwrap();
    assert_eq!(
        agreed_recovery(&offer, &answer, StreamRole::Receiver),
        AgreedRecovery::default()
    );
}
