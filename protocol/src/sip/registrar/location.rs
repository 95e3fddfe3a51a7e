//! The location service: bindings per address-of-record, with an index by
//! expiry time so the next timeout and the expired bindings are found
//! without scanning (RFC 3261 10.3, 10.3 step 7).

use super::uri::SipUri;
use crate::sip::Transport;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One Contact bound to an address-of-record.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Canonical AOR, `sip:user@domain`.
    pub aor: String,
    /// The Contact URI as the UA registered it.
    pub contact: SipUri,
    /// `q` in thousandths; `None` when the UA gave none.
    pub q_millis: Option<u16>,
    pub expires_at: Instant,
    /// When the binding was last added or refreshed.
    pub updated_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from and over what: the address to send
    /// requests for this binding to when the Contact is behind NAT (the
    /// flow of RFC 5626, the `received` of RFC 3581).
    pub source: SocketAddr,
    pub transport: Transport,
    /// Other Contact header parameters (`+sip.instance`, `reg-id`, ...).
    pub params: Vec<(String, Option<String>)>,
    pub user_agent: Option<String>,
    pub(crate) id: u64,
}

impl Binding {
    /// Time left, rounded up to whole seconds so that a live binding is
    /// never reported with `expires=0`.
    pub fn expires_in(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    pub fn expires_in_secs(&self, now: Instant) -> u64 {
        let d = self.expires_in(now);
        d.as_secs() + u64::from(d.subsec_nanos() > 0)
    }

    /// `q` as a number; a Contact without `q` ranks as 1.0.
    pub fn q(&self) -> f32 {
        f32::from(self.q_millis.unwrap_or(1000)) / 1000.0
    }

    /// True when the Contact names another address than the REGISTER's
    /// source (over UDP also another port): a device behind NAT,
    /// reachable only through [`source`](Self::source). Over TCP the
    /// source port is the connection's, so only the address counts; send
    /// over that connection while it lasts.
    pub fn behind_nat(&self) -> bool {
        match self.contact.socket_addr() {
            Some(addr) if self.transport.is_reliable() => addr.ip() != self.source.ip(),
            Some(addr) => addr != self.source,
            // A host name: cannot tell; routing by DNS is the UA's choice.
            None => false,
        }
    }

    /// `<uri>;expires=N[;q=x]` for the registrar's 200 (10.3 step 8).
    pub fn contact_value(&self, now: Instant) -> String {
        let mut s = format!("<{}>;expires={}", self.contact, self.expires_in_secs(now));
        if let Some(q) = self.q_millis {
            s.push_str(&format!(";q={}.{:03}", q / 1000, q % 1000));
        }
        for (n, v) in &self.params {
            match v {
                Some(v)
                    if v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)) =>
                {
                    s.push_str(&format!(";{n}={v}"))
                }
                Some(v) => s.push_str(&format!(";{n}={}", super::super::digest::params::quote(v))),
                None => s.push_str(&format!(";{n}")),
            }
        }
        s
    }
}

/// Bindings by AOR with an expiry index.
#[derive(Debug, Default)]
pub struct LocationService {
    aors: HashMap<String, Vec<Binding>>,
    expiries: BTreeMap<(Instant, u64), String>,
    next_id: u64,
}

impl LocationService {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Stored bindings of `aor` (canonical form), expired or not.
    pub fn bindings(&self, aor: &str) -> &[Binding] {
        self.aors.get(aor).map(Vec::as_slice).unwrap_or_default()
    }

