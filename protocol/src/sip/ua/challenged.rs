//! Our in-dialog requests that the peer challenges: a UA that screens its
//! dialogs (a sensor over UDP) asks for credentials before it lets a BYE
//! or re-INVITE take effect. RFC 3261 22.2: the request goes again with
//! credentials and a new CSeq (14.1 for the re-INVITE); a second refusal
//! of fresh credentials is a wrong password and is not retried.

use std::time::Instant;

use rsip::prelude::*;
use rsip::{Header, Method, Request, Response};

use super::*;
use crate::sip::response::set_body;

impl UserAgent {
    /// A challenged re-INVITE of ours: true when it went again with
    /// credentials (the offer stays in progress), false when it cannot
    /// (no credentials, a wrong password) and counts as refused.
    pub(super) fn reinvite_challenged(
        &mut self,
        sid: SessionId,
        sent: (Request, Target),
        challenge: &Response,
        now: Instant,
    ) -> bool {
        let (sent, target) = sent;
        let Some(digest) = self.digest.as_mut() else {
            return false;
        };
        if digest.handle_challenge(&sent, challenge).is_err() {
            return false;
        }
        let local = self.config.local.clone();
        let Some(dialog) = self.sessions.get_mut(&sid).and_then(|s| s.dialog.as_mut()) else {
            return false;
        };
        // A new request of the dialog: its next CSeq, a new branch.
        let mut retry = dialog.request(Method::Invite, &local, &mut self.ids);
        set_body(
            &mut retry.headers,
            &mut retry.body,
            "application/sdp",
            sent.body,
        );
        digest.authorize(&mut retry, &mut self.ids);
        match self.layer.send_request(retry.clone(), target, now) {
            Ok(id) => {
                self.clients.insert(id, Purpose::Reinvite(sid));
                self.in_dialog_sent.insert(id, (retry, target));
                true
            }
            Err(_) => false,
        }
    }

    /// The answer to our BYE. The session ended when the BYE went out
    /// (15.1.1), but the peer keeps streaming until a BYE it accepts: a
    /// challenge is answered once more with credentials.
    pub(super) fn bye_response(
        &mut self,
        sent: Option<(Request, Target)>,
        response: Option<&Response>,
        now: Instant,
    ) {
        let (Some((sent, target)), Some(challenge)) = (sent, response) else {
            return;
        };
        if !matches!(challenge.status_code.code(), 401 | 407) {
            return;
        }
        let Some(digest) = self.digest.as_mut() else {
            return;
        };
        if digest.handle_challenge(&sent, challenge).is_err() {
            return;
        }
        // The dialog is gone with the session: the BYE as sent, with the
        // next CSeq and a new branch.
        let seq = sent
            .cseq_header()
            .ok()
            .and_then(|c| c.seq().ok())
            .unwrap_or(1)
            .wrapping_add(1);
        let mut retry = sent.clone();
        let mut headers = Headers::default();
        headers.push(self.config.local.via(&self.ids.branch()));
        for h in sent.headers.iter() {
            match h {
                Header::Via(_) => {}
                Header::CSeq(_) => {
                    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!("{seq} BYE"))))
                }
                other => headers.push(other.clone()),
            }
        }
        retry.headers = headers;
        digest.authorize(&mut retry, &mut self.ids);
        if let Ok(id) = self.layer.send_request(retry.clone(), target, now) {
            self.clients.insert(id, Purpose::Bye);
            self.in_dialog_sent.insert(id, (retry, target));
        }
    }
}
