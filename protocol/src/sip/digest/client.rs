//! The UAC side of Digest: answer 401/407 and keep answering (RFC 3261
//! 22.2-22.3, RFC 8760 2.4).

use super::challenge::{Challenge, DigestCredentials};
use super::hash::{self, ResponseInput};
use super::{ChallengeKind, DigestError, Password};
use crate::ids::IdGenerator;

/// Realms remembered at once; a response naming more is hostile or broken.
const MAX_SESSIONS: usize = 8;
/// Consecutive `stale=true` answers to a nonce's first use before we stop:
/// a server that calls every fresh nonce stale would loop us forever.
const MAX_STALE_FIRST_USE: u32 = 2;

/// Answers Digest challenges with one username and password, and caches
/// each realm's challenge so later requests carry credentials up front
/// with an incremented `nc` (RFC 3261 22.3, RFC 7616 3.4).
#[derive(Debug)]
pub struct DigestClient {
    username: String,
    password: Password,
    /// Answer only this realm when set; otherwise any realm.
    realm: Option<String>,
    sessions: Vec<Session>,
}

#[derive(Debug)]
struct Session {
    challenge: Challenge,
    /// Times the current nonce has been used; the next `nc` is this + 1.
    uses: u32,
    cnonce: String,
    stale_first_use: u32,
}

