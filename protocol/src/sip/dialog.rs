//! Dialogs (RFC 3261 section 12): the state two user agents share between
//! an INVITE's 2xx and the BYE, and the rules for requests inside them.

use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use rsip::{Header, Headers, Method, Request, Response};

use super::LocalEndpoint;
use crate::ids::IdGenerator;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DialogError {
    #[error("the message has no {0} header")]
    MissingHeader(&'static str),
    #[error("the {0} header cannot be read")]
    BadHeader(&'static str),
    #[error("the response carries no To tag")]
    MissingRemoteTag,
    /// 12.2.2: a request whose CSeq is below the last one is out of order;
    /// the UAS answers 500.
    #[error("CSeq {got} is lower than the last seen {last}")]
    CSeqOutOfOrder { got: u32, last: u32 },
}

/// Call-ID, local tag, remote tag (12).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a received request belongs to: its To tag is ours, its
    /// From tag the peer's (12.2.2).
    pub fn of_incoming_request(request: &Request) -> Option<Self> {
        Some(Self {
            call_id: request.call_id_header().ok()?.value().to_owned(),
            local_tag: request.to_header().ok()?.tag().ok()??.value().to_owned(),
            remote_tag: request.from_header().ok()?.tag().ok()??.value().to_owned(),
        })
    }

    /// The dialog a response to one of our requests belongs to.
    pub fn of_response(response: &Response) -> Option<Self> {
        Some(Self {
            call_id: response.call_id_header().ok()?.value().to_owned(),
            local_tag: response.from_header().ok()?.tag().ok()??.value().to_owned(),
            remote_tag: response.to_header().ok()?.tag().ok()??.value().to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    /// Our From (as UAC) or To (as UAS) header value, tag included.
    local_party: String,
    remote_party: String,
    local_seq: u32,
    remote_seq: Option<u32>,
    remote_target: rsip::Uri,
    /// Route set, each entry as written (`<sip:p;lr>`), in the order
    /// requests carry them.
    route_set: Vec<String>,
    /// The Authorization/Proxy-Authorization that got the INVITE through:
    /// all on the ACK (13.2.2.4), the proxies' on requests in the dialog
    /// (22.3).
    credentials: Vec<Header>,
}

impl Dialog {
    /// UAC side, from the INVITE we sent and a 2xx (or 1xx with a tag)
    /// (12.1.2): the route set is the Record-Route reversed; the remote
    /// target is the response's Contact.
    pub fn from_uac(invite: &Request, response: &Response) -> Result<Self, DialogError> {
        let id = DialogId::of_response(response).ok_or(DialogError::MissingRemoteTag)?;
        let mut route_set = record_routes(&response.headers);
        route_set.reverse();
        let credentials = invite
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Authorization(_) | Header::ProxyAuthorization(_)))
            .cloned()
            .collect();
        Ok(Self {
            id,
            local_party: header_value(invite.from_header(), "From")?,
            remote_party: header_value(response.to_header(), "To")?,
            local_seq: cseq(invite)?,
            remote_seq: None,
            remote_target: contact_uri(response)?,
            route_set,
            credentials,
        })
    }

    /// UAS side, from the INVITE received and the tag we put in our To
    /// (12.1.1): the route set is the Record-Route in order.
    pub fn from_uas(
        invite: &Request,
        local_tag: &str,
        ids: &mut IdGenerator,
    ) -> Result<Self, DialogError> {
        let call_id = invite
            .call_id_header()
            .map_err(|_| DialogError::MissingHeader("Call-ID"))?
            .value()
            .to_owned();
        let remote_tag = invite
            .from_header()
            .ok()
            .and_then(|f| f.tag().ok().flatten())
            .map(|t| t.value().to_owned())
            // A 2543 peer without a From tag: the tag is then empty (12.1.1).
            .unwrap_or_default();
        let to = header_value(invite.to_header(), "To")?;
        Ok(Self {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            local_party: format!("{to};tag={local_tag}"),
            remote_party: header_value(invite.from_header(), "From")?,
            local_seq: ids.cseq_start(),
            remote_seq: Some(cseq(invite)?),
            remote_target: contact_uri(invite)?,
            route_set: record_routes(&invite.headers),
            credentials: Vec::new(),
        })
    }

    #[cfg(test)]
    pub fn remote_target(&self) -> &rsip::Uri {
        &self.remote_target
    }

    #[cfg(test)]
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// The URI to locate for the next request (RFC 3261 8.1.2 with 12.2.1.1):
    /// the first route if there is a route set, else the remote target.
    pub fn next_hop(&self) -> Result<rsip::Uri, DialogError> {
        match self.route_set.first() {
            Some(route) => parse_route_uri(route),
            None => Ok(self.remote_target.clone()),
        }
    }

    /// A request inside the dialog (12.2.1.1). CSeq grows by one for
    /// everything but ACK and CANCEL, which the caller builds elsewhere.
    pub fn request(
        &mut self,
        method: Method,
        local: &LocalEndpoint,
        ids: &mut IdGenerator,
    ) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        self.build(method, self.local_seq, local, ids)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (13.2.2.4):
    /// same CSeq number, a new branch, the route set, the credentials.
    pub fn ack(&self, invite_seq: u32, local: &LocalEndpoint, ids: &mut IdGenerator) -> Request {
        self.build(Method::Ack, invite_seq, local, ids)
    }

    fn build(
        &self,
        method: Method,
        seq: u32,
        local: &LocalEndpoint,
        ids: &mut IdGenerator,
    ) -> Request {
        let mut headers = Headers::default();
        headers.push(local.via(&ids.branch()));
        headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
        headers.push(Header::From(rsip::headers::From::new(
            self.local_party.clone(),
        )));
        headers.push(Header::To(rsip::headers::To::new(
            self.remote_party.clone(),
        )));
        headers.push(Header::CallId(rsip::headers::CallId::new(
            self.id.call_id.clone(),
        )));
        headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
            "{seq} {method}"
        ))));
        // 12.2.1.1: loose routing puts the remote target in the R-URI and
        // the whole route set in Route; a strict router first in the set
        // takes the R-URI and the remote target goes last in Route.
        let strict = self
            .route_set
            .first()
            .and_then(|r| parse_route_uri(r).ok())
            .filter(|uri| !uri.params.iter().any(|p| matches!(p, rsip::Param::Lr)));
        let uri = match &strict {
            Some(first) => {
                for route in &self.route_set[1..] {
                    headers.push(Header::Route(rsip::headers::Route::new(route.clone())));
                }
                headers.push(Header::Route(rsip::headers::Route::new(format!(
                    "<{}>",
                    self.remote_target
                ))));
                first.clone()
            }
            None => {
                for route in &self.route_set {
                    headers.push(Header::Route(rsip::headers::Route::new(route.clone())));
                }
                self.remote_target.clone()
            }
        };
        if method != Method::Ack && method != Method::Cancel {
            headers.push(Header::Contact(rsip::headers::Contact::new(format!(
                "<{}>",
                local.contact_uri(None)
            ))));
        }
        // 13.2.2.4: the ACK carries the INVITE's credentials. Other
        // requests carry only the proxies' (22.3): the callee's digest
        // covered the INVITE's method and URI, so copied onto another
        // request it is wrong (or a replay); the callee challenges anew
        // when it wants credentials (22.2).
        headers.extend(
            self.credentials
                .iter()
                .filter(|h| method == Method::Ack || matches!(h, Header::ProxyAuthorization(_)))
                .cloned()
                .collect(),
        );
        headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
            "0",
        )));
        Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers,
            body: Vec::new(),
        }
    }

    /// A request received in this dialog (12.2.2): CSeq must not go back;
    /// a target refresh (re-INVITE) updates the remote target.
    pub fn receive_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let seq = cseq(request)?;
        if request.method != Method::Ack && request.method != Method::Cancel {
            if let Some(last) = self.remote_seq
                && seq < last
            {
                return Err(DialogError::CSeqOutOfOrder { got: seq, last });
            }
            self.remote_seq = Some(seq);
        }
        if request.method == Method::Invite
            && let Ok(target) = contact_uri(request)
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// A 2xx to our re-INVITE refreshes the remote target (12.2.1.2).
    pub fn receive_target_refresh(&mut self, response: &Response) {
        if let Ok(target) = contact_uri(response) {
            self.remote_target = target;
        }
    }
}

