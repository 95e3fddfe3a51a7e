//! The UAS side of Digest: stateless nonces, credential checks, replay
//! protection (RFC 3261 22.1 and 22.4, RFC 7616 3.3-3.5, RFC 8760 2.3).

use super::challenge::{Challenge, DigestCredentials};
use super::client::wire;
use super::hash::{self, ResponseInput, to_hex};
use super::{Algorithm, ChallengeKind, DigestError, HashFunction, Password, Qop};
use crate::ids::IdGenerator;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

type HmacSha256 = Hmac<Sha256>;

/// Nonces from a peer collector whose clock runs ahead are accepted up to
/// this much in the future.
const CLOCK_SKEW_SECS: u64 = 5;
/// 8-byte timestamp, 8-byte salt and 16 bytes of MAC, hex-encoded.
const NONCE_LEN: usize = 64;
/// Out-of-order `nc` values accepted below the highest seen (like the
/// IPsec anti-replay window), so concurrent requests do not fail.
const NC_WINDOW: u32 = 64;

/// Maps the monotonic clock the stack runs on to Unix time, so nonces
/// carry a wall-clock timestamp that another process (a restarted
/// collector, a second one sharing the secret) can check. The shell reads
/// both clocks once at start-up; nothing here reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    pub instant: Instant,
    pub unix_secs: u64,
}

impl WallClock {
    pub fn new(instant: Instant, unix_secs: u64) -> Self {
        Self { instant, unix_secs }
    }

    /// Unix seconds at `now`.
    pub fn unix_at(&self, now: Instant) -> u64 {
        self.unix_secs
            .saturating_add(now.saturating_duration_since(self.instant).as_secs())
    }
}

/// The key nonces are authenticated with. `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSecret(Vec<u8>);

impl ServerSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// 256 random bits: right for a single collector whose nonces need
    /// not survive a restart.
    pub fn generate(ids: &mut IdGenerator) -> Self {
        Self(ids.hex(32).into_bytes())
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A stored H(username:realm:password) for one hash function, so a store
/// need not keep plain passwords. `Debug` hides the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    pub hash: HashFunction,
    hex: String,
}

impl Ha1 {
    /// From a stored hex string (case-insensitive).
    pub fn new(hash: HashFunction, hex: impl Into<String>) -> Self {
        Self {
            hash,
            hex: hex.into().to_ascii_lowercase(),
        }
    }

    pub fn compute(hash: HashFunction, username: &str, realm: &str, password: &Password) -> Self {
        Self {
            hash,
            hex: hash::base_ha1(hash, username, realm, password.expose()),
        }
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ha1({:?}, ***)", self.hash)
    }
}

/// What a credential store knows about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSecret {
    Password(Password),
    /// Pre-hashed secrets, one per hash function the user may use.
    Ha1(Vec<Ha1>),
}

impl StoredSecret {
    fn base_ha1(&self, hash: HashFunction, username: &str, realm: &str) -> Option<String> {
        match self {
            StoredSecret::Password(p) => Some(hash::base_ha1(hash, username, realm, p.expose())),
            StoredSecret::Ha1(list) => list.iter().find(|h| h.hash == hash).map(|h| h.hex.clone()),
        }
    }
}

/// Where the server looks users up.
pub trait CredentialStore {
    fn lookup(&self, username: &str, realm: &str) -> Option<StoredSecret>;
}

impl<T: CredentialStore + ?Sized> CredentialStore for Arc<T> {
    fn lookup(&self, username: &str, realm: &str) -> Option<StoredSecret> {
        (**self).lookup(username, realm)
    }
}

impl<T: CredentialStore + ?Sized> CredentialStore for &T {
    fn lookup(&self, username: &str, realm: &str) -> Option<StoredSecret> {
        (**self).lookup(username, realm)
    }
}

/// A credential store in memory: users valid in one realm or in any.
#[derive(Debug, Default, Clone)]
pub struct InMemoryCredentials {
    users: HashMap<(String, Option<String>), StoredSecret>,
}

impl InMemoryCredentials {
    pub fn new() -> Self {
        Self::default()
    }

    /// A user valid in every realm.
    pub fn insert_password(&mut self, username: impl Into<String>, password: Password) {
        self.users
            .insert((username.into(), None), StoredSecret::Password(password));
    }

