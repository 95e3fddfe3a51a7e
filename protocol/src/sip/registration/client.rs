//! The registration state machine.

use super::policy::{backoff, parse_retry_after, reason_phrase, refresh_delay};
use super::request::{Register, to_rsip_uri};
use super::{
    ConfigError, ConfigProblem, FailureReason, Mismatch, RegistrationConfig, RegistrationError,
    RegistrationEvent,
};
use crate::ids::IdGenerator;
use crate::sip::digest::{DigestClient, DigestError, Password};
use crate::sip::registrar::contact::{
    ContactEntry, HeaderName, header_value, parse_contacts, parse_delta_seconds,
};
use crate::sip::registrar::via::top_via;
use crate::sip::uri::SipUri;
use crate::sip::{LocalEndpoint, ipv6};
use rsip::prelude::*;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Challenges answered in a row before an attempt counts as failed.
const MAX_AUTH_ROUNDS: u32 = 4;
/// Consecutive Contact rewrites for NAT before we accept what we have
/// (a NAT that changes the mapping on every request would loop us).
const MAX_NAT_REWRITES: u32 = 2;
/// 423 never pushes the requested interval beyond a week.
const MAX_EXPIRES: u32 = 7 * 86_400;

/// Where the client stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started.
    Idle,
    /// A REGISTER is outstanding (first, refresh, or after a challenge).
    Registering,
    /// Bound; a refresh is scheduled.
    Registered,
    /// Waiting out a back-off before the next attempt.
    Retrying,
    /// The unregistering REGISTER (Expires: 0) is outstanding.
    Unregistering,
    /// Wrong credentials: waiting for `set_credentials`.
    Failed,
    /// Stopped (after `stop`).
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
}

#[derive(Debug)]
struct Outstanding {
    request: rsip::Request,
    purpose: Purpose,
}

/// A registration client for one AOR at one registrar.
#[derive(Debug)]
pub struct RegistrationClient {
    config: RegistrationConfig,
    ids: IdGenerator,
    digest: DigestClient,
    registrar_uri: rsip::Uri,
    aor: String,
    route: Option<String>,
    contact_user: Option<String>,
    /// 10.2: one Call-ID for every REGISTER of this boot cycle, CSeq
    /// incremented each time (10.2.4).
    call_id: String,
    from_tag: String,
    cseq: u32,
    state: RegistrationState,
    outstanding: Option<Outstanding>,
    stop_requested: bool,
    /// Where our Contact points (local address, or the public one).
    contact_addr: SocketAddr,
    /// A Contact to remove in the next REGISTER (after a NAT rewrite).
    stale_contact: Option<String>,
    expires: u32,
    registered_until: Option<Instant>,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    auth_rounds: u32,
    nat_rewrites: u32,
    requests: VecDeque<rsip::Request>,
    events: VecDeque<RegistrationEvent>,
}

