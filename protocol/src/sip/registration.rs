//! The registration client of RFC 3261 section 10.2, sans-I/O.
//!
//! [`RegistrationClient`] keeps one binding alive at a registrar: it
//! registers, answers Digest challenges, refreshes before expiry,
//! honours 423 Min-Expires and Retry-After, backs off with jitter on
//! failures, follows the public address that `received`/`rport` reveal
//! (RFC 3581) so a device behind NAT stays reachable, and unregisters on
//! [`stop`](RegistrationClient::stop).
//!
//! Drive it with `start`/`stop`/`handle_*(.., now)`, then drain
//! `poll_request`, `poll_event` and `poll_timeout`.

mod client;
pub mod policy;
mod request;
#[cfg(test)]
mod tests;

pub use client::{RegistrationClient, RegistrationState};

use crate::sip::LocalEndpoint;
use crate::sip::digest::{DigestError, Password};
use std::time::Duration;

/// Everything a registration needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationConfig {
    /// The registrar's Request-URI, e.g. `sip:example.com` (10.2: no user
    /// part).
    pub registrar: String,
    /// The address-of-record registered, e.g. `sip:s1@example.com`
    /// (From and To, 10.2).
    pub aor: String,
    pub username: String,
    pub password: Password,
    /// Send the password only to this realm; `None`: any realm that asks.
    pub realm: Option<String>,
    /// Requested binding lifetime in seconds (Expires / `expires`).
    pub expires: u32,
    /// Outbound proxy URI, put in a Route header (loose routing, `;lr`).
    pub outbound_proxy: Option<String>,
    /// Where this UA listens; its Via and first Contact.
    pub local: LocalEndpoint,
    /// The Contact's user part; defaults to the AOR's user.
    pub contact_user: Option<String>,
    /// Re-register with a Contact at the public address learnt from
    /// `received`/`rport` when it differs from the local one.
    pub follow_nat: bool,
    /// Back-off base and ceiling (RFC 5626 4.5 uses 30 s and 1800 s).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Retry-After values beyond this are cut to it, so a misconfigured
    /// registrar cannot park a device for days.
    pub max_retry_after: Duration,
    pub user_agent: Option<String>,
    /// Register a flow (RFC 5626 outbound): the registrar and the proxy
    /// send requests for us back over the connection the REGISTER came
    /// on. `None`: a plain RFC 3261 binding.
    pub outbound: Option<Outbound>,
}

/// The instance and registration ids of an RFC 5626 flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// `urn:uuid:...` (RFC 5626 4.1): the same for this device across
    /// restarts, so a new flow replaces the old binding instead of adding
    /// one.
    pub instance: String,
    /// Which of the device's flows this is (RFC 5626 4.2.1); 1 for the
    /// one flow to the one registrar.
    pub reg_id: u32,
}

