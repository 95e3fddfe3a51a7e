//! Building REGISTER requests (RFC 3261 10.2).

use super::ConfigProblem;
use crate::sip::uri::SipUri;
use rsip::headers::UntypedHeader;

/// The parts of one REGISTER.
pub(super) struct Register<'a> {
    pub uri: &'a rsip::Uri,
    pub via: rsip::Header,
    pub route: Option<&'a str>,
    pub aor: &'a str,
    pub from_tag: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Contact URIs with their `expires` parameter.
    pub contacts: &'a [(String, u32)],
    /// The Expires header: the main Contact's interval.
    pub expires: u32,
    pub user_agent: Option<&'a str>,
    /// RFC 5626 4.2.1: `+sip.instance` and `reg-id` on the first Contact,
    /// `Supported: outbound`.
    pub outbound: Option<&'a super::Outbound>,
}

impl Register<'_> {
    pub fn build(self) -> rsip::Request {
        use rsip::Header as H;
        use rsip::headers as h;
        let mut headers = vec![self.via, H::MaxForwards(h::MaxForwards::new("70"))];
        if let Some(route) = self.route {
            headers.push(H::Route(h::Route::new(route)));
        }
        // 10.2: From and To carry the AOR; To has no tag outside a dialog.
        headers.push(H::From(h::From::new(format!(
            "<{}>;tag={}",
            self.aor, self.from_tag
        ))));
        headers.push(H::To(h::To::new(format!("<{}>", self.aor))));
        headers.push(H::CallId(h::CallId::new(self.call_id)));
        headers.push(H::CSeq(h::CSeq::new(format!("{} REGISTER", self.cseq))));
        let flow = self.outbound.map(super::Outbound::contact_params);
        let contacts: Vec<String> = self
            .contacts
            .iter()
            .enumerate()
            .map(|(i, (uri, expires))| {
                let flow = flow.as_deref().filter(|_| i == 0).unwrap_or_default();
                format!("<{uri}>;expires={expires}{flow}")
            })
            .collect();
        headers.push(H::Contact(h::Contact::new(contacts.join(", "))));
        headers.push(H::Expires(h::Expires::new(self.expires.to_string())));
        if self.outbound.is_some() {
            headers.push(H::Supported(h::Supported::new("outbound")));
        }
        if let Some(ua) = self.user_agent {
            headers.push(H::UserAgent(h::UserAgent::new(ua)));
        }
        headers.push(H::ContentLength(h::ContentLength::new("0")));
        rsip::Request {
            method: rsip::Method::Register,
            uri: self.uri.clone(),
            version: rsip::Version::V2,
            headers: headers.into(),
            body: Vec::new(),
        }
    }
}

/// An rsip Request-URI for a SIP URI, IPv6 references in the stack's
/// internal form (rsip 0.4 cannot parse them, see [`crate::sip::ipv6`]).
pub(super) fn to_rsip_uri(uri: &SipUri) -> Result<rsip::Uri, ConfigProblem> {
    let internal = crate::sip::ipv6::to_internal(uri.as_str());
    rsip::Uri::try_from(internal.as_ref()).map_err(|source| ConfigProblem::NotForRsip {
        uri: uri.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_registrar_uri_goes_back_to_brackets_on_the_wire() {
        let u = to_rsip_uri(&SipUri::parse("sip:[2001:db8::1]:5060").unwrap()).unwrap();
        assert_eq!(
            crate::sip::ipv6::to_wire(&u.to_string()),
            "sip:[2001:db8::1]:5060"
        );
        let v4 = to_rsip_uri(&SipUri::parse("sip:198.51.100.1;transport=tcp").unwrap()).unwrap();
        assert_eq!(v4.to_string(), "sip:198.51.100.1;transport=TCP");
        let v6 = to_rsip_uri(&SipUri::parse("sip:[::1];transport=tcp").unwrap()).unwrap();
        assert_eq!(
            crate::sip::ipv6::to_wire(&v6.to_string()),
            "sip:[::1];transport=TCP"
        );
    }
}
