//! The daemon's status socket: one request line in, one JSON line out.
//!
//! Requests: `status` (the snapshot). The socket is local and the reply
//! holds no secrets, so any local user may ask.

use super::{Status, StatusHub};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

/// Longest request line read; anything longer is refused.
const MAX_REQUEST: u64 = 256;
/// A client that connects and says nothing is dropped after this.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// The reply to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    Status(Box<Status>),
    Error(String),
}

/// A bound status socket; the file is removed on drop.
#[derive(Debug)]
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind `path`, replacing a stale socket left by a daemon that died (but
/// not a live one, and never a non-socket file).
pub fn bind(path: &Path) -> io::Result<StatusSocket> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another agent is running (it answers on {})",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    Ok(StatusSocket {
        listener,
        path: path.to_owned(),
    })
}

impl StatusSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answer clients until the task is dropped. Each client gets its own
    /// task, so a slow one delays nobody.
    pub async fn serve(self, hub: StatusHub) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &hub).await {
                            tracing::debug!("status client: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("status socket {}: accept failed: {e}", self.path.display());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(stream: UnixStream, hub: &StatusHub) -> io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r.take(MAX_REQUEST));
    tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    let reply = match line.trim() {
        "status" => Reply::Status(Box::new(hub.snapshot())),
        other => Reply::Error(format!(
            "unknown request `{}`; expected `status`",
            other.chars().take(40).collect::<String>()
        )),
    };
    let mut out = serde_json::to_vec(&reply).map_err(io::Error::other)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    w.shutdown().await
}
