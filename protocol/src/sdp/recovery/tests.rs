use super::super::tests::{
    agent_desc, agent_local, agent_origin, collector_local, collector_origin,
};
use super::*;
use crate::sdp::{
    AnswerPolicy, ReceivePolicy, Sdp, agreed_recovery, answer, answer_with_recovery, apply_answer,
    offer, offer_with_recovery, parse_str,
};

const MARK: u64 = 1_767_225_600_500_000_000;
const OLDEST: u64 = 1_767_139_200_000_000_000;

fn agent_support() -> RecoverySupport {
    RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: Duration::from_millis(3000),
            ssrc: Some(0x5e5e5e5e),
        }),
        backfill: Some(BackfillSupport {
            oldest: Some(OLDEST),
            ssrc: Some(0x0bf0bf00),
            ..BackfillSupport::default()
        }),
    }
}

fn collector_support() -> RecoverySupport {
    RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: Duration::from_millis(3000),
            ssrc: None,
        }),
        backfill: Some(BackfillSupport {
            mark: Some(MARK),
            max_rate: Some(2000),
            ..BackfillSupport::default()
        }),
    }
}

/// The agent's offer with everything, as it goes on the wire.
fn agent_offer() -> Sdp {
    let o = offer_with_recovery(
        &agent_desc(),
        Role::Sender,
        &agent_local(),
        &agent_support(),
        &mut agent_origin(),
    );
    parse_str(&o.unwrap().to_string()).unwrap()
}

/// A collector's re-offer with everything.
fn collector_offer() -> Sdp {
    let o = offer_with_recovery(
        &agent_desc(),
        Role::Receiver,
        &collector_local(),
        &collector_support(),
        &mut collector_origin(),
    );
    parse_str(&o.unwrap().to_string()).unwrap()
}

/// The collector's answer with everything, and what it agreed.
fn collector_answer(o: &Sdp) -> (Sdp, crate::sdp::Agreed, AgreedRecovery) {
    let (a, agreed, rec) = answer_with_recovery(
        o,
        &receive(),
        &collector_local(),
        &collector_support(),
        &mut collector_origin(),
    )
    .unwrap();
    (parse_str(&a.to_string()).unwrap(), agreed, rec)
}

fn receive() -> AnswerPolicy {
    AnswerPolicy::Receive(ReceivePolicy::default())
}

fn lines(sdp: &Sdp) -> Vec<String> {
    sdp.to_string().lines().map(str::to_string).collect()
}

#[test]
fn an_agent_offer_with_recovery_lists_its_formats_lines_and_ssrcs() {
    let o = agent_offer();
    let l = lines(&o);
    assert!(l.contains(&"m=application 40000 RTP/AVP 96 97 98 99 100".to_string()));
    for want in [
        format!("a=extmap:1 {SAMPLE_INSTANT_URI}"),
        "a=rtcp-fb:96 nack".into(),
        "a=rtcp-fb:97 nack".into(),
        "a=rtpmap:98 rtx/100".into(),
        "a=fmtp:98 apt=96;rtx-time=3000".into(),
        "a=rtpmap:99 rtx/100".into(),
        "a=fmtp:99 apt=97;rtx-time=3000".into(),
        "a=rtpmap:100 sensor-backfill/100".into(),
        format!("a=fmtp:100 oldest={OLDEST}"),
        "a=ssrc:1583242846 cname:s1@198.51.100.10".into(),
        "a=ssrc-group:FID 439041101 1583242846".into(),
        "a=ssrc:200326912 cname:s1@198.51.100.10".into(),
    ] {
        assert!(l.contains(&want), "missing {want}:\n{o}");
    }
    assert_eq!(l.last().map(String::as_str), Some("a=sendonly"));
    // The stream itself reads as before: the new formats are ignored.
    let m = &parse_str(&o.to_string()).unwrap().media[0];
    assert_eq!(
        StreamDescription::from_media(m).unwrap(),
        Some(agent_desc())
    );
}

#[test]
fn both_ends_with_recovery_agree_on_all_of_it() {
    let o = agent_offer();
    let (a, agreed, collector_view) = collector_answer(&o);
    let a = parse_str(&a.to_string()).unwrap();
    assert_eq!(
        apply_answer(&o, &a, Role::Sender).unwrap().description,
        agreed.description
    );
    let agent_view = agreed_recovery(&o, &a, Role::Sender);
    let expected = AgreedRecovery {
        instant_id: Some(1),
        rtx: Some(AgreedRtx {
            payload_types: vec![(96, 98), (97, 99)],
            rtx_time: Duration::from_millis(3000),
            ssrc: Some(0x5e5e5e5e),
        }),
        backfill: Some(AgreedBackfill {
            payload_type: 100,
            mark: MARK,
            oldest: Some(OLDEST),
            max_rate: Some(2000),
            ssrc: Some(0x0bf0bf00),
        }),
    };
    assert_eq!(agent_view, expected);
    assert_eq!(collector_view, expected, "both ends see the same terms");
}

