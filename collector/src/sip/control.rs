//! The control socket: `sipsensor-collector call` and `set-rate` ask the
//! running collector over a Unix socket (`sip.control_socket`).
//!
//! Why a Unix socket and not the HTTP API: calling a sensor or changing its
//! rate acts on devices, while the HTTP API only reads, may listen on a
//! network for the page, and its one token is shared by every viewer. A
//! socket file is guarded by file permissions (mode 0660: root and the
//! collector's group), like the agent's status socket.
//!
//! Protocol: one JSON request line, one JSON reply line, then the server
//! closes the connection.
//!
//! ```text
//! → {"call":{"aor":"sip:sensor-0001@example.net","stream":null}}
//! ← {"ok":true,"message":"streaming: 3 channels at 10 Hz","session":"..."}
//! → {"set_rate":{"sensor":"sensor-0001","hz":5.0}}
//! ← {"ok":true,"message":"sip:sensor-0001@example.net now at 5 Hz (cfg 2)"}
//! ```

use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a client waits for the collector (a call may ring a while).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

/// A channel the collector asks a never-seen sensor for: `name:unit:scale`
/// (scale a decimal exponent, docs/protocol.md 2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantedChannel {
    pub name: String,
    pub unit: String,
    pub scale: i8,
}

impl std::str::FromStr for WantedChannel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut it = s.split(':');
        match (it.next(), it.next(), it.next(), it.next()) {
            (Some(n), Some(u), Some(sc), None) if !n.is_empty() && !u.is_empty() => {
                Ok(WantedChannel {
                    name: n.to_string(),
                    unit: u.to_string(),
                    scale: sc
                        .parse()
                        .map_err(|_| format!("{s:?}: scale must be a decimal exponent"))?,
                })
            }
            _ => Err(format!("{s:?} is not name:unit:scale")),
        }
    }
}

/// What to ask a sensor for when the collector has not seen its offer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct WantedStream {
    /// The sensor's RTP clock (its highest sample rate), Hz.
    pub clock_hz: u32,
    /// Sample rate wanted; default the clock rate.
    #[serde(default)]
    pub rate_hz: Option<f64>,
    /// Sampling instants per packet; default 1.
    #[serde(default)]
    pub samples_per_packet: Option<u8>,
    #[serde(default)]
    pub channels: Vec<WantedChannel>,
    #[serde(default)]
    pub inputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    /// The sensor's address of record.
    pub aor: String,
    /// Needed only for a sensor that never called this collector.
    #[serde(default)]
    pub stream: Option<WantedStream>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    Call(CallRequest),
    SetRate {
        sensor: String,
        hz: f64,
    },
    Sessions,
    /// `update rollout/status/halt` (docs/protocol.md 12.7).
    Update(crate::update::rollout::request::UpdateRequest),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl Reply {
    pub fn ok(message: impl Into<String>) -> Self {
        Reply {
            ok: true,
            message: message.into(),
            detail: None,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Reply {
            ok: false,
            message: message.into(),
            detail: None,
        }
    }
}

/// A request and where its reply goes.
pub type Job = (Request, oneshot::Sender<Reply>);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on control socket {path}: {source}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot reach the collector at {path}: {source} (is it running, with this control_socket?)"
    )]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "control socket {path}: a {kind} is there, not a socket; it is left alone \
         (choose another sip.control_socket, or move the file away)"
    )]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("control socket {path}: unreadable reply: {message}")]
    Reply { path: PathBuf, message: String },
}

/// What is at the control socket's path before the collector listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    /// Nothing: the collector creates the socket.
    Free,
    /// A socket nobody answers on, left over from a crash: replaced.
    Stale,
    /// A socket another process answers on (a running collector).
    Live,
}