impl RegistrationClient {
    /// Validates the configuration; `ids` supplies Call-ID, tags,
    /// branches, cnonces and jitter.
    pub fn new(
        config: RegistrationConfig,
        mut ids: IdGenerator,
    ) -> Result<Self, RegistrationError> {
        let bad = |setting: &'static str, problem: ConfigProblem| {
            RegistrationError::Config(ConfigError { setting, problem })
        };
        let registrar = SipUri::parse(&config.registrar).map_err(|e| bad("registrar", e.into()))?;
        let registrar_uri = to_rsip_uri(&registrar).map_err(|e| bad("registrar", e))?;
        let aor = SipUri::parse(&config.aor).map_err(|e| bad("aor", e.into()))?;
        if aor.user.is_none() {
            return Err(bad("aor", ConfigProblem::AorWithoutUser));
        }
        let route = match &config.outbound_proxy {
            Some(p) => {
                let proxy = SipUri::parse(&ipv6::to_internal(p.trim()))
                    .map_err(|e| bad("outbound proxy", e.into()))?;
                // Loose routing (RFC 3261 16.12.1.1): the Request-URI stays
                // the registrar's.
                Some(if proxy.param("lr").is_some() {
                    format!("<{proxy}>")
                } else {
                    format!("<{proxy};lr>")
                })
            }
            None => None,
        };
        if config.expires == 0 {
            return Err(bad("expires", ConfigProblem::ZeroExpires));
        }
        if config.backoff_base.is_zero() || config.backoff_max < config.backoff_base {
            return Err(bad("backoff", ConfigProblem::Backoff));
        }
        let contact_user = config.contact_user.clone().or_else(|| aor.user.clone());
        let mut digest = DigestClient::new(config.username.clone(), config.password.clone());
        if let Some(realm) = &config.realm {
            digest = digest.with_realm(realm.clone());
        }
        let call_id = ids.call_id(&config.local.addr.ip().to_string());
        let from_tag = ids.tag();
        let cseq = ids.cseq_start();
        Ok(Self {
            contact_addr: config.local.addr,
            expires: config.expires,
            // Inside the stack IPv6 references take their internal form.
            aor: ipv6::to_internal(config.aor.trim()).into_owned(),
            config,
            ids,
            digest,
            registrar_uri,
            route,
            contact_user,
            call_id,
            from_tag,
            cseq,
            state: RegistrationState::Idle,
            outstanding: None,
            stop_requested: false,
            stale_contact: None,
            registered_until: None,
            refresh_at: None,
            retry_at: None,
            failures: 0,
            auth_rounds: 0,
            nat_rewrites: 0,
            requests: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// True while the last granted binding has not expired.
    pub fn is_registered(&self, now: Instant) -> bool {
        self.registered_until.is_some_and(|t| t > now)
    }

    /// The Contact URI this client registers now; with a flow it carries
    /// `ob` (RFC 5626 5.4: requests for it go back over the flow).
    pub fn contact(&self) -> String {
        let uri = LocalEndpoint::new(self.config.local.transport, self.contact_addr)
            .contact_uri(self.contact_user.as_deref());
        match self.config.outbound {
            Some(_) => format!("{uri};ob"),
            None => uri,
        }
    }

    #[cfg(test)]
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Begins registering. Does nothing while already active.
    pub fn start(&mut self, now: Instant) {
        match self.state {
            RegistrationState::Idle | RegistrationState::Stopped | RegistrationState::Failed => {
                self.stop_requested = false;
                self.failures = 0;
                self.send(Purpose::Register, now);
            }
            _ => {}
        }
    }

    /// Removes the binding (Expires: 0, 10.2.2), after the outstanding
    /// REGISTER if there is one; ends in `Unregistered` (or `Failed`) and
    /// the `Stopped` state.
    ///
    /// After a wrong-password failure there is nothing we may send: the
    /// client stops at once, without a further event.
    pub fn stop(&mut self, now: Instant) {
        self.stop_requested = true;
        self.refresh_at = None;
        self.retry_at = None;
        if self.outstanding.is_some() {
            return;
        }
        match self.state {
            RegistrationState::Failed => self.finish_stopped(),
            RegistrationState::Stopped => {}
            _ => self.continue_stopping(now),
        }
    }

    fn continue_stopping(&mut self, now: Instant) {
        if self.is_registered(now) || self.stale_contact.is_some() {
            self.send(Purpose::Unregister, now);
        } else {
            self.finish_stopped();
            self.events.push_back(RegistrationEvent::Unregistered);
        }
    }

    fn finish_stopped(&mut self) {
        self.state = RegistrationState::Stopped;
        self.registered_until = None;
        self.refresh_at = None;
        self.retry_at = None;
    }

    /// New credentials (a fixed config file): after a wrong-password
    /// failure the client starts over at once.
    pub fn set_credentials(
        &mut self,
        username: impl Into<String>,
        password: Password,
        now: Instant,
    ) {
        let username = username.into();
        self.config.username.clone_from(&username);
        self.config.password = password.clone();
        self.digest.set_credentials(username, password);
        if self.state == RegistrationState::Failed {
            self.failures = 0;
            self.send(Purpose::Register, now);
        }
    }

    fn next_cseq(&mut self) -> u32 {
        // 8.1.1.5: below 2**31; wrapping there is harmless for REGISTER
        // only after a new Call-ID, which a long-lived UA gets here.
        if self.cseq >= 0x7fff_ffff {
            self.call_id = self.ids.call_id(&self.config.local.addr.ip().to_string());
            self.cseq = 1;
        } else {
            self.cseq += 1;
        }
        self.cseq
    }

    fn send(&mut self, purpose: Purpose, _now: Instant) {
        let cseq = self.next_cseq();
        let contact = self.contact();
        let expires = match purpose {
            Purpose::Register => self.expires,
            Purpose::Unregister => 0,
        };
        let mut contacts = vec![(contact, expires)];
        if let Some(old) = &self.stale_contact {
            contacts.push((old.clone(), 0));
        }
        let mut request = Register {
            uri: &self.registrar_uri,
            via: self.config.local.via(&self.ids.branch()),
            route: self.route.as_deref(),
            aor: &self.aor,
            from_tag: &self.from_tag,
            call_id: &self.call_id,
            cseq,
            contacts: &contacts,
            expires,
            user_agent: self.config.user_agent.as_deref(),
            outbound: self.config.outbound.as_ref(),
        }
        .build();
        // Credentials up front once a challenge is known (RFC 3261 22.3).
        self.digest.authorize(&mut request, &mut self.ids);
        self.state = match purpose {
            Purpose::Register => RegistrationState::Registering,
            Purpose::Unregister => RegistrationState::Unregistering,
        };
        self.retry_at = None;
        self.refresh_at = None;
        self.requests.push_back(request.clone());
        self.outstanding = Some(Outstanding { request, purpose });
    }

    /// A response to the outstanding REGISTER, as the transaction layer
    /// delivers it. 1xx are accepted and ignored.
    pub fn handle_response(
        &mut self,
        response: &rsip::Response,
        now: Instant,
    ) -> Result<(), RegistrationError> {
        let Some(out) = &self.outstanding else {
            return Err(RegistrationError::NothingOutstanding);
        };
        let cseq = response
            .cseq_header()
            .and_then(|c| c.typed())
            .map_err(|e| RegistrationError::UnexpectedResponse(Mismatch::BadCSeq(e)))?;
        let call_id = header_value(&response.headers, HeaderName::CallId);
        let sent_cseq = out.request.cseq_header().and_then(|c| c.typed()).ok();
        if cseq.method != rsip::Method::Register
            || Some(cseq.seq) != sent_cseq.map(|c| c.seq)
            || call_id != Some(self.call_id.as_str())
        {
            return Err(RegistrationError::UnexpectedResponse(Mismatch::NotOurs {
                seq: cseq.seq,
                method: cseq.method,
                call_id: call_id.map(Into::into),
            }));
        }
        let code = response.status_code.code();
        if code < 200 {
            return Ok(());
        }
        let Some(out) = self.outstanding.take() else {
            return Err(RegistrationError::NothingOutstanding);
        };
        match (out.purpose, code) {
            (_, 401 | 407) => self.on_challenge(&out, response, now),
            (Purpose::Register, 200..=299) => self.on_registered(response, now),
            (Purpose::Unregister, 200..=299) => {
                self.stale_contact = None;
                self.finish_stopped();
                self.events.push_back(RegistrationEvent::Unregistered);
            }
            (Purpose::Register, 423) => self.on_too_brief(response, now),
            (_, _) => {
                let retry_after = header_value(&response.headers, HeaderName::RetryAfter)
                    .and_then(parse_retry_after);
                self.fail(
                    FailureReason::Rejected {
                        code,
                        reason: reason_phrase(&response.status_code),
                    },
                    retry_after,
                    now,
                );
            }
        }
        Ok(())
    }

    /// The outstanding REGISTER got no final response: timeout (Timer F)
    /// or a transport error.
    pub fn handle_transaction_failure(&mut self, now: Instant) -> Result<(), RegistrationError> {
        if self.outstanding.take().is_none() {
            return Err(RegistrationError::NothingOutstanding);
        }
        self.fail(FailureReason::Unreachable, None, now);
        Ok(())
    }

    /// Fires due timers: refresh, retry, and the binding's expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.registered_until.is_some_and(|t| t <= now)
            && self.state != RegistrationState::Registered
        {
            // Refreshes failed for the whole interval: say so once.
            self.registered_until = None;
            self.events.push_back(RegistrationEvent::Expired);
        }
        match self.state {
            RegistrationState::Registered if self.refresh_at.is_some_and(|t| t <= now) => {
                self.send(Purpose::Register, now);
            }
            RegistrationState::Retrying if self.retry_at.is_some_and(|t| t <= now) => {
                self.send(Purpose::Register, now);
            }
            _ => {}
        }
    }

    /// The next complete REGISTER to hand to the transaction layer.
    pub fn poll_request(&mut self) -> Option<rsip::Request> {
        self.requests.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timer = match self.state {
            RegistrationState::Registered => self.refresh_at,
            RegistrationState::Retrying => self.retry_at,
            _ => None,
        };
        let expiry = match self.state {
            RegistrationState::Registered | RegistrationState::Stopped => None,
            _ => self.registered_until,
        };
        match (timer, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_challenge(&mut self, out: &Outstanding, response: &rsip::Response, now: Instant) {
        self.auth_rounds += 1;
        if self.auth_rounds > MAX_AUTH_ROUNDS {
            return self.fail(FailureReason::ChallengeLoop, None, now);
        }
        match self.digest.handle_challenge(&out.request, response) {
            // Stale, first challenge, or a new realm: resend at once with
            // credentials; nothing to report (RFC 7616 3.3).
            Ok(()) => {
                let purpose = if self.stop_requested {
                    Purpose::Unregister
                } else {
                    out.purpose
                };
                self.send(purpose, now);
            }
            Err(DigestError::WrongCredentials { realm }) => {
                // RFC 3261 22.2: the same credentials would fail again.
                self.auth_rounds = 0;
                self.events.push_back(RegistrationEvent::Failed {
                    reason: FailureReason::WrongCredentials { realm },
                });
                self.retry_at = None;
                self.refresh_at = None;
                if self.stop_requested {
                    self.finish_stopped();
                } else {
                    self.state = RegistrationState::Failed;
                }
            }
            Err(e) => self.fail(FailureReason::Authentication(e), None, now),
        }
    }

    fn on_too_brief(&mut self, response: &rsip::Response, now: Instant) {
        // RFC 3261 10.2.8: retry with at least Min-Expires.
        if self.stop_requested {
            return self.continue_stopping(now);
        }
        let min =
            header_value(&response.headers, HeaderName::MinExpires).and_then(parse_delta_seconds);
        match min {
            Some(min) if min > self.expires && min <= MAX_EXPIRES => {
                self.expires = min;
                self.auth_rounds = 0;
                self.send(Purpose::Register, now);
            }
            _ => self.fail(
                FailureReason::Rejected {
                    code: 423,
                    reason: format!("Interval Too Brief (Min-Expires {min:?})"),
                },
                None,
                now,
            ),
        }
    }

    fn on_registered(&mut self, response: &rsip::Response, now: Instant) {
        self.auth_rounds = 0;
        self.stale_contact = None;
        let ours = self.contact();
        // 10.2.4: the interval granted is our Contact's `expires` in the
        // 200, else its Expires header, else what we asked for.
        let ours_uri = SipUri::parse(&ours).ok();
        let listed = parse_contacts(&response.headers)
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| match c {
                ContactEntry::Addr(na)
                    if ours_uri.as_ref().is_some_and(|o| o.equivalent(&na.uri)) =>
                {
                    Some(na)
                }
                _ => None,
            });
        let header =
            header_value(&response.headers, HeaderName::Expires).and_then(parse_delta_seconds);
        let granted = listed
            .as_ref()
            .and_then(|na| na.expires())
            .or(header)
            .unwrap_or(self.expires);

        // RFC 3581 4: the Via says where the registrar saw us. If that is
        // not where our Contact points, nobody can reach us there.
        // Over TCP the source port is the connection's ephemeral port,
        // not a NAT mapping: only a different address means NAT there.
        let public = top_via(&response.headers).and_then(|v| v.public_addr());
        let moved = public.is_some_and(|p| {
            if self.config.local.transport.is_reliable() {
                p.ip() != self.contact_addr.ip()
            } else {
                p != self.contact_addr
            }
        });
        if self.config.follow_nat
            && !self.stop_requested
            && moved
            && let Some(public) = public
            && self.nat_rewrites < MAX_NAT_REWRITES
        {
            self.nat_rewrites += 1;
            self.stale_contact = Some(ours);
            self.contact_addr = public;
            if granted > 0 {
                self.registered_until = Some(now + Duration::from_secs(granted.into()));
            }
            return self.send(Purpose::Register, now);
        }
        self.nat_rewrites = 0;
        if granted == 0 {
            return self.fail(FailureReason::NotBound, None, now);
        }
        self.failures = 0;
        let granted = Duration::from_secs(granted.into());
        self.registered_until = Some(now + granted);
        self.events.push_back(RegistrationEvent::Registered {
            expires: granted,
            contact: ipv6::to_wire(&self.contact()).into_owned(),
        });
        if self.stop_requested {
            return self.continue_stopping(now);
        }
        self.state = RegistrationState::Registered;
        self.refresh_at = Some(now + refresh_delay(granted, self.ids.unit()));
    }

    fn fail(&mut self, reason: FailureReason, retry_after: Option<Duration>, now: Instant) {
        self.auth_rounds = 0;
        self.events.push_back(RegistrationEvent::Failed { reason });
        if self.stop_requested {
            // Shutting down: no retries, the binding will lapse by itself.
            self.finish_stopped();
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let delay = match retry_after {
            // RFC 3261 20.33 / 21.5.4: wait as long as the server asks.
            Some(d) => d.min(self.config.max_retry_after),
            None => backoff(
                self.config.backoff_base,
                self.config.backoff_max,
                self.failures,
                self.ids.unit(),
            ),
        };
        self.state = RegistrationState::Retrying;
        self.retry_at = Some(now + delay);
        self.refresh_at = None;
        self.events
            .push_back(RegistrationEvent::Retrying { after: delay });
    }
}
