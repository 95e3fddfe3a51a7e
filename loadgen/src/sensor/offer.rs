//! A simulated sensor's offer, with docs/protocol.md 11 (stamped live
//! packets and backfill) when it backfills, and what of section 11 the
//! collector's answer agreed to.

use super::State;
use crate::pump::{BackfillPlan, PumpRecovery};
use sipsensor_protocol::{
    BackfillSupport, NegotiationError, RecoverySupport, Sdp, StreamRole, agreed_recovery,
    make_offer, offer_with_recovery,
};

impl State {
    /// Our offer: with section 11 when the sensor backfills.
    pub(super) fn make_offer(&mut self) -> Result<Sdp, NegotiationError> {
        let caps = &self.config.capabilities;
        let Some(bf) = self.backfill else {
            return make_offer(
                caps,
                StreamRole::Sender,
                &self.local_media,
                &mut self.origin,
            );
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let support = RecoverySupport {
            instant: true,
            rtx: None,
            backfill: Some(BackfillSupport {
                oldest: u64::try_from(now.saturating_sub(bf.outage).as_nanos()).ok(),
                ssrc: Some(self.backfill_ssrc()),
                ..BackfillSupport::default()
            }),
        };
        offer_with_recovery(
            caps,
            StreamRole::Sender,
            &self.local_media,
            &support,
            &mut self.origin,
        )
    }

    /// Another SSRC than the live one (docs/protocol.md 11.6).
    fn backfill_ssrc(&self) -> u32 {
        self.local_media.ssrc.unwrap_or_default() ^ 0x0bf0_0000
    }

    /// What of section 11 `answer` agreed to our `offer`, for the pump.
    pub(super) fn agree_recovery(&self, offer: &Sdp, answer: &Sdp) -> Option<PumpRecovery> {
        let own = self.backfill?;
        let agreed = agreed_recovery(offer, answer, StreamRole::Sender);
        let backfill = agreed.backfill.map(|b| BackfillPlan {
            payload_type: b.payload_type,
            ssrc: self.backfill_ssrc(),
            outage: own.outage,
            rate: b.max_rate.map_or(own.rate, |m| m.min(own.rate)),
        });
        Some(PumpRecovery {
            instant_id: agreed.instant_id?,
            backfill,
        })
    }
}