/// Looks at `path` without following a symbolic link. Anything there that
/// is not a socket is refused, never deleted: a mistyped `control_socket`
/// once named a live database, which the collector then removed.
pub fn inspect(path: &Path) -> Result<PathState, ControlError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PathState::Free),
        Err(source) => {
            return Err(ControlError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let ty = meta.file_type();
    if !ty.is_socket() {
        let kind = if ty.is_file() {
            "regular file"
        } else if ty.is_dir() {
            "directory"
        } else if ty.is_symlink() {
            "symbolic link"
        } else {
            "special file"
        };
        return Err(ControlError::NotASocket {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(if UnixStream::connect(path).is_ok() {
        PathState::Live
    } else {
        PathState::Stale
    })
}

/// Removes the socket at `path` if a socket is still there (at shutdown:
/// whatever replaced it in the meantime is left alone).
pub fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

/// Listens on `path` (replacing a stale socket, refusing anything else)
/// and hands each request to `jobs`.
pub fn serve(
    path: &Path,
    jobs: mpsc::Sender<Job>,
) -> Result<tokio::task::JoinHandle<()>, ControlError> {
    let listen_err = |source| ControlError::Listen {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }
    match inspect(path)? {
        PathState::Free => {}
        PathState::Live => {
            return Err(listen_err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another collector answers on it",
            )));
        }
        PathState::Stale => std::fs::remove_file(path).map_err(listen_err)?,
    }
    let listener = UnixListener::bind(path).map_err(listen_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(listen_err)?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let jobs = jobs.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read).take(MAX_REQUEST as u64);
                let reply = match reader.read_line(&mut line).await {
                    Ok(_) => match serde_json::from_str::<Request>(line.trim()) {
                        Ok(req) => {
                            let (tx, rx) = oneshot::channel();
                            if jobs.send((req, tx)).await.is_err() {
                                Reply::error("the collector is shutting down")
                            } else {
                                rx.await.unwrap_or_else(|_| {
                                    Reply::error("the collector is shutting down")
                                })
                            }
                        }
                        Err(e) => Reply::error(format!("bad request: {e}")),
                    },
                    Err(e) => Reply::error(format!("bad request: {e}")),
                };
                let mut text = serde_json::to_string(&reply).unwrap_or_default();
                text.push('\n');
                let _ = write.write_all(text.as_bytes()).await;
            });
        }
    }))
}

/// Sends one request to a running collector and waits for the reply
/// (blocking; for the command line).
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Reply, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut s = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut text = serde_json::to_string(req).map_err(|e| ControlError::Reply {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    s.write_all(text.as_bytes()).map_err(io)?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).map_err(io)?;
    serde_json::from_str(line.trim()).map_err(|e| ControlError::Reply {
        path: path.to_path_buf(),
        message: format!("{e}: {line:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let r = Request::SetRate {
            sensor: "s1".into(),
            hz: 5.0,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"set_rate":{"sensor":"s1","hz":5.0}}"#
        );
        let c: Request = serde_json::from_str(r#"{"call":{"aor":"sip:s@example.net"}}"#).unwrap();
        assert_eq!(
            c,
            Request::Call(CallRequest {
                aor: "sip:s@example.net".into(),
                stream: None
            })
        );
        assert_eq!(
            "temperature:Cel:-2".parse::<WantedChannel>().unwrap(),
            WantedChannel {
                name: "temperature".into(),
                unit: "Cel".into(),
                scale: -2
            }
        );
        assert!("x:Cel".parse::<WantedChannel>().is_err());
        assert!("x:Cel:big".parse::<WantedChannel>().is_err());
    }

    #[tokio::test]
    async fn a_request_gets_its_reply_and_garbage_gets_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/c.sock");
        let (tx, mut rx) = mpsc::channel::<Job>(4);
        let server = serve(&path, tx).unwrap();
        tokio::spawn(async move {
            while let Some((req, reply)) = rx.recv().await {
                let _ = reply.send(Reply::ok(format!("{req:?}")));
            }
        });
        let p = path.clone();
        let reply = tokio::task::spawn_blocking(move || {
            request(&p, &Request::Sessions, Duration::from_secs(5))
        })
        .await
        .unwrap()
        .unwrap();
        assert!(reply.ok && reply.message == "Sessions", "{reply:?}");
        let p = path.clone();
        let bad = tokio::task::spawn_blocking(move || {
            let mut s = UnixStream::connect(&p).unwrap();
            s.write_all(b"{nonsense}\n").unwrap();
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(bad.contains("bad request"), "{bad}");
        // A second collector on the same socket is refused.
        let (tx2, _rx2) = mpsc::channel::<Job>(1);
        assert!(serve(&path, tx2).is_err());
        server.abort();
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_socket_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.db");
        std::fs::write(&file, b"SQLite format 3\0 precious rows").unwrap();
        let (tx, _rx) = mpsc::channel::<Job>(1);
        let e = serve(&file, tx.clone()).unwrap_err().to_string();
        assert!(e.contains("a regular file is there, not a socket"), "{e}");
        assert_eq!(
            std::fs::read(&file).unwrap(),
            b"SQLite format 3\0 precious rows"
        );
        let link = dir.path().join("link.sock");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let e = serve(&link, tx.clone()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(std::fs::symlink_metadata(&link).is_ok());
        let sub = dir.path().join("subdir");
        std::fs::create_dir(&sub).unwrap();
        let e = serve(&sub, tx.clone()).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        assert!(sub.is_dir());
        // Shutdown's clean-up leaves a file alone too.
        remove_socket(&file);
        assert!(file.exists());
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        // A listener closed without unlinking: what a crash leaves.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert_eq!(inspect(&path).unwrap(), PathState::Stale);
        let (tx, _rx) = mpsc::channel::<Job>(1);
        let server = serve(&path, tx).unwrap();
        assert_eq!(inspect(&path).unwrap(), PathState::Live);
        server.abort();
        remove_socket(&path);
        assert_eq!(inspect(&path).unwrap(), PathState::Free);
    }
}
