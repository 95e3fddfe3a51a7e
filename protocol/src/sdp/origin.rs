//! This side's `o=` line and the SDP around its media sections.

use super::model::{Connection, Media, Origin, Sdp, addr_type};
use crate::ids::IdGenerator;
use std::net::IpAddr;

/// This side's `o=` line across a session: the session id stays, the
/// version goes up by one whenever the SDP changes (RFC 3264 section 8).
#[derive(Debug, Clone)]
pub struct LocalSdp {
    username: String,
    session_id: u64,
    version: u64,
    address: IpAddr,
    last: Option<Sdp>,
}

impl LocalSdp {
    /// A fresh origin with a random session id (RFC 8866 5.2: unique).
    pub fn new(username: &str, address: IpAddr, ids: &mut IdGenerator) -> Self {
        let id = (u64::from(ids.u32()) << 31) | u64::from(ids.u32() >> 1);
        Self::with_session_id(username, address, id)
    }

    /// An origin with a given session id (RFC 8866 5.2 suggests an NTP
    /// timestamp; any unique number will do).
    pub fn with_session_id(username: &str, address: IpAddr, id: u64) -> Self {
        Self {
            username: if username.is_empty() || username.contains(' ') {
                "-".into()
            } else {
                username.into()
            },
            session_id: id,
            version: 1,
            address,
            last: None,
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// Wraps media sections into a complete SDP with the right version.
    pub fn stamp(&mut self, media: Vec<Media>) -> Sdp {
        let origin = Origin {
            username: self.username.clone(),
            session_id: self.session_id,
            session_version: self.version,
            net_type: "IN".into(),
            addr_type: addr_type(self.address).into(),
            address: self.address.to_string(),
        };
        let mut sdp = Sdp::new(origin, "sipsensor");
        sdp.connection = Some(Connection::for_ip(self.address));
        sdp.media = media;
        drop_redundant_c(&mut sdp);
        if let Some(last) = &self.last
            && !last.same_session_as(&sdp)
        {
            self.version += 1;
            sdp.origin.session_version = self.version;
        }
        self.last = Some(sdp.clone());
        sdp
    }
}

/// Removes a media-level c= equal to the session-level one.
fn drop_redundant_c(sdp: &mut Sdp) {
    let session = sdp.connection.clone();
    for m in &mut sdp.media {
        if m.connections.len() == 1 && Some(&m.connections[0]) == session.as_ref() {
            m.connections.clear();
        }
    }
}
