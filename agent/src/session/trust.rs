//! Who may open a session on this sensor (issue #14 finding 1): a request
//! that arrived on the flow the agent itself keeps to its registrar or
//! outbound proxy (RFC 5626: that proxy authenticated the caller), or one
//! that answers the agent's own digest challenge (RFC 3261 22.1, RFC 7616,
//! RFC 8760). Never a From header: anyone can write one. And who may end
//! or change it ([`in_dialog`]): the same way in, or the same caller.

use std::time::Instant;

use super::{Action, Controller};
use sipsensor_protocol::{
    AuthenticatedUser, ChallengeKind, DigestAlgorithm, DigestAuthFailure, DigestError,
    DigestServer, DigestServerConfig, IdGenerator, InMemoryCredentials, Password, Request,
    Response, ServerSecret, SessionId, Target, WallClock,
};

/// What the shell knows about trust, from the configuration.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The agent's own connection to its registrar or outbound proxy
    /// (TCP or TLS); `None` over UDP, where a source address proves
    /// nothing.
    pub flow: Option<Target>,
    /// Digest users that may call the sensor (`sip.callers`, passwords
    /// from the secrets file); empty: nobody outside the flow.
    pub callers: Vec<(String, Password)>,
    /// The realm of our challenges (`sip.caller_realm`).
    pub realm: String,
    /// Our address of record: a caller whose proxy retargeted the INVITE
    /// to our Contact computed its digest over this URI.
    pub aor: String,
    /// Offer MD5 after SHA-256 (RFC 8760 2.3), for callers that know no
    /// better; off unless configured.
    pub allow_md5: bool,
    /// Ties nonce timestamps to the wall clock (read once by the shell).
    pub clock: WallClock,
}

/// How a request was admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It came on the flow to the trusted proxy.
    Flow,
    /// It carried valid credentials of this caller.
    Caller(String),
}

/// How the session being set up or streamed came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opener {
    /// Its INVITE came on the flow to the trusted proxy.
    Flow,
    /// Its INVITE carried valid credentials of this caller.
    Caller(String),
    /// We called.
    Us,
}

/// Why a request may not open a session, or end or change one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No way in for anyone but the flow: 403.
    #[error("{from} is not the trusted proxy's flow and no callers are configured")]
    Untrusted { from: std::net::SocketAddr },
    /// Credentials missing, wrong, stale or replayed: the 401 (or 400 for
    /// broken credentials) to send back.
    #[error("{why}")]
    Challenge {
        response: Box<Response>,
        why: DigestAuthFailure,
    },
    /// Inside a dialog: credentials that are wrong, or of an unknown
    /// user (403: a caller with the password has nothing to retry).
    #[error("{0}")]
    WrongCredentials(DigestAuthFailure),
    /// Inside a dialog: valid credentials, but not of the caller who
    /// opened it.
    #[error("{user} is not {opener}, who opened this session")]
    NotTheOpener { user: String, opener: String },
}

/// The agent's trust decisions, with the digest server's nonce state.
#[derive(Debug)]
pub struct Trust {
    flow: Option<Target>,
    callers: Option<Callers>,
}

#[derive(Debug)]
struct Callers {
    server: DigestServer,
    store: InMemoryCredentials,
    realm: String,
    aor: String,
}

impl Trust {
    /// A fresh nonce secret per start: nonces need not outlive the agent.
    pub fn new(config: &TrustConfig, ids: &mut IdGenerator) -> Result<Self, DigestError> {
        let callers = if config.callers.is_empty() {
            None
        } else {
            let mut digest = DigestServerConfig::new(&config.realm, ServerSecret::generate(ids));
            digest.algorithms = if config.allow_md5 {
                vec![DigestAlgorithm::SHA256, DigestAlgorithm::MD5]
            } else {
                vec![DigestAlgorithm::SHA256]
            };
            // A sensor has a handful of callers, not a registrar's crowd.
            digest.max_tracked_nonces = 1024;
            let mut store = InMemoryCredentials::new();
            for (user, password) in &config.callers {
                store.insert_password(user.clone(), password.clone());
            }
            Some(Callers {
                server: DigestServer::new(digest, config.clock)?,
                store,
                realm: config.realm.clone(),
                aor: config.aor.clone(),
            })
        };
        Ok(Self {
            callers,
            ..Self::flow_only(config)
        })
    }

    /// Only the flow; every caller is refused.
    pub fn flow_only(config: &TrustConfig) -> Self {
        Self {
            flow: config.flow.filter(|f| f.transport.is_reliable()),
            callers: None,
        }
    }

    /// `Ok` when `request`, received from `source`, may open or change a
    /// session.
    pub fn admit(
        &mut self,
        request: &Request,
        source: Target,
        now: Instant,
        ids: &mut IdGenerator,
    ) -> Result<Admission, Refusal> {
        if self.is_flow(source) {
            return Ok(Admission::Flow);
        }
        let Some(callers) = self.callers.as_mut() else {
            return Err(Refusal::Untrusted { from: source.addr });
        };
        match callers.verify(request, now) {
            Ok(AuthenticatedUser { username, .. }) => Ok(Admission::Caller(username)),
            Err(why) => Err(callers.challenge(request, why, now, ids)),
        }
    }