impl Outbound {
    /// A stable `urn:uuid:` for this application on this machine from
    /// the machine id (`/etc/machine-id`, 32 hex digits), the way systemd's
    /// `sd_id128_get_machine_app_specific` does it: HMAC-SHA256 keyed with
    /// the machine id over an application id, shaped as a version 4 UUID
    /// (RFC 9562 5.4). The machine id itself stays private (machine-id(5)).
    pub fn instance_from_machine_id(machine_id: &str) -> Option<String> {
        use hmac::{Hmac, KeyInit, Mac};
        let machine_id = machine_id.trim();
        if machine_id.len() != 32 || !machine_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let key: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&machine_id[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        // A fixed id for "the sipsensor agent's SIP instance".
        const APP_ID: [u8; 16] = *b"sipsensor-sip-in";
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
        mac.update(&APP_ID);
        let digest = mac.finalize().into_bytes();
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Some(format!(
            "urn:uuid:{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ))
    }

    /// `;+sip.instance="<urn:uuid:...>";reg-id=N`, the Contact header
    /// parameters of RFC 5626 4.2.1.
    fn contact_params(&self) -> String {
        format!(
            ";+sip.instance=\"<{}>\";reg-id={}",
            self.instance, self.reg_id
        )
    }
}

impl RegistrationConfig {
    /// Defaults: 3600 s, follow NAT, back-off 30 s to 30 min, Retry-After
    /// at most 1 h.
    pub fn new(
        registrar: impl Into<String>,
        aor: impl Into<String>,
        username: impl Into<String>,
        password: Password,
        local: LocalEndpoint,
    ) -> Self {
        Self {
            registrar: registrar.into(),
            aor: aor.into(),
            username: username.into(),
            password,
            realm: None,
            expires: 3600,
            outbound_proxy: None,
            local,
            contact_user: None,
            follow_nat: true,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(1800),
            max_retry_after: Duration::from_secs(3600),
            user_agent: None,
            outbound: None,
        }
    }
}

/// Why a configuration or an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("bad registration config: {0}")]
    Config(#[from] ConfigError),
    #[error("response does not belong to the outstanding REGISTER ({0})")]
    UnexpectedResponse(Mismatch),
    #[error("no REGISTER is outstanding")]
    NothingOutstanding,
}

/// A refused registration setting: which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// "registrar", "aor", "outbound proxy", "expires" or "backoff".
    pub setting: &'static str,
    pub problem: ConfigProblem,
}

/// What is wrong with a registration setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    #[error(transparent)]
    Uri(#[from] crate::sip::uri::UriError),
    /// `rsip` 0.4 cannot hold the URI (see
    /// [`ipv6_to_wire`](crate::ipv6_to_wire)).
    #[error("{uri}: {source}")]
    NotForRsip { uri: String, source: rsip::Error },
    #[error("an address-of-record needs a user part")]
    AorWithoutUser,
    #[error("must be above 0")]
    ZeroExpires,
    #[error("base must be above 0 and at most max")]
    Backoff,
}

/// How a response fails to match the outstanding REGISTER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("CSeq: {0}")]
    BadCSeq(rsip::Error),
    #[error("CSeq {seq} {method}, Call-ID {call_id:?}")]
    NotOurs {
        seq: u32,
        method: rsip::Method,
        call_id: Option<String>,
    },
}

/// Why registering failed, in words fit for one log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    /// The registrar rejected our answer to its fresh challenge: wrong
    /// username or password. Not retried until new credentials are set.
    #[error("wrong username or password for realm {realm:?}")]
    WrongCredentials { realm: String },
    /// The challenge cannot be answered (algorithm, realm, syntax).
    #[error("cannot authenticate: {0}")]
    Authentication(DigestError),
    /// A final response other than 2xx/401/407 (or a 423 without a usable
    /// Min-Expires).
    #[error("registrar rejected REGISTER: {code} {reason}")]
    Rejected { code: u16, reason: String },
    /// Transaction timeout or transport error: no answer at all.
    #[error("registrar unreachable (timeout or transport error)")]
    Unreachable,
    /// A 200 that does not bind our Contact (expires 0).
    #[error("registrar answered 200 but did not bind our Contact")]
    NotBound,
    /// More challenges in a row than any sane registrar sends.
    #[error("registrar keeps challenging; giving up this attempt")]
    ChallengeLoop,
}

/// What happened, for the caller to log and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// Bound (or refreshed) for `expires`, as granted by the registrar's
    /// 200 (10.2.4), with this Contact URI (in its wire form, IPv6 in
    /// brackets, ready for a log line).
    Registered {
        expires: Duration,
        contact: String,
    },
    /// The binding was removed after `stop` (or there was none to
    /// remove).
    Unregistered,
    Failed {
        reason: FailureReason,
    },
    /// The next attempt is in `after`.
    Retrying {
        after: Duration,
    },
    /// The last granted binding lapsed without a successful refresh.
    Expired,
}
