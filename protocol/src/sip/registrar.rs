//! A registrar and location service (RFC 3261 section 10.3), sans-I/O.
//!
//! [`Registrar::handle_register`] runs the eight steps of 10.3 in order and
//! returns the response; [`Registrar::lookup`] gives the live Contacts of
//! an address-of-record; [`Registrar::expire`] and
//! [`Registrar::poll_timeout`] drive expiry on the caller's clock. Each
//! binding keeps the address and transport the REGISTER came from, so a
//! device behind NAT is reached where it really is.
//!
//! The submodules `uri`, `contact` and `via` are header readers the
//! registration client shares.

pub mod contact;
pub mod location;
pub mod response;
use crate::sip::uri;
pub mod via;

#[cfg(test)]
mod tests;

use crate::ids::IdGenerator;
use crate::sip::Transport;
use crate::sip::digest::{
    AuthFailure, AuthenticatedUser, ChallengeKind, CredentialStore, DigestError, DigestServer,
    ServerConfig, WallClock,
};
use contact::{ContactEntry, HeaderName, header_tokens, header_value};
pub use location::{Binding, LocationService};
use response::{http_date, response_to, warning};
use rsip::headers::UntypedHeader;
use rsip::prelude::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use uri::SipUri;

/// Who may change the bindings of an AOR (10.3 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AorPolicy {
    /// The authenticated username must equal the AOR's user part.
    UsernameIsAorUser,
    /// Any authenticated user may register any AOR of a served domain.
    AnyAuthenticatedUser,
}

/// Registrar settings.
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Domains (host names or IP literals) this registrar is responsible
    /// for, compared with the Request-URI and the To host (10.3 steps 1
    /// and 5): names case-insensitively, addresses as addresses (IPv6 in
    /// any form). Empty: any.
    pub domains: Vec<String>,
    /// Require Digest authentication (10.3 step 3). Off only for tests
    /// and closed networks.
    pub authenticate: bool,
    pub aor_policy: AorPolicy,
    /// Used when neither the Contact nor an Expires header says (3600,
    /// RFC 3261 10.2.1.1).
    pub default_expires: u32,
    /// Shorter requests get 423 with Min-Expires (10.3 step 7, 10.2.8).
    pub min_expires: u32,
    /// Longer requests are shortened to this (10.3 step 7 allows it).
    pub max_expires: u32,
    pub max_bindings_per_aor: usize,
    /// Bound on memory: new AORs beyond this get 503.
    pub max_aors: usize,
    /// The warn-agent of Warning headers (RFC 3261 20.43).
    pub agent: String,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            authenticate: true,
            aor_policy: AorPolicy::UsernameIsAorUser,
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86_400,
            max_bindings_per_aor: 16,
            max_aors: 100_000,
            agent: "sipsensor".into(),
        }
    }
}

/// One Contact of a REGISTER after step 6, before it is applied.
struct Requested {
    uri: SipUri,
    expires: u32,
    q_millis: Option<u16>,
    params: Vec<(String, Option<String>)>,
}