    /// `Ok` when an in-dialog `request` (BYE, re-INVITE) of the session
    /// `opener` set up may take effect: it came on the connection the
    /// session was set up on (`on_dialog_flow`) or on the flow to the
    /// trusted proxy, or it carries valid credentials of the caller who
    /// opened the session (of any configured caller when the proxy's flow
    /// or we opened it). Missing or stale credentials are challenged;
    /// wrong ones, or another caller's, are refused.
    pub fn admit_in_dialog(
        &mut self,
        request: &Request,
        source: Target,
        on_dialog_flow: bool,
        opener: Option<&Opener>,
        now: Instant,
        ids: &mut IdGenerator,
    ) -> Result<Admission, Refusal> {
        if on_dialog_flow || self.is_flow(source) {
            return Ok(Admission::Flow);
        }
        let Some(callers) = self.callers.as_mut() else {
            return Err(Refusal::Untrusted { from: source.addr });
        };
        match callers.verify(request, now) {
            Ok(AuthenticatedUser { username, .. }) => match opener {
                Some(Opener::Caller(owner)) if *owner != username => Err(Refusal::NotTheOpener {
                    user: username,
                    opener: owner.clone(),
                }),
                _ => Ok(Admission::Caller(username)),
            },
            Err(why)
                if matches!(why, DigestAuthFailure::NoCredentials(_))
                    || why.stale()
                    || why.is_bad_request() =>
            {
                Err(callers.challenge(request, why, now, ids))
            }
            Err(why) => Err(Refusal::WrongCredentials(why)),
        }
    }

    /// True for a message that arrived on the agent's own connection to
    /// its proxy; over UDP nothing is.
    pub fn is_flow(&self, source: Target) -> bool {
        source.transport.is_reliable() && self.flow == Some(source)
    }
}

impl Callers {
    /// Our 401 with fresh challenges, or the 400 for broken credentials.
    fn challenge(
        &self,
        request: &Request,
        why: DigestAuthFailure,
        now: Instant,
        ids: &mut IdGenerator,
    ) -> Refusal {
        let response = if why.is_bad_request() {
            let mut r = sipsensor_protocol::response_to(request, 400.into(), Some(&ids.tag()));
            warn(&mut r, &self.realm, &why.to_string());
            r
        } else {
            let mut r = sipsensor_protocol::response_to(request, 401.into(), Some(&ids.tag()));
            let challenges = self
                .server
                .challenges(ChallengeKind::Www, why.stale(), now, ids);
            r.headers.extend(challenges);
            r
        };
        Refusal::Challenge {
            response: Box::new(response),
            why,
        }
    }

    fn verify(
        &mut self,
        request: &Request,
        now: Instant,
    ) -> Result<AuthenticatedUser, DigestAuthFailure> {
        let kind = ChallengeKind::Www;
        match self.server.verify(request, kind, &self.store, now) {
            // RFC 7616 3.4.6 wants the digest uri to be the Request-URI,
            // but a proxy's location lookup (RFC 3261 16.5) replaced the
            // caller's Request-URI, our AOR, with our Contact. The AOR
            // names this sensor as well, so credentials for it are
            // checked as if the caller's Request-URI had arrived.
            Err(DigestAuthFailure::UriMismatch { uri, .. }) if same_uri(&uri, &self.aor) => {
                let mut as_sent = request.clone();
                as_sent.uri = sipsensor_protocol::SipUri::parse(&uri)
                    .map_err(|e| {
                        DigestAuthFailure::Malformed(DigestError::Malformed(e.to_string()))
                    })?
                    .to_rsip();
                self.server.verify(&as_sent, kind, &self.store, now)
            }
            other => other,
        }
    }
}

/// Two SIP URIs the same for the digest's purpose: scheme, user, host and
/// port, case-insensitive (parameters of an AOR do not matter here).
fn same_uri(a: &str, b: &str) -> bool {
    let key = |u: &str| {
        let u = u.trim().trim_start_matches('<').trim_end_matches('>');
        u.split([';', '?'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    key(a) == key(b)
}

/// RFC 3261 20.43, code 399: why the credentials were refused.
fn warn(response: &mut Response, agent: &str, text: &str) {
    let text = text.replace(['"', '\\'], "'");
    use sipsensor_protocol::prelude::UntypedHeader;
    response.headers.push(sipsensor_protocol::Header::Warning(
        sipsensor_protocol::headers::Warning::new(format!("399 {agent} \"{text}\"")),
    ));
}

/// The controller's side: trust before anything else.
impl Controller {
    /// Trust before anything else: a stranger learns neither that the
    /// sensor is busy nor what it can send.
    pub(super) fn incoming_call(
        &mut self,
        session: SessionId,
        request: &Request,
        source: Target,
        offer: &[u8],
        now: Instant,
    ) {
        match self.trust.admit(request, source, now, &mut self.ids) {
            Ok(Admission::Flow) => self.incoming(session, offer, Opener::Flow, now),
            Ok(Admission::Caller(user)) => {
                tracing::info!("call from {} authenticated as {user}", source.addr);
                self.incoming(session, offer, Opener::Caller(user), now);
            }
            Err(Refusal::Challenge { response, why }) => {
                // The first INVITE of every call comes without credentials;
                // anything else is worth a line (without the credentials).
                if matches!(why, sipsensor_protocol::DigestAuthFailure::NoCredentials(_)) {
                    tracing::debug!("challenged a call from {}", source.addr);
                } else {
                    tracing::warn!("refused a call from {}: {why}", source.addr);
                }
                self.actions
                    .push_back(Action::Challenge { session, response });
            }
            Err(why) => {
                tracing::warn!("refused a call from {}: {why}", source.addr);
                self.actions.push_back(Action::Reject {
                    session,
                    status: 403,
                    warning: "not a trusted caller".into(),
                });
            }
        }
    }
}

mod in_dialog;
#[cfg(test)]
mod tests;