    pub fn insert_for_realm(
        &mut self,
        username: impl Into<String>,
        realm: impl Into<String>,
        secret: StoredSecret,
    ) {
        self.users
            .insert((username.into(), Some(realm.into())), secret);
    }

    pub fn remove(&mut self, username: &str) {
        self.users.retain(|(u, _), _| u != username);
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl CredentialStore for InMemoryCredentials {
    fn lookup(&self, username: &str, realm: &str) -> Option<StoredSecret> {
        self.users
            .get(&(username.to_string(), Some(realm.to_string())))
            .or_else(|| self.users.get(&(username.to_string(), None)))
            .cloned()
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub realm: String,
    pub secret: ServerSecret,
    /// How long a nonce is accepted; after that the client is told
    /// `stale=true` and re-authenticates without a new password.
    pub nonce_lifetime: Duration,
    /// Offered algorithms, most preferred first: one challenge header
    /// each, in this order (RFC 8760 2.3).
    pub algorithms: Vec<Algorithm>,
    /// Bound on nonces whose `nc` values are remembered.
    pub max_tracked_nonces: usize,
}

impl ServerConfig {
    /// Defaults: nonces live 300 s (Kamailio's default too), SHA-256
    /// offered before MD5 (RFC 8760 2.3), 65,536 tracked nonces.
    pub fn new(realm: impl Into<String>, secret: ServerSecret) -> Self {
        Self {
            realm: realm.into(),
            secret,
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::SHA256, Algorithm::MD5],
            max_tracked_nonces: 65_536,
        }
    }
}

/// Who passed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub username: String,
    pub realm: String,
}

/// Why a request was not authenticated. [`stale`](Self::stale) and
/// [`is_bad_request`](Self::is_bad_request) say how to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no credentials for realm {0:?}")]
    NoCredentials(String),
    #[error("malformed credentials: {0}")]
    Malformed(DigestError),
    #[error("credentials without qop (RFC 8760 requires it)")]
    QopMissing,
    #[error("digest uri {uri:?} does not match the Request-URI {request_uri:?}")]
    UriMismatch { uri: String, request_uri: String },
    #[error("algorithm {0} is not offered")]
    UnsupportedAlgorithm(Algorithm),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("wrong password for user {0:?}")]
    WrongResponse(String),
    #[error("nonce was not issued with this server's secret")]
    ForeignNonce,
    #[error("nonce expired")]
    StaleNonce,
    #[error("nc {0:#x} already used with this nonce")]
    Replay(u32),
}

impl AuthFailure {
    /// The digest was right but the nonce (or its nc) cannot be used: the
    /// new challenge carries `stale=true` (RFC 7616 3.3) so the client
    /// retries without treating it as a wrong password.
    pub fn stale(&self) -> bool {
        matches!(
            self,
            AuthFailure::ForeignNonce | AuthFailure::StaleNonce | AuthFailure::Replay(_)
        )
    }