enum Decision {
    Install {
        challenge: Challenge,
        stale_first_use: u32,
    },
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: Password) -> Self {
        Self {
            username: username.into(),
            password,
            realm: None,
            sessions: Vec::new(),
        }
    }

    /// Restricts the credentials to one realm: challenges from other
    /// realms are then unanswerable (the password is not sent to whoever
    /// asks).
    pub fn with_realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// New credentials (a fixed config file): cached challenges are
    /// dropped so the next request starts a fresh exchange.
    pub fn set_credentials(&mut self, username: impl Into<String>, password: Password) {
        self.username = username.into();
        self.password = password;
        self.sessions.clear();
    }

    /// True when `authorize` will add credentials.
    pub fn has_challenges(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Forgets every cached challenge.
    pub fn clear(&mut self) {
        self.sessions.clear();
    }

    /// Takes in a 401 or 407 to `request` (the request as sent, with the
    /// credentials it carried). `Ok` means: build the request again, call
    /// [`authorize`](Self::authorize), send it. Errors say why not, e.g.
    /// [`DigestError::WrongCredentials`] when a challenge answered with a
    /// fresh nonce is rejected without `stale=true` (RFC 3261 22.2: do not
    /// retry the same credentials).
    pub fn handle_challenge(
        &mut self,
        request: &rsip::Request,
        response: &rsip::Response,
    ) -> Result<(), DigestError> {
        let code = response.status_code.code();
        if code != 401 && code != 407 {
            return Err(DigestError::NotAChallenge(code));
        }
        // A forking proxy aggregates both kinds into one response (RFC
        // 3261 16.7 step 6), so read both whatever the status.
        let mut first_error = None;
        let mut chosen: Vec<Challenge> = Vec::new();
        for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
            for parsed in Challenge::parse_all(kind, &response.headers) {
                let c = match parsed {
                    Ok(c) => c,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                };
                if self.realm.as_ref().is_some_and(|r| *r != c.realm) {
                    continue;
                }
                // RFC 8760 2.4: per realm, one challenge; local policy here
                // is the strongest hash, the topmost among equals.
                match chosen
                    .iter_mut()
                    .find(|x| x.kind == c.kind && x.realm == c.realm)
                {
                    Some(x) if c.hash().strength() > x.hash().strength() => *x = c,
                    Some(_) => {}
                    None => chosen.push(c),
                }
            }
        }
        if chosen.is_empty() {
            return Err(first_error.unwrap_or(DigestError::NoSupportedChallenge));
        }
        if chosen.len() > MAX_SESSIONS {
            return Err(DigestError::Malformed(format!(
                "{} realms challenged at once",
                chosen.len()
            )));
        }

        let mut sent = Vec::new();
        for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
            for creds in DigestCredentials::parse_all(kind, &request.headers)
                .into_iter()
                .flatten()
            {
                sent.push((kind, creds));
            }
        }

        // Decide everything first so an error leaves the cache untouched.
        let mut decisions = Vec::new();
        for c in chosen {
            let carried = sent
                .iter()
                .find(|(k, s)| *k == c.kind && s.realm == c.realm)
                .map(|(_, s)| s);
            let existing = self.session(c.kind, &c.realm);
            let Some(creds) = carried else {
                decisions.push(Decision::Install {
                    challenge: c,
                    stale_first_use: 0,
                });
                continue;
            };
            // Was the rejected credential the first use of a nonce the
            // server had just given us? Then the server saw our answer to
            // its own fresh challenge.
            let first_use = match creds.nc {
                Some(nc) => nc <= 1,
                None => existing.is_none_or(|s| s.challenge.nonce != creds.nonce || s.uses <= 1),
            };
            let previous_stale = existing.map_or(0, |s| s.stale_first_use);
            if c.stale {
                // RFC 7616 3.3: the password was right, only the nonce is
                // old: retry with the new nonce, no failure to report.
                let stale_first_use = if first_use { previous_stale + 1 } else { 0 };
                if stale_first_use > MAX_STALE_FIRST_USE {
                    return Err(DigestError::TooManyStale { realm: c.realm });
                }
                decisions.push(Decision::Install {
                    challenge: c,
                    stale_first_use,
                });
            } else if first_use {
                let realm = c.realm;
                self.sessions
                    .retain(|s| !(s.challenge.kind == c.kind && s.challenge.realm == realm));
                return Err(DigestError::WrongCredentials { realm });
            } else {
                // A cached nonce the server dropped without saying stale:
                // answer its fresh challenge once before judging.
                decisions.push(Decision::Install {
                    challenge: c,
                    stale_first_use: 0,
                });
            }
        }
        for Decision::Install {
            challenge,
            stale_first_use,
        } in decisions
        {
            self.sessions.retain(|s| {
                !(s.challenge.kind == challenge.kind && s.challenge.realm == challenge.realm)
            });
            if self.sessions.len() == MAX_SESSIONS {
                self.sessions.remove(0);
            }
            self.sessions.push(Session {
                challenge,
                uses: 0,
                cnonce: String::new(),
                stale_first_use,
            });
        }
        Ok(())
    }

    fn session(&self, kind: ChallengeKind, realm: &str) -> Option<&Session> {
        self.sessions
            .iter()
            .find(|s| s.challenge.kind == kind && s.challenge.realm == realm)
    }

    /// Replaces any Authorization / Proxy-Authorization in `request` with
    /// credentials for every cached challenge (RFC 3261 22.3), computed
    /// over the request's method, Request-URI and body.
    pub fn authorize(&mut self, request: &mut rsip::Request, ids: &mut IdGenerator) {
        request.headers.retain(|h| {
            !(ChallengeKind::Www.is_credentials_header(h)
                || ChallengeKind::Proxy.is_credentials_header(h))
        });
        // The digest covers the strings as they go on the wire, where the
        // stack's internal IPv6 names are brackets again (crate::sip::ipv6);
        // the header carries those same strings.
        let uri = wire(&request.uri.to_string());
        let username = wire(&self.username);
        let method = request.method.to_string();
        for s in &mut self.sessions {
            s.uses = s.uses.saturating_add(1);
            if s.uses == 1 {
                // A fresh cnonce per nonce; nc then counts its uses.
                s.cnonce = ids.hex(16);
            }
            let c = &s.challenge;
            let (realm, nonce) = (wire(&c.realm), wire(&c.nonce));
            let qop = c.chosen_qop();
            let cnonce = qop.map(|_| s.cnonce.as_str());
            let base = hash::base_ha1(c.hash(), &username, &realm, self.password.expose());
            let ha1 = hash::effective_ha1(c.algorithm, &base, &nonce, cnonce);
            let response = hash::response(
                c.hash(),
                &ha1,
                &ResponseInput {
                    method: &method,
                    uri: &uri,
                    nonce: &nonce,
                    qop,
                    nc: s.uses,
                    cnonce: &s.cnonce,
                    body: &request.body,
                },
            );
            let creds = DigestCredentials {
                username: username.clone(),
                realm,
                nonce,
                uri: uri.clone(),
                response,
                algorithm: c.algorithm,
                cnonce: cnonce.map(str::to_string),
                opaque: c.opaque.clone(),
                qop,
                nc: qop.map(|_| s.uses),
            };
            insert_before_content_length(
                &mut request.headers,
                c.kind.credentials_header(creds.to_header_value()),
            );
        }
    }
}

/// Inserts `header` before Content-Length, which conventionally ends the
/// header section, or at the end.
pub(crate) fn insert_before_content_length(headers: &mut rsip::Headers, header: rsip::Header) {
    let mut list: Vec<rsip::Header> = std::mem::take(headers).into();
    let at = list
        .iter()
        .position(|h| matches!(h, rsip::Header::ContentLength(_)))
        .unwrap_or(list.len());
    list.insert(at, header);
    *headers = list.into();
}

/// A string as it appears on the wire (see [`crate::sip::ipv6`]).
pub(crate) fn wire(text: &str) -> String {
    crate::sip::ipv6::to_wire(text).into_owned()
}