#[test]
fn an_offer_with_recovery_to_a_collector_without_it_still_streams() {
    let o = agent_offer();
    // An old collector: the plain answer, which knows none of the lines.
    let (a, agreed) = answer(&o, &receive(), &collector_local(), &mut collector_origin()).unwrap();
    let text = a.to_string();
    for absent in ["rtx", "extmap", "rtcp-fb", "backfill", " 98"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
    let applied = apply_answer(&o, &a, Role::Sender).unwrap();
    assert_eq!(applied.description, agent_desc());
    assert_eq!(agreed.description, agent_desc());
    assert!(applied.is_active());
    assert_eq!(
        agreed_recovery(&o, &a, Role::Sender),
        AgreedRecovery::default()
    );
}

#[test]
fn a_plain_offer_answered_by_a_collector_with_recovery_gets_the_plain_answer() {
    let o = offer(
        &agent_desc(),
        Role::Sender,
        &agent_local(),
        &mut agent_origin(),
    )
    .unwrap();
    let (plain, _) = answer(&o, &receive(), &collector_local(), &mut collector_origin()).unwrap();
    let (a, agreed, rec) = collector_answer(&o);
    assert_eq!(a, plain, "byte for byte the answer of before");
    assert_eq!(rec, AgreedRecovery::default());
    assert!(agreed.is_active());
}

#[test]
fn a_collector_reoffer_states_its_mark_and_the_agent_answers_its_spool() {
    let o = collector_offer();
    assert!(lines(&o).contains(&format!("a=fmtp:100 mark={MARK};max-rate=2000")));
    let (a, _, agent_view) = answer_with_recovery(
        &o,
        &AnswerPolicy::Send {
            capabilities: agent_desc(),
        },
        &agent_local(),
        &agent_support(),
        &mut agent_origin(),
    )
    .unwrap();
    assert!(lines(&a).contains(&format!("a=fmtp:100 oldest={OLDEST}")));
    let collector_view = agreed_recovery(&o, &parse_str(&a.to_string()).unwrap(), Role::Receiver);
    assert_eq!(agent_view, collector_view);
    let b = collector_view.backfill.unwrap();
    assert_eq!(
        (b.mark, b.oldest, b.max_rate),
        (MARK, Some(OLDEST), Some(2000))
    );
}

#[test]
fn an_agent_without_recovery_answers_a_collector_offer_plainly() {
    let o = collector_offer();
    let policy = AnswerPolicy::Send {
        capabilities: agent_desc(),
    };
    let (a, agreed) = answer(&o, &policy, &agent_local(), &mut agent_origin()).unwrap();
    assert!(!a.to_string().contains("rtx"));
    assert_eq!(agreed.description, agent_desc());
    assert_eq!(
        agreed_recovery(&o, &a, Role::Receiver),
        AgreedRecovery::default()
    );
}

fn agree_with(edit: impl Fn(&mut String)) -> AgreedRecovery {
    let o = agent_offer();
    let (a, _, _) = collector_answer(&o);
    let mut text = a.to_string();
    edit(&mut text);
    agreed_recovery(&o, &parse_str(&text).unwrap(), Role::Sender)
}

#[test]
fn malformed_or_missing_lines_turn_only_their_feature_off() {
    let all = agree_with(|_| {});
    assert!(all.backfill.is_some() && all.rtx.is_some() && all.instant_id.is_some());
    // A mark that is not a number: no backfill, the rest stays.
    let bad_mark = agree_with(|t| *t = t.replace(&format!("mark={MARK}"), "mark=soon"));
    assert_eq!(bad_mark.backfill, None);
    assert!(bad_mark.rtx.is_some());
    // No extmap in the answer: no instant, hence no backfill either.
    let no_instant = agree_with(|t| *t = t.replace("a=extmap:1", "a=x-extmap:1"));
    assert_eq!((no_instant.instant_id, no_instant.backfill), (None, None));
    assert!(no_instant.rtx.is_some());
    // RTX without NACK feedback is not repair: off.
    let no_nack = agree_with(|t| *t = t.replace("a=rtcp-fb", "a=x-rtcp-fb"));
    assert_eq!(no_nack.rtx, None);
    // An RTX format without apt is unusable (RFC 4588 8.1).
    let no_apt = agree_with(|t| *t = t.replace("apt=96;", "").replace("apt=97;", ""));
    assert_eq!(no_apt.rtx, None);
}

#[test]
fn offers_use_payload_types_the_stream_leaves_free() {
    let mut desc = agent_desc();
    if let Some(s) = desc.samples.as_mut() {
        s.payload_type = 98;
    }
    let terms = offer_terms(&desc, &agent_support());
    assert_eq!(
        terms
            .rtx
            .iter()
            .map(|(a, p, _)| (*a, *p))
            .collect::<Vec<_>>(),
        vec![(98, 96), (97, 99)]
    );
    assert_eq!(terms.backfill.map(|(pt, _)| pt), Some(100));
    let no_instant = RecoverySupport {
        instant: false,
        ..agent_support()
    };
    assert_eq!(offer_terms(&desc, &no_instant).backfill, None);
}
