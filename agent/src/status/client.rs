//! `sipsensor-agent status`: ask the running daemon over its socket.

use super::Status;
use super::server::Reply;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {path}: {source} (is `sipsensor-agent run` running?)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the agent: {0}")]
    Io(#[from] std::io::Error),
    #[error("the agent sent a reply this client does not understand: {0}")]
    Reply(#[from] serde_json::Error),
    #[error("the agent refused: {0}")]
    Refused(String),
    #[error("not registered after {waited:?} (state: {state})")]
    NotRegistered { waited: Duration, state: String },
}

/// One status request with `timeout` for each of connect, send, receive.
pub fn fetch(socket: &Path, timeout: Duration) -> Result<Status, ClientError> {
    let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    (&stream).write_all(b"status\n")?;
    let mut line = String::new();
    // The reply is one line; cap it so a wrong peer cannot make us
    // allocate without bound.
    BufReader::new(std::io::Read::take(&stream, 1 << 20)).read_line(&mut line)?;
    match serde_json::from_str::<Reply>(&line)? {
        Reply::Status(s) => Ok(*s),
        Reply::Error(e) => Err(ClientError::Refused(e)),
    }
}

/// Poll until the agent reports registered, for at most `wait` (the RAUC
/// health check marks a slot good only then). Polls every `every`.
pub fn wait_registered(
    socket: &Path,
    wait: Duration,
    every: Duration,
) -> Result<Status, ClientError> {
    let start = Instant::now();
    let mut last_state = "agent not reachable".to_owned();
    loop {
        match fetch(socket, every.max(Duration::from_millis(200))) {
            Ok(s) if s.state.is_registered() => return Ok(s),
            Ok(s) => last_state = s.state.as_str().to_owned(),
            Err(ClientError::Connect { .. }) => {}
            Err(e) => last_state = e.to_string(),
        }
        let waited = start.elapsed();
        if waited >= wait {
            return Err(ClientError::NotRegistered {
                waited,
                state: last_state,
            });
        }
        std::thread::sleep(every.min(wait - waited));
    }
}
