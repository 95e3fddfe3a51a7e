//! Who may use the HTTP side: the Host header a request names (against DNS
//! rebinding) and, whenever the server listens beyond this machine, a
//! token (bearer, or the password of HTTP basic auth, so a browser can
//! open the page after its log-in prompt).
//!
//! The decision ([`Access::check`]) is a pure function of the request's
//! head; [`guard`] is the axum middleware that applies it.

use crate::config::HttpConfig;
use crate::ratelimit::RateLimit;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shortest token accepted: 128 bits as hex, so it cannot be guessed.
pub const MIN_TOKEN_LEN: usize = 32;
/// At most one log line per this long about refused requests.
pub const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);
/// The one path every client may read (load balancers, systemd, Docker).
pub const UNAUTHENTICATED_PATH: &str = "/healthz";

/// The shared secret; never printed.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Compares in time independent of where the first difference is, so
    /// the answer's timing does not reveal a correct prefix.
    fn matches(&self, offered: &[u8]) -> bool {
        let ours = self.0.as_bytes();
        ours.len() == offered.len()
            && ours
                .iter()
                .zip(offered)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("http.token_file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "http.token_file {path}: the token must be one line of at least {MIN_TOKEN_LEN} \
         characters without spaces (e.g. `openssl rand -hex 16`)"
    )]
    BadToken { path: PathBuf },
    #[error(
        "http.bind {bind} is reachable from other machines: give http.token_file (or set \
         http.allow_unauthenticated: true to serve everyone)"
    )]
    NoToken { bind: std::net::SocketAddr },
}

/// What a request must show.
#[derive(Debug, Clone)]
pub struct Access {
    /// Host names accepted besides IP literals and `localhost`, lowercase.
    names: Vec<String>,
    token: Option<Token>,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP/1.1 without Host (RFC 9112 3.2: 400).
    NoHost,
    /// A name this server does not answer for: 421 (RFC 9110 15.5.20).
    WrongHost,
    /// No token, or a wrong one: 401.
    Unauthorized,
}

impl Refusal {
    /// The `reason` label of the refusal counter.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NoHost => "http_no_host",
            Refusal::WrongHost => "http_wrong_host",
            Refusal::Unauthorized => "http_unauthorized",
        }
    }
}

impl Access {
    /// Only loopback clients, no token: what tests and the default bind use.
    pub fn open() -> Self {
        Access {
            names: Vec::new(),
            token: None,
        }
    }

    /// Reads the token file the config names. Refuses a bind beyond
    /// loopback without a token unless `allow_unauthenticated`; the
    /// strings returned are warnings for the log.
    pub fn from_config(c: &HttpConfig) -> Result<(Access, Vec<String>), AccessError> {
        let mut warnings = Vec::new();
        let token = match &c.token_file {
            Some(path) => {
                let (token, warning) = read_token(path)?;
                warnings.extend(warning);
                Some(token)
            }
            None if c.bind.ip().is_loopback() => None,
            None if c.allow_unauthenticated => {
                warnings.push(format!(
                    "http.bind {} is reachable from other machines and \
                     http.allow_unauthenticated is set: anyone who reaches it reads every \
                     sensor's data",
                    c.bind
                ));
                None
            }
            None => return Err(AccessError::NoToken { bind: c.bind }),
        };
        let names = c.hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        Ok((Access { names, token }, warnings))
    }

    /// Decides on a request's path, version and headers.
    pub fn check(&self, path: &str, version: Version, headers: &HeaderMap) -> Result<(), Refusal> {
        match headers.get(header::HOST) {
            None if version >= Version::HTTP_11 => return Err(Refusal::NoHost),
            None => {}
            Some(h) => {
                let host = h.to_str().map_err(|_| Refusal::WrongHost)?;
                if !self.host_allowed(host) {
                    return Err(Refusal::WrongHost);
                }
            }
        }
        match &self.token {
            Some(token) if path != UNAUTHENTICATED_PATH => {
                let offered = headers
                    .get(header::AUTHORIZATION)
                    .and_then(offered_secret)
                    .ok_or(Refusal::Unauthorized)?;
                if token.matches(&offered) {
                    Ok(())
                } else {
                    Err(Refusal::Unauthorized)
                }
            }
            _ => Ok(()),
        }
    }

    /// An IP literal cannot be rebound (the browser's origin is the address
    /// itself); a name must be `localhost` or one of `http.hosts`.
    fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host);
        if name.parse::<IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost" || self.names.contains(&name)
    }
}

/// `host[:port]` or `[v6][:port]` to the host alone.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The secret in `Authorization`: a bearer token (RFC 6750 2.1), or the
/// password of basic auth with any user name (RFC 7617 2).
fn offered_secret(value: &HeaderValue) -> Option<Vec<u8>> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let pair = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = pair.iter().position(|&b| b == b':')?;
        Some(pair[colon + 1..].to_vec())
    } else {
        None
    }
}

fn read_token(path: &Path) -> Result<(Token, Option<String>), AccessError> {
    use std::os::unix::fs::MetadataExt;
    let read = |source| AccessError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    // A token is one short line; refuse to slurp a device or a huge file.
    if !meta.is_file() || meta.len() > 4096 {
        return Err(AccessError::BadToken {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let token = text.trim();
    if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
        return Err(AccessError::BadToken {
            path: path.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o777;
    let warning = (mode & 0o007 != 0).then(|| {
        format!(
            "http.token_file {} has mode {mode:03o}: every local user can read the token; \
             chmod 600 (or 640 for a group) it",
            path.display()
        )
    });
    Ok((Token(token.to_owned()), warning))
}

/// What [`guard`] needs: the rules, where refusals are counted and the
/// limit on the lines that log them.
#[derive(Debug, Clone)]
pub struct Guard {
    pub access: Arc<Access>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub log_limit: Arc<std::sync::Mutex<RateLimit>>,
}

impl Guard {
    pub fn new(access: Arc<Access>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Guard {
            access,
            metrics,
            log_limit: Arc::new(std::sync::Mutex::new(RateLimit::new(LOG_INTERVAL))),
        }
    }
}

/// Refuses what [`Access::check`] refuses, before any handler runs.
pub async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let verdict = g
        .access
        .check(req.uri().path(), req.version(), req.headers());
    let refusal = match verdict {
        Ok(()) => return next.run(req).await,
        Err(r) => r,
    };
    g.metrics
        .packets_rejected
        .get_or_create(&[("reason", refusal.reason())])
        .inc();
    let allowed = g
        .log_limit
        .lock()
        .map(|mut l| l.allow(tokio::time::Instant::now()))
        .unwrap_or(None);
    if let Some(suppressed) = allowed {
        let source = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "?".to_owned(), |c| c.0.to_string());
        tracing::warn!(
            "HTTP request refused ({}) from {source} for {} ({suppressed} more refusals not logged)",
            refusal.reason(),
            req.uri().path(),
        );
    }
    match refusal {
        Refusal::NoHost => (StatusCode::BAD_REQUEST, "Host header required\n").into_response(),
        Refusal::WrongHost => (
            StatusCode::MISDIRECTED_REQUEST,
            "this server does not answer for that Host (add it to http.hosts)\n",
        )
            .into_response(),
        Refusal::Unauthorized => (
            StatusCode::UNAUTHORIZED,
            // Basic, so a browser asks for it; the user name is ignored.
            [(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"sipsensor-collector\", charset=\"UTF-8\"",
            )],
            "a token is required (Authorization: Bearer TOKEN, or basic auth with the token \
             as password)\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests;