fn header_value<'a, H: UntypedHeader<'a>>(
    header: Result<&'a H, rsip::Error>,
    name: &'static str,
) -> Result<String, DialogError> {
    header
        .map(|h| h.value().to_owned())
        .map_err(|_| DialogError::MissingHeader(name))
}

fn cseq(message: &impl HeadersExt) -> Result<u32, DialogError> {
    message
        .cseq_header()
        .map_err(|_| DialogError::MissingHeader("CSeq"))?
        .seq()
        .map_err(|_| DialogError::BadHeader("CSeq"))
}

fn contact_uri(message: &impl HeadersExt) -> Result<rsip::Uri, DialogError> {
    let contact = message
        .contact_header()
        .map_err(|_| DialogError::MissingHeader("Contact"))?;
    contact
        .typed()
        .map(|c| c.uri)
        .map_err(|_| DialogError::BadHeader("Contact"))
}

/// Every Record-Route entry in order, splitting comma-joined headers.
fn record_routes(headers: &Headers) -> Vec<String> {
    headers
        .iter()
        .filter_map(|h| match h {
            Header::RecordRoute(rr) => rr.typed().ok(),
            _ => None,
        })
        .flat_map(|rr| rr.uris().iter().map(|u| u.to_string()).collect::<Vec<_>>())
        .collect()
}

fn parse_route_uri(route: &str) -> Result<rsip::Uri, DialogError> {
    let inner = route
        .trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default();
    rsip::Uri::try_from(inner).map_err(|_| DialogError::BadHeader("Route"))
}

#[cfg(test)]
mod tests;
