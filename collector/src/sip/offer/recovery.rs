//! What the collector states of docs/protocol.md section 11 in its offers
//! and answers: it reads the sample instant, NACKs and takes RTX, and takes
//! backfill up to `media.backfill_max_rate` from its committed mark.

use sipsensor_protocol::{BackfillSupport, RecoverySupport, RtxSupport, parse_sdp};
use std::time::Duration;

/// The `rtx-time` we state: informative from a receiver (RFC 4588 8.1);
/// the agent's own bounds how long we wait.
const RTX_TIME: Duration = Duration::from_secs(3);

/// The encoding name of the backfill format (docs/protocol.md 11.1).
const BACKFILL_ENCODING: &str = "sensor-backfill";

/// Everything of section 11, with a `mark` of 0 until the shell, which
/// reads storage, sets the sensor's with [`with_backfill_mark`]; nothing
/// of it with `media.recovery: false`.
pub fn collector_support(recovery: bool, backfill_max_rate: u64) -> RecoverySupport {
    if !recovery {
        return RecoverySupport::default();
    }
    RecoverySupport {
        instant: true,
        rtx: Some(RtxSupport {
            rtx_time: RTX_TIME,
            ssrc: None,
        }),
        backfill: Some(BackfillSupport {
            mark: Some(0),
            oldest: None,
            max_rate: Some(backfill_max_rate),
            ssrc: None,
        }),
    }
}

/// Our SDP (offer or answer) with the backfill format's `mark` set to
/// `mark` (the sensor's committed-through instant, docs/protocol.md 11.4);
/// unchanged when it has no backfill format or does not parse.
pub fn with_backfill_mark(sdp: &[u8], mark: u64) -> Vec<u8> {
    let Ok(mut parsed) = parse_sdp(sdp) else {
        return sdp.to_vec();
    };
    let mut changed = false;
    for media in &mut parsed.media {
        let backfill_pts: Vec<String> = media
            .attributes
            .iter()
            .filter(|a| a.name == "rtpmap")
            .filter_map(|a| {
                let (pt, encoding) = a.value.as_deref()?.split_once(' ')?;
                encoding
                    .starts_with(&format!("{BACKFILL_ENCODING}/"))
                    .then(|| pt.to_string())
            })
            .collect();
        for a in media.attributes.iter_mut().filter(|a| a.name == "fmtp") {
            let Some((pt, params)) = a.value.as_deref().and_then(|v| v.split_once(' ')) else {
                continue;
            };
            if !backfill_pts.iter().any(|p| p == pt) {
                continue;
            }
            let params: Vec<String> = params
                .split(';')
                .map(|p| match p.trim().split_once('=') {
                    Some(("mark", _)) => format!("mark={mark}"),
                    _ => p.trim().to_string(),
                })
                .collect();
            a.value = Some(format!("{pt} {}", params.join(";")));
            changed = true;
        }
    }
    if changed {
        parsed.to_bytes()
    } else {
        sdp.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::offer::tests::full;
    use sipsensor_protocol::{
        AgreedRecovery, AnswerPolicy, LocalMedia, LocalSdp, ReceivePolicy, StreamRole,
        agreed_recovery, answer_with_recovery, offer_with_recovery,
    };
    use std::net::SocketAddr;

    fn agent_support() -> RecoverySupport {
        RecoverySupport {
            instant: true,
            rtx: Some(RtxSupport {
                rtx_time: Duration::from_millis(1500),
                ssrc: Some(0x5e1f_0001),
            }),
            backfill: Some(BackfillSupport {
                mark: None,
                oldest: Some(1_766_620_800_000_000_000),
                max_rate: None,
                ssrc: Some(0x0bf0_0001),
            }),
        }
    }

    fn local(port: u16) -> LocalMedia {
        let mut l = LocalMedia::new(SocketAddr::from(([192, 0, 2, 1], port)));
        l.ssrc = Some(0x1a2b_3c4d);
        l.cname = Some("s1@192.0.2.1".into());
        l
    }

    /// An agent's offer with everything of section 11.
    fn agent_offer() -> sipsensor_protocol::Sdp {
        let agent = local(40000);
        let mut origin = LocalSdp::with_session_id("s1", agent.rtp.ip(), 1);
        offer_with_recovery(
            &full(),
            StreamRole::Sender,
            &agent,
            &agent_support(),
            &mut origin,
        )
        .unwrap()
    }

    #[test]
    fn an_answer_carries_the_mark_and_the_rate_cap_and_agrees_everything() {
        let offer = agent_offer();
        let ours = LocalMedia::new(SocketAddr::from(([192, 0, 2, 5], 50000)));
        let mut origin = LocalSdp::with_session_id("collector", ours.rtp.ip(), 2);
        let (answer, _, agreed) = answer_with_recovery(
            &offer,
            &AnswerPolicy::Receive(ReceivePolicy::default()),
            &ours,
            &collector_support(true, 2000),
            &mut origin,
        )
        .unwrap();
        let rtx = agreed.rtx.as_ref().unwrap();
        assert_eq!(rtx.ssrc, Some(0x5e1f_0001));
        assert_eq!(rtx.rtx_time, Duration::from_millis(1500), "the agent's");
        assert_eq!(agreed.backfill.as_ref().unwrap().ssrc, Some(0x0bf0_0001));
        assert_eq!(agreed.instant_id, Some(1));
        let stamped = with_backfill_mark(&answer.to_bytes(), 1_767_225_300_100_000_000);
        let text = String::from_utf8(stamped.clone()).unwrap();
        assert!(
            text.contains("mark=1767225300100000000;max-rate=2000"),
            "{text}"
        );
        // The agent reads our mark and cap from the stamped answer.
        let answer = parse_sdp(&stamped).unwrap();
        let seen = agreed_recovery(&offer, &answer, StreamRole::Sender);
        let b = seen.backfill.unwrap();
        assert_eq!(
            (b.mark, b.max_rate),
            (1_767_225_300_100_000_000, Some(2000))
        );
    }

    #[test]
    fn with_recovery_off_the_answer_is_that_of_a_collector_without_it() {
        let offer = agent_offer();
        let ours = LocalMedia::new(SocketAddr::from(([192, 0, 2, 5], 50000)));
        let answer_with = |support: &RecoverySupport| {
            let mut origin = LocalSdp::with_session_id("collector", ours.rtp.ip(), 2);
            answer_with_recovery(
                &offer,
                &AnswerPolicy::Receive(ReceivePolicy::default()),
                &ours,
                support,
                &mut origin,
            )
            .unwrap()
        };
        let (off, _, agreed) = answer_with(&collector_support(false, 2000));
        let (none, _, _) = answer_with(&RecoverySupport::default());
        assert_eq!(off.to_bytes(), none.to_bytes());
        let text = String::from_utf8(off.to_bytes()).unwrap();
        for line in ["extmap", "rtcp-fb", "rtx/", "sensor-backfill", "ssrc-group"] {
            assert!(!text.contains(line), "{line} in {text}");
        }
        assert_eq!(agreed, AgreedRecovery::default());
    }

    #[test]
    fn an_sdp_without_backfill_is_left_as_it_is() {
        let agent = local(40000);
        let mut origin = LocalSdp::with_session_id("s1", agent.rtp.ip(), 1);
        let plain =
            sipsensor_protocol::make_offer(&full(), StreamRole::Sender, &agent, &mut origin)
                .unwrap()
                .to_bytes();
        assert_eq!(with_backfill_mark(&plain, 5), plain);
        assert_eq!(with_backfill_mark(b"not sdp", 5), b"not sdp".to_vec());
    }
}
