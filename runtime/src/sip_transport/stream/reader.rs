//! A connection's reader: bytes in, framed (RFC 3261 18.3), messages on
//! to the consumer, keep-alives answered (RFC 5626 3.5.1), and the close
//! when the peer goes, breaks framing or stays idle.

use super::{Conn, Reader, Shared};
use crate::sip_transport::{Incoming, bump};
use sipsensor_protocol::{FrameError, KEEPALIVE_PONG, StreamFrame, StreamFramer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Read size per syscall; the framer holds at most two messages' worth.
const READ_CHUNK: usize = 16 * 1024;

/// Why a connection's reader stopped.
enum Closed {
    Eof,
    Idle,
    Failed,
    ConsumerGone,
}

pub(super) async fn read_loop(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    mut reader: Reader,
    peer: SocketAddr,
) {
    let mut framer = StreamFramer::new(shared.max_message);
    let mut buf = vec![0u8; READ_CHUNK];
    let closed = loop {
        let deadline = conn.idle_deadline(shared.idle_timeout);
        let n = match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            // Writes count as activity too: look again before closing.
            Err(_) if conn.idle_deadline(shared.idle_timeout) <= Instant::now() => {
                break Closed::Idle;
            }
            Err(_) => continue,
            Ok(Ok(0)) => break Closed::Eof,
            Ok(Err(_)) => break Closed::Failed,
            Ok(Ok(n)) => n,
        };
        // Bytes alone do not count as activity: a peer trickling a message
        // that never completes is idle (only frames touch the connection).
        if conn.pong_expected.swap(false, Ordering::Relaxed) {
            framer.expect_pong();
        }
        if let Err(error) = framer.push(&buf[..n]) {
            break reject(&shared, peer, error).await;
        }
        if let Some(closed) = deliver(&shared, &conn, &mut framer, peer).await {
            break closed;
        }
    };
    if matches!(closed, Closed::Idle) {
        bump(&shared.counters.closed_idle);
        let transport = shared.transport;
        let idle = shared.idle_timeout;
        shared.logs.idle.say(std::time::Instant::now(), |unsaid| {
            tracing::info!(
                "SIP/{transport}: closed the connection with {peer}: no message for {idle:?} \
                 ({unsaid} more idle closes not logged)"
            );
        });
    }
    shared.remove(peer, conn.id);
    // Close our side too; the peer may already be gone.
    let _ = conn.writer.lock().await.shutdown().await;
}

/// Hand every complete frame on; `Some` when the connection must close.
async fn deliver(
    shared: &Shared,
    conn: &Conn,
    framer: &mut StreamFramer,
    peer: SocketAddr,
) -> Option<Closed> {
    while let Some(frame) = framer.next_frame() {
        if frame.is_ok() {
            conn.touch();
        }
        match frame {
            Ok(StreamFrame::Message(data)) => {
                let incoming = Incoming::Message {
                    data,
                    source: peer,
                    transport: shared.transport,
                };
                if shared.tx.send(incoming).await.is_err() {
                    return Some(Closed::ConsumerGone);
                }
            }
            // RFC 5626 3.5.1: answer a double-CRLF ping with one CRLF.
            Ok(StreamFrame::Ping) => {
                if conn.write(KEEPALIVE_PONG).await.is_err() {
                    return Some(Closed::Failed);
                }
                bump(&shared.counters.pings_answered);
            }
            Ok(StreamFrame::Pong) => bump(&shared.counters.pongs),
            Err(error) => return Some(reject(shared, peer, error).await),
        }
    }
    None
}

/// Report a framing failure; the connection then closes (RFC 3261 18.3:
/// the stream cannot be resynchronised).
async fn reject(shared: &Shared, peer: SocketAddr, error: FrameError) -> Closed {
    bump(&shared.counters.stream_errors);
    let incoming = Incoming::Rejected {
        source: peer,
        transport: shared.transport,
        error,
    };
    match shared.tx.send(incoming).await {
        Ok(()) => Closed::Failed,
        Err(_) => Closed::ConsumerGone,
    }
}
