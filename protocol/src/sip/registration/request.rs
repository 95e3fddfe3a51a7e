//! Building REGISTER requests (RFC 3261 10.2).

use crate::sip::registrar::uri::SipUri;
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
        let contacts: Vec<String> = self
            .contacts
            .iter()
            .map(|(uri, expires)| format!("<{uri}>;expires={expires}"))
            .collect();
        headers.push(H::Contact(h::Contact::new(contacts.join(", "))));
        headers.push(H::Expires(h::Expires::new(self.expires.to_string())));
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

/// An rsip Request-URI for a SIP URI. rsip 0.4 neither parses nor prints
/// IPv6 hosts with brackets, so an IPv6 host is carried as a bracketed
/// "domain", which prints correctly.
pub(super) fn to_rsip_uri(uri: &SipUri) -> Result<rsip::Uri, String> {
    if !uri.host.starts_with('[')
        && let Ok(u) = rsip::Uri::try_from(uri.as_str())
    {
        return Ok(u);
    }
    if !uri.params.is_empty() || uri.headers.is_some() {
        return Err(format!(
            "{uri}: parameters on an IPv6 registrar URI are not supported"
        ));
    }
    Ok(rsip::Uri {
        scheme: Some(if uri.scheme == "sips" {
            rsip::Scheme::Sips
        } else {
            rsip::Scheme::Sip
        }),
        auth: uri.user.as_ref().map(|u| rsip::Auth {
            user: u.clone(),
            password: None,
        }),
        host_with_port: rsip::HostWithPort {
            host: rsip::Host::Domain(uri.host.clone().into()),
            port: uri.port.map(Into::into),
        },
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_registrar_uri_prints_with_brackets() {
        let u = to_rsip_uri(&SipUri::parse("sip:[2001:db8::1]:5060").unwrap()).unwrap();
        assert_eq!(u.to_string(), "sip:[2001:db8::1]:5060");
        let v4 = to_rsip_uri(&SipUri::parse("sip:198.51.100.1;transport=tcp").unwrap()).unwrap();
        assert_eq!(v4.to_string(), "sip:198.51.100.1;transport=TCP");
        assert!(to_rsip_uri(&SipUri::parse("sip:[::1];transport=tcp").unwrap()).is_err());
    }
}
