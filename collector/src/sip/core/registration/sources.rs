//! The AORs bound at the embedded registrar, by the address that
//! registered them: one address (one host, or one NAT) may hold only so
//! many, so that no single source can fill the registrar's memory.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// AORs one address may keep bound: a site behind one NAT has a few
/// hundred sensors at most.
pub const AORS_PER_SOURCE: usize = 1_000;

#[derive(Debug)]
pub struct BoundBySource {
    limit: usize,
    by_source: HashMap<IpAddr, HashSet<String>>,
    source_of: HashMap<String, IpAddr>,
}

impl BoundBySource {
    pub fn new(limit: usize) -> BoundBySource {
        BoundBySource {
            limit,
            by_source: HashMap::new(),
            source_of: HashMap::new(),
        }
    }

    /// Whether binding `aor` from `ip` would take `ip` past its limit.
    pub fn full_for(&self, ip: IpAddr, aor: &str) -> bool {
        self.source_of.get(aor) != Some(&ip)
            && self
                .by_source
                .get(&ip)
                .is_some_and(|s| s.len() >= self.limit)
    }

    /// `aor` is bound, last registered from `ip`.
    pub fn bound(&mut self, aor: &str, ip: IpAddr) {
        self.unbound(aor);
        self.by_source.entry(ip).or_default().insert(aor.to_owned());
        self.source_of.insert(aor.to_owned(), ip);
    }

    /// `aor` has no binding left.
    pub fn unbound(&mut self, aor: &str) {
        let Some(ip) = self.source_of.remove(aor) else {
            return;
        };
        if let Some(set) = self.by_source.get_mut(&ip) {
            set.remove(aor);
            if set.is_empty() {
                self.by_source.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_of_aors() {
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let mut s = BoundBySource::new(2);
        s.bound("sip:s1@x", a);
        s.bound("sip:s2@x", a);
        assert!(s.full_for(a, "sip:s3@x"));
        // Its own AORs may refresh; other addresses are not touched.
        assert!(!s.full_for(a, "sip:s1@x"));
        assert!(!s.full_for(b, "sip:s3@x"));
        // An AOR moving to another address frees its place.
        s.bound("sip:s2@x", b);
        assert!(!s.full_for(a, "sip:s3@x"));
        s.bound("sip:s3@x", a);
        assert!(s.full_for(a, "sip:s4@x"));
        s.unbound("sip:s1@x");
        assert!(!s.full_for(a, "sip:s4@x"));
        s.unbound("sip:s3@x");
        assert!(!s.by_source.contains_key(&a));
    }
}