    /// Answer 400 rather than a new challenge (RFC 2617 3.2.2.5 for the
    /// uri mismatch; broken syntax likewise).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            AuthFailure::Malformed(_) | AuthFailure::QopMissing | AuthFailure::UriMismatch { .. }
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct NcWindow {
    highest: u32,
    /// Bit i set: `highest - i` was seen.
    seen: u64,
    issued_unix: u64,
}

impl NcWindow {
    /// Records `nc`; false if it was used before or is too old to tell.
    fn accept(&mut self, nc: u32) -> bool {
        if nc == 0 {
            return false;
        }
        if nc > self.highest {
            let shift = nc - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = nc;
            return true;
        }
        let back = self.highest - nc;
        if back >= NC_WINDOW {
            return false;
        }
        let bit = 1u64 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// Issues challenges and verifies credentials for one realm.
#[derive(Debug)]
pub struct DigestServer {
    config: ServerConfig,
    clock: WallClock,
    mac: HmacSha256,
    opaque: String,
    windows: HashMap<String, NcWindow>,
}

impl DigestServer {
    pub fn new(config: ServerConfig, clock: WallClock) -> Result<Self, DigestError> {
        if config.secret.0.len() < 16 {
            return Err(DigestError::WeakSecret);
        }
        // HMAC takes keys of any length; the error arm is unreachable but
        // kept typed rather than unwrapped.
        let mac =
            HmacSha256::new_from_slice(&config.secret.0).map_err(|_| DigestError::WeakSecret)?;
        let mut m = mac.clone();
        m.update(b"opaque:");
        m.update(config.realm.as_bytes());
        let opaque = to_hex(&m.finalize().into_bytes()[..8]);
        Ok(Self {
            config,
            clock,
            mac,
            opaque,
            windows: HashMap::new(),
        })
    }

    #[cfg(test)]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn nonce_mac(&self, ts_hex: &str, salt: &str) -> String {
        let mut m = self.mac.clone();
        m.update(b"nonce:");
        m.update(ts_hex.as_bytes());
        m.update(salt.as_bytes());
        m.update(b":");
        m.update(self.config.realm.as_bytes());
        to_hex(&m.finalize().into_bytes()[..16])
    }

    /// A fresh nonce: issue time, random salt (so two clients never share
    /// a nonce and its nc space), HMAC over both and the realm.
    pub fn new_nonce(&self, now: Instant, ids: &mut IdGenerator) -> String {
        let ts_hex = format!("{:016x}", self.clock.unix_at(now));
        let salt = ids.hex(8);
        let mac = self.nonce_mac(&ts_hex, &salt);
        format!("{ts_hex}{salt}{mac}")
    }

    /// The issue time of a nonce this secret made, or `None`.
    fn nonce_issued(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_LEN || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let (ts_hex, rest) = nonce.split_at(16);
        let (salt, mac) = rest.split_at(16);
        if !hash::ct_eq(
            self.nonce_mac(ts_hex, salt).as_bytes(),
            mac.to_ascii_lowercase().as_bytes(),
        ) {
            return None;
        }
        u64::from_str_radix(ts_hex, 16).ok()
    }

    /// Challenge headers, one per configured algorithm in preference
    /// order, sharing one fresh nonce (RFC 8760 2.3).
    pub fn challenges(
        &self,
        kind: ChallengeKind,
        stale: bool,
        now: Instant,
        ids: &mut IdGenerator,
    ) -> Vec<rsip::Header> {
        let nonce = self.new_nonce(now, ids);
        self.config
            .algorithms
            .iter()
            .map(|&algorithm| {
                Challenge {
                    kind,
                    realm: self.config.realm.clone(),
                    nonce: nonce.clone(),
                    opaque: Some(self.opaque.clone()),
                    algorithm,
                    qop: vec![Qop::Auth],
                    stale,
                    domain: None,
                }
                .to_header()
            })
            .collect()
    }

    /// Checks the request's credentials of `kind` for this realm.
    pub fn verify(
        &mut self,
        request: &rsip::Request,
        kind: ChallengeKind,
        store: &dyn CredentialStore,
        now: Instant,
    ) -> Result<AuthenticatedUser, AuthFailure> {
        let mut first_error = None;
        let mut mine = None;
        for parsed in DigestCredentials::parse_all(kind, &request.headers) {
            match parsed {
                Ok(c) if wire(&c.realm) == wire(&self.config.realm) => {
                    mine = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let creds = match (mine, first_error) {
            (Some(c), _) => c,
            (None, Some(e)) => return Err(AuthFailure::Malformed(e)),
            (None, None) => return Err(AuthFailure::NoCredentials(self.config.realm.clone())),
        };
        let (Some(qop), Some(nc), Some(cnonce)) = (creds.qop, creds.nc, creds.cnonce.as_deref())
        else {
            return Err(AuthFailure::QopMissing);
        };
        let request_uri = request.uri.to_string();
        if !same_uri(&creds.uri, &request_uri) {
            return Err(AuthFailure::UriMismatch {
                uri: creds.uri,
                request_uri,
            });
        }
        if !self.config.algorithms.contains(&creds.algorithm) {
            return Err(AuthFailure::UnsupportedAlgorithm(creds.algorithm));
        }
        // Hash the strings as the client saw them on the wire, where the
        // stack's internal IPv6 names are brackets (crate::sip::ipv6).
        let (username, realm) = (wire(&creds.username), wire(&self.config.realm));
        let (nonce_w, uri_w, cnonce_w) = (wire(&creds.nonce), wire(&creds.uri), wire(cnonce));
        let Some(secret) = store.lookup(&username, &realm) else {
            return Err(AuthFailure::UnknownUser(creds.username));
        };
        let hash_fn = creds.algorithm.hash;
        let Some(base) = secret.base_ha1(hash_fn, &username, &realm) else {
            return Err(AuthFailure::UnsupportedAlgorithm(creds.algorithm));
        };
        let ha1 = hash::effective_ha1(creds.algorithm, &base, &nonce_w, Some(&cnonce_w));
        let method = request.method.to_string();
        let expected = hash::response(
            hash_fn,
            &ha1,
            &ResponseInput {
                method: &method,
                uri: &uri_w,
                nonce: &nonce_w,
                qop: Some(qop),
                nc,
                cnonce: &cnonce_w,
                body: &request.body,
            },
        );
        if !hash::ct_eq(
            expected.as_bytes(),
            creds.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(AuthFailure::WrongResponse(creds.username));
        }
        // The password is right from here on; what remains are reasons for
        // stale=true (RFC 7616 3.3).
        let Some(issued) = self.nonce_issued(&creds.nonce) else {
            return Err(AuthFailure::ForeignNonce);
        };
        if creds.opaque.as_deref() != Some(self.opaque.as_str()) {
            return Err(AuthFailure::ForeignNonce);
        }
        let now_unix = self.clock.unix_at(now);
        let lifetime = self.config.nonce_lifetime.as_secs();
        if issued > now_unix.saturating_add(CLOCK_SKEW_SECS) {
            return Err(AuthFailure::ForeignNonce);
        }
        if now_unix.saturating_sub(issued) > lifetime {
            return Err(AuthFailure::StaleNonce);
        }
        if !self.accept_nc(&creds.nonce, nc, issued, now_unix) {
            return Err(AuthFailure::Replay(nc));
        }
        Ok(AuthenticatedUser {
            username,
            realm: self.config.realm.clone(),
        })
    }

    fn accept_nc(&mut self, nonce: &str, nc: u32, issued: u64, now_unix: u64) -> bool {
        if let Some(w) = self.windows.get_mut(nonce) {
            return w.accept(nc);
        }
        if self.windows.len() >= self.config.max_tracked_nonces {
            let lifetime = self.config.nonce_lifetime.as_secs();
            self.windows
                .retain(|_, w| now_unix.saturating_sub(w.issued_unix) <= lifetime);
            // Still full of live nonces: forget the oldest. Its nc values
            // could then be replayed until it expires; the bound on memory
            // is worth more (only authenticated users create entries).
            if self.windows.len() >= self.config.max_tracked_nonces
                && let Some(oldest) = self
                    .windows
                    .iter()
                    .min_by_key(|(_, w)| w.issued_unix)
                    .map(|(k, _)| k.clone())
            {
                self.windows.remove(&oldest);
            }
        }
        let mut w = NcWindow {
            highest: 0,
            seen: 0,
            issued_unix: issued,
        };
        let ok = w.accept(nc);
        if ok && self.config.max_tracked_nonces > 0 {
            self.windows.insert(nonce.to_string(), w);
        }
        ok
    }

    /// Number of nonces whose nc values are tracked (for tests and stats).
    #[cfg(test)]
    pub fn tracked_nonces(&self) -> usize {
        self.windows.len()
    }
}

/// The digest `uri` must name the Request-URI (RFC 7616 3.4.6); compared
/// case-insensitively and after a parse round trip, so that rsip's
/// re-serialisation (e.g. `transport=TCP`) is not taken for a mismatch.
pub(super) fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    use crate::sip::ipv6::to_internal;
    let (digest_uri, request_uri) = (to_internal(digest_uri), to_internal(request_uri));
    if digest_uri.eq_ignore_ascii_case(&request_uri) {
        return true;
    }
    match rsip::Uri::try_from(digest_uri.as_ref()) {
        Ok(u) => u.to_string().eq_ignore_ascii_case(&request_uri),
        Err(_) => false,
    }
}