/// A registrar with an in-memory location service.
pub struct Registrar {
    config: RegistrarConfig,
    digest: DigestServer,
    credentials: Box<dyn CredentialStore + Send>,
    clock: WallClock,
    ids: IdGenerator,
    location: LocationService,
    /// Why the last request was not authenticated, until taken.
    last_failure: Option<AuthFailure>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("config", &self.config)
            .field("digest", &self.digest)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Registrar {
    /// `clock` maps the caller's `Instant`s to Unix time (nonce stamps and
    /// the Date header); `ids` supplies tags and nonce salts.
    pub fn new(
        config: RegistrarConfig,
        digest: ServerConfig,
        credentials: Box<dyn CredentialStore + Send>,
        clock: WallClock,
        ids: IdGenerator,
    ) -> Result<Self, DigestError> {
        Ok(Self {
            config,
            digest: DigestServer::new(digest, clock)?,
            credentials,
            clock,
            ids,
            location: LocationService::new(),
            last_failure: None,
        })
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Swaps the user database (e.g. after the collector reloads it).
    pub fn set_credentials(&mut self, credentials: Box<dyn CredentialStore + Send>) {
        self.credentials = credentials;
    }

    pub fn location(&self) -> &LocationService {
        &self.location
    }

    fn serves(&self, host: &str) -> bool {
        self.config.domains.is_empty()
            || self.config.domains.iter().any(|d| uri::same_host(d, host))
    }

    /// Processes a REGISTER received from `source` over `transport` and
    /// returns the response to send (RFC 3261 10.3).
    pub fn handle_register(
        &mut self,
        request: &rsip::Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> rsip::Response {
        self.last_failure = None;
        let tag = self.ids.tag();
        let agent = self.config.agent.clone();
        let reply = |code: u16, extra: Vec<rsip::Header>| {
            response_to(request, code, Some(source), &tag, extra)
        };
        let fail = |code: u16, why: &str| reply(code, vec![warning(&agent, why)]);

        if request.method != rsip::Method::Register {
            return reply(
                405,
                vec![rsip::Header::Allow(rsip::headers::Allow::new("REGISTER"))],
            );
        }
        // Step 1: is the Request-URI's domain ours?
        let ruri = match SipUri::parse(&request.uri.to_string()) {
            Ok(u) => u,
            Err(uri::UriError::UnsupportedScheme(s)) => {
                return fail(416, &format!("unsupported URI scheme {s}"));
            }
            Err(e) => return fail(400, &format!("bad Request-URI: {e}")),
        };
        if !self.serves(&ruri.host) {
            return fail(404, &format!("domain {} is not served here", ruri.host));
        }
        // Step 2: no extensions are supported; anything required gets 420
        // with the tags listed in Unsupported (8.2.2.3).
        let required = header_tokens(&request.headers, HeaderName::Require);
        if !required.is_empty() {
            return reply(
                420,
                vec![rsip::Header::Unsupported(rsip::headers::Unsupported::new(
                    required.join(", "),
                ))],
            );
        }
        // Step 3: authenticate (22.4).
        let user = if self.config.authenticate {
            match self
                .digest
                .verify(request, ChallengeKind::Www, &*self.credentials, now)
            {
                Ok(u) => Some(u),
                Err(f) => return self.auth_failure_response(request, Some(source), &tag, &f, now),
            }
        } else {
            None
        };
        // Step 5 (read first, step 4 needs it): the AOR from To.
        let to = match contact::parse_single(&request.headers, HeaderName::To) {
            Ok(t) => t,
            Err(e) => return fail(400, &format!("bad To header: {e}")),
        };
        if !self.serves(&to.uri.host) {
            return fail(
                404,
                &format!(
                    "address-of-record domain {} is not served here",
                    to.uri.host
                ),
            );
        }
        let aor = to.uri.aor();
        // Step 4: may this user touch this AOR?
        if let Some(user) = &user
            && self.config.aor_policy == AorPolicy::UsernameIsAorUser
            && to.uri.user.as_deref().map(uri::unescape).as_deref() != Some(user.username.as_str())
        {
            return fail(
                403,
                &format!("user {} may not register {aor}", user.username),
            );
        }
        // Step 6: Contacts and their expiry.
        let contacts = match contact::parse_contacts(&request.headers) {
            Ok(c) => c,
            Err(e) => return fail(400, &format!("bad Contact header: {e}")),
        };
        let Some(call_id) = header_value(&request.headers, HeaderName::CallId).map(str::to_string)
        else {
            return fail(400, "missing Call-ID");
        };
        let cseq = match request.cseq_header().and_then(|c| c.typed()) {
            Ok(c) => c.seq,
            Err(_) => return fail(400, "missing or bad CSeq"),
        };
        // RFC 3261 20.19: a malformed Expires reads as 3600.
        let expires_header = header_value(&request.headers, HeaderName::Expires)
            .map(|v| contact::parse_delta_seconds(v).unwrap_or(3600));
        let wildcard = contacts.contains(&ContactEntry::Wildcard);
        if wildcard && (contacts.len() != 1 || expires_header != Some(0)) {
            return fail(400, "Contact: * needs Expires: 0 and no other Contact");
        }
        let mut requested = Vec::new();
        for c in &contacts {
            let ContactEntry::Addr(na) = c else { continue };
            let q_millis = match na.q_millis() {
                Ok(q) => q,
                Err(e) => return fail(400, &e.to_string()),
            };
            let mut expires = na
                .expires()
                .or(expires_header)
                .unwrap_or(self.config.default_expires);
            // 10.3 step 7 / 10.2.8: too brief, and below one hour.
            if expires > 0 && expires < 3600 && expires < self.config.min_expires {
                return reply(
                    423,
                    vec![rsip::Header::MinExpires(self.config.min_expires.into())],
                );
            }
            expires = expires.min(self.config.max_expires);
            let params = na
                .params
                .iter()
                .filter(|(n, _)| n != "expires" && n != "q")
                .cloned()
                .collect();
            requested.push(Requested {
                uri: na.uri.clone(),
                expires,
                q_millis,
                params,
            });
        }
        // Step 7: apply to a tentative copy, commit only if all succeed.
        let mut bindings: Vec<Binding> = self
            .location
            .bindings(&aor)
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        let out_of_order = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;
        if wildcard {
            if bindings.iter().any(out_of_order) {
                return fail(500, "CSeq not above the one stored for this Call-ID");
            }
            bindings.clear();
        }
        let user_agent = header_value(&request.headers, HeaderName::UserAgent).map(str::to_string);
        let mut touched = HashSet::new();
        for r in requested {
            let existing = bindings.iter().position(|b| b.contact.equivalent(&r.uri));
            match existing {
                Some(i) if !touched.contains(&bindings[i].id) && out_of_order(&bindings[i]) => {
                    return fail(500, "CSeq not above the one stored for this Call-ID");
                }
                Some(i) if r.expires == 0 => {
                    bindings.remove(i);
                }
                Some(i) => {
                    let b = &mut bindings[i];
                    b.contact = r.uri;
                    b.q_millis = r.q_millis;
                    b.expires_at = now + Duration::from_secs(r.expires.into());
                    b.updated_at = now;
                    b.call_id.clone_from(&call_id);
                    b.cseq = cseq;
                    b.source = source;
                    b.transport = transport;
                    b.params = r.params;
                    b.user_agent.clone_from(&user_agent);
                    touched.insert(b.id);
                }
                None if r.expires == 0 => {}
                None => {
                    let id = self.location.next_id();
                    touched.insert(id);
                    bindings.push(Binding {
                        aor: aor.clone(),
                        contact: r.uri,
                        q_millis: r.q_millis,
                        expires_at: now + Duration::from_secs(r.expires.into()),
                        updated_at: now,
                        call_id: call_id.clone(),
                        cseq,
                        source,
                        transport,
                        params: r.params,
                        user_agent: user_agent.clone(),
                        id,
                    });
                }
            }
        }
        if bindings.len() > self.config.max_bindings_per_aor {
            return fail(
                403,
                &format!(
                    "more than {} contacts for {aor}",
                    self.config.max_bindings_per_aor
                ),
            );
        }
        let is_new_aor = self.location.bindings(&aor).is_empty();
        if is_new_aor && !bindings.is_empty() && self.location.aor_count() >= self.config.max_aors {
            return reply(
                503,
                vec![
                    rsip::Header::RetryAfter(rsip::headers::RetryAfter::new("300")),
                    warning(&agent, "registrar full"),
                ],
            );
        }
        self.location.replace(&aor, bindings);
        // Step 8: 200 with every current binding and a Date.
        let mut extra: Vec<rsip::Header> = self
            .location
            .lookup(&aor, now)
            .iter()
            .map(|b| rsip::Header::Contact(rsip::headers::Contact::new(b.contact_value(now))))
            .collect();
        extra.push(rsip::Header::Date(rsip::headers::Date::new(http_date(
            self.clock.unix_at(now),
        ))));
        reply(200, extra)
    }

    fn auth_failure_response(
        &mut self,
        request: &rsip::Request,
        source: Option<SocketAddr>,
        tag: &str,
        failure: &AuthFailure,
        now: Instant,
    ) -> rsip::Response {
        self.last_failure = Some(failure.clone());
        if failure.is_bad_request() {
            return response_to(
                request,
                400,
                source,
                tag,
                vec![warning(&self.config.agent, &failure.to_string())],
            );
        }
        let challenges =
            self.digest
                .challenges(ChallengeKind::Www, failure.stale(), now, &mut self.ids);
        response_to(request, 401, source, tag, challenges)
    }

    /// Authenticates any request (an INVITE to the collector, say) against
    /// the same users: the user, or the 401/400 to send back.
    pub fn authenticate_request(
        &mut self,
        request: &rsip::Request,
        now: Instant,
    ) -> Result<AuthenticatedUser, rsip::Response> {
        self.last_failure = None;
        match self
            .digest
            .verify(request, ChallengeKind::Www, &*self.credentials, now)
        {
            Ok(user) => Ok(user),
            Err(f) => {
                let tag = self.ids.tag();
                Err(self.auth_failure_response(request, None, &tag, &f, now))
            }
        }
    }

    /// Why the last REGISTER or request was not authenticated (a 401 or
    /// 400 from [`Self::handle_register`] or
    /// [`Self::authenticate_request`]): for the caller's logs, counters
    /// and limits. Taken once.
    pub fn take_auth_failure(&mut self) -> Option<AuthFailure> {
        self.last_failure.take()
    }

    /// Live bindings of `aor` (any spelling of a SIP URI: it is reduced
    /// to `sip:user@host`), highest q first.
    pub fn lookup(&self, aor: &str, now: Instant) -> Vec<Binding> {
        match SipUri::parse(&crate::sip::ipv6::to_internal(aor)) {
            Ok(u) => self.location.lookup(&u.aor(), now),
            Err(_) => Vec::new(),
        }
    }

    /// Removes the bindings that expired by `now` and returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Binding> {
        self.location.expire(now)
    }

    /// When [`expire`](Self::expire) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.location.next_expiry()
    }
}
