//! The controller's side of in-dialog requests: a BYE or re-INVITE inside
//! the stream's dialog takes effect only when [`Trust::admit_in_dialog`]
//! lets it. The dialog's Call-ID and tags route a request into it (RFC
//! 3261 12.2.2) but travel in clear over UDP: whoever saw them could
//! otherwise stop the stream or point it elsewhere.

use std::time::Instant;

use sipsensor_protocol::{DigestAuthFailure, Request, ServerId, SessionId, Target};

use super::{Admission, Opener, Refusal, warn};
use crate::session::{Action, Controller};

impl Controller {
    pub(in crate::session) fn in_dialog_request(
        &mut self,
        session: SessionId,
        id: ServerId,
        request: &Request,
        source: Target,
        on_dialog_flow: bool,
        now: Instant,
    ) {
        let opener = self
            .opener
            .as_ref()
            .filter(|(s, _)| *s == session)
            .map(|(_, o)| o.clone());
        self.screen_in_dialog(id, request, source, on_dialog_flow, opener.as_ref(), now);
    }

    /// Lets an in-dialog request take effect, or answers it (challenge,
    /// 403): for a session's BYE and re-INVITE and a subscription's
    /// refresh alike, `opener` being who set the dialog up.
    pub(in crate::session) fn screen_in_dialog(
        &mut self,
        id: ServerId,
        request: &Request,
        source: Target,
        on_dialog_flow: bool,
        opener: Option<&Opener>,
        now: Instant,
    ) {
        let method = &request.method;
        let admitted =
            self.trust
                .admit_in_dialog(request, source, on_dialog_flow, opener, now, &mut self.ids);
        match admitted {
            Ok(Admission::Flow) => self.actions.push_back(Action::AdmitInDialog(id)),
            Ok(Admission::Caller(user)) => {
                tracing::debug!("{method} from {} authenticated as {user}", source.addr);
                self.actions.push_back(Action::AdmitInDialog(id));
            }
            Err(Refusal::Challenge { response, why }) => {
                // Every BYE and re-INVITE of a caller comes first without
                // credentials; a stale nonce is as harmless.
                if matches!(why, DigestAuthFailure::NoCredentials(_)) || why.stale() {
                    tracing::debug!("challenged a {method} from {}", source.addr);
                } else {
                    tracing::warn!("refused a {method} in a dialog from {}: {why}", source.addr);
                }
                self.actions
                    .push_back(Action::RefuseInDialog { id, response });
            }
            Err(why) => {
                self.refused_in_dialog += 1;
                tracing::warn!(
                    "refused a {method} in a dialog from {}: {why} ({} refused so far); the \
                     dialog goes on",
                    source.addr,
                    self.refused_in_dialog
                );
                let tag = self.ids.tag();
                let mut response = sipsensor_protocol::response_to(request, 403.into(), Some(&tag));
                warn(
                    &mut response,
                    &self.settings.trust.realm,
                    "not the session's peer",
                );
                self.actions.push_back(Action::RefuseInDialog {
                    id,
                    response: Box::new(response),
                });
            }
        }
    }
}