    /// Live bindings of `aor`, highest `q` first, then most recently
    /// refreshed first.
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        let mut live: Vec<Binding> = self
            .bindings(aor)
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        live.sort_by(|a, b| {
            b.q_millis
                .unwrap_or(1000)
                .cmp(&a.q_millis.unwrap_or(1000))
                .then(b.updated_at.cmp(&a.updated_at))
        });
        live
    }

    /// Replaces the bindings of `aor` at once (10.3 step 7: updates are
    /// committed all together or not at all).
    pub fn replace(&mut self, aor: &str, bindings: Vec<Binding>) {
        if let Some(old) = self.aors.remove(aor) {
            for b in old {
                self.expiries.remove(&(b.expires_at, b.id));
            }
        }
        if bindings.is_empty() {
            return;
        }
        for b in &bindings {
            self.expiries.insert((b.expires_at, b.id), aor.to_string());
        }
        self.aors.insert(aor.to_string(), bindings);
    }

    /// Removes and returns every binding whose time has come.
    pub fn expire(&mut self, now: Instant) -> Vec<Binding> {
        let mut gone = Vec::new();
        while let Some(entry) = self.expiries.first_entry() {
            let (at, id) = *entry.key();
            if at > now {
                break;
            }
            let aor = entry.remove();
            if let Some(list) = self.aors.get_mut(&aor) {
                if let Some(i) = list.iter().position(|b| b.id == id) {
                    gone.push(list.remove(i));
                }
                if list.is_empty() {
                    self.aors.remove(&aor);
                }
            }
        }
        gone
    }

    /// When the next binding expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.keys().next().map(|(at, _)| *at)
    }

    pub fn aor_count(&self) -> usize {
        self.aors.len()
    }

    pub fn binding_count(&self) -> usize {
        self.expiries.len()
    }

    /// Every AOR with its stored bindings (for status pages).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Binding])> {
        self.aors.iter().map(|(a, b)| (a.as_str(), b.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(
        svc: &mut LocationService,
        uri: &str,
        q: Option<u16>,
        at: Instant,
        updated: Instant,
    ) -> Binding {
        Binding {
            aor: "sip:a@h".into(),
            contact: SipUri::parse(uri).unwrap(),
            q_millis: q,
            expires_at: at,
            updated_at: updated,
            call_id: "c".into(),
            cseq: 1,
            source: "198.51.100.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            params: vec![],
            user_agent: None,
            id: svc.next_id(),
        }
    }

    #[test]
    fn lookup_orders_by_q_then_recency_and_hides_expired() {
        let t0 = crate::test_clock::base();
        let s = Duration::from_secs;
        let mut svc = LocationService::new();
        let list = vec![
            binding(&mut svc, "sip:low@h", Some(100), t0 + s(100), t0),
            binding(&mut svc, "sip:none-old@h", None, t0 + s(100), t0),
            binding(&mut svc, "sip:none-new@h", None, t0 + s(100), t0 + s(1)),
            binding(&mut svc, "sip:gone@h", Some(1000), t0 + s(5), t0),
        ];
        svc.replace("sip:a@h", list);
        let order: Vec<String> = svc
            .lookup("sip:a@h", t0 + s(10))
            .iter()
            .map(|b| b.contact.to_string())
            .collect();
        assert_eq!(order, ["sip:none-new@h", "sip:none-old@h", "sip:low@h"]);
        assert!(svc.lookup("sip:other@h", t0).is_empty());
    }

    #[test]
    fn expiry_index_follows_replacements() {
        let t0 = crate::test_clock::base();
        let s = Duration::from_secs;
        let mut svc = LocationService::new();
        let first = binding(&mut svc, "sip:x@h", None, t0 + s(10), t0);
        svc.replace("sip:a@h", vec![first.clone()]);
        assert_eq!(svc.next_expiry(), Some(t0 + s(10)));
        // Refreshed: the old expiry must not fire.
        let mut refreshed = first;
        refreshed.expires_at = t0 + s(60);
        svc.replace("sip:a@h", vec![refreshed]);
        assert_eq!(svc.next_expiry(), Some(t0 + s(60)));
        assert!(svc.expire(t0 + s(30)).is_empty());
        assert_eq!(svc.binding_count(), 1);
        let gone = svc.expire(t0 + s(60));
        assert_eq!(gone.len(), 1);
        assert_eq!(svc.aor_count(), 0);
        assert_eq!(svc.next_expiry(), None);
        svc.replace("sip:a@h", vec![]);
        assert_eq!(svc.aor_count(), 0);
    }

    #[test]
    fn nat_detection_and_contact_rendering() {
        let t0 = crate::test_clock::base();
        let mut svc = LocationService::new();
        let mut b = binding(
            &mut svc,
            "sip:s1@10.0.0.2:5062",
            Some(500),
            t0 + Duration::from_millis(1500),
            t0,
        );
        assert!(b.behind_nat());
        b.params = vec![
            ("+sip.instance".into(), Some("<urn:uuid:1>".into())),
            ("reg-id".into(), Some("1".into())),
            ("flag".into(), None),
        ];
        assert_eq!(
            b.contact_value(t0),
            r#"<sip:s1@10.0.0.2:5062>;expires=2;q=0.500;+sip.instance="<urn:uuid:1>";reg-id=1;flag"#
        );
        b.contact = SipUri::parse("sip:s1@198.51.100.1").unwrap();
        assert!(!b.behind_nat());
        // TCP: the source port is the connection's; only the address counts.
        b.transport = Transport::Tcp;
        b.source = "198.51.100.1:51234".parse().unwrap();
        assert!(!b.behind_nat());
        b.source = "203.0.113.9:51234".parse().unwrap();
        assert!(b.behind_nat());
        b.transport = Transport::Udp;
        b.contact = SipUri::parse("sip:s1@sensor.example").unwrap();
        assert!(!b.behind_nat());
        assert_eq!(b.q(), 0.5);
    }
}
