//! The media engine: the receive thread ([`receive`]) and the
//! [`MediaHandle`] the SIP side talks to it through.

mod decrypt;
mod receive;
mod send;

use super::StreamSetup;
pub use super::acks::Declared;
use super::demux::{Full, StreamKey};
use super::mailbox::{Outbox, mailbox};
pub use super::silence::Silent;
use super::socket::bind_pair;
use super::stream::RxTotals;
use crate::config::MediaConfig;
use crate::metrics::Metrics;
use crate::storage::writer::WriterHandle;
use crate::storage::{SensorId, SessionId};
use receive::ReceiveThread;
use sipsensor_protocol::{Agreed, AgreedRecovery};
use sipsensor_runtime::socket_buffer::receive_buffer;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What the media engine tells the SIP side of its own accord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaNotice {
    /// Nothing authenticated came from the stream's source for
    /// `media.silence_timeout_s`: end its call.
    Silent(Silent),
    /// An acknowledged stream's agent declared a range expired or
    /// unsampled (docs/protocol.md 11.4): for the acknowledger to record.
    /// The rows received before it are with the writer already.
    Declared(Declared),
}

/// What a stream received, reported when it is removed.
pub type StreamSummary = RxTotals;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot bind the RTP/RTCP port pair at {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the receive thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Full(#[from] Full),
    #[error("SRTP: {0}")]
    Srtp(#[from] sipsensor_protocol::SrtpError),
    #[error("the media engine has stopped")]
    Stopped,
}

enum Command {
    Add {
        setup: Box<StreamSetup>,
        reply: oneshot::Sender<Result<StreamKey, MediaError>>,
    },
    Update {
        key: StreamKey,
        agreed: Box<Agreed>,
        recovery: Box<AgreedRecovery>,
        session: SessionId,
        reply: oneshot::Sender<bool>,
    },
    ExpectConfig {
        key: StreamKey,
        until: Instant,
    },
    ExpectSource {
        ip: IpAddr,
        until: Instant,
    },
    Remove {
        key: StreamKey,
        reply: oneshot::Sender<Option<StreamSummary>>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    /// Committed marks per sensor, from the acknowledger, read from
    /// storage by a query that began at the instant given.
    Marks(Vec<(SensorId, Option<i64>)>, std::time::Instant),
    Stop {
        reply: oneshot::Sender<()>,
    },
}

/// Cloneable access to the receive thread.
#[derive(Clone)]
pub struct MediaHandle {
    tx: Outbox<Command>,
    waker: Arc<UnixDatagram>,
    rtp_addr: SocketAddr,
}

impl std::fmt::Debug for MediaHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaHandle")
            .field("rtp_addr", &self.rtp_addr)
            .finish()
    }
}

impl MediaHandle {
    /// The RTP socket's address (RTCP is on the next port).
    pub fn rtp_addr(&self) -> SocketAddr {
        self.rtp_addr
    }

    fn send(&self, c: Command) -> bool {
        if self.tx.send(c).is_err() {
            return false;
        }
        // A full waker buffer means the thread is awake already.
        let _ = self.waker.send(&[1]);
        true
    }

    /// Starts receiving a stream; returns once packets are accepted.
    pub async fn add(&self, setup: StreamSetup) -> Result<StreamKey, MediaError> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Add {
            setup: Box::new(setup),
            reply,
        }) {
            return Err(MediaError::Stopped);
        }
        rx.await.map_err(|_| MediaError::Stopped)?
    }

    /// Installs a renegotiated description, what it agreed of
    /// docs/protocol.md section 11 (NACKs, the RTX and backfill sources,
    /// acknowledgement) and its storage record.
    pub async fn update(
        &self,
        key: StreamKey,
        agreed: Agreed,
        recovery: AgreedRecovery,
        session: SessionId,
    ) -> bool {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Update {
            key,
            agreed: Box::new(agreed),
            recovery: Box::new(recovery),
            session,
            reply,
        }) && rx.await.unwrap_or(false)
    }

    /// A re-INVITE is under way: keep packets of a new `cfg` until `until`.
    pub fn expect_config(&self, key: StreamKey, until: Instant) {
        self.send(Command::ExpectConfig { key, until });
    }

    /// A call to a sensor at `ip` is under way: keep its early packets.
    pub fn expect_source(&self, ip: IpAddr, until: Instant) {
        self.send(Command::ExpectSource { ip, until });
    }

    /// Ends a stream: its rows go to the writer, a BYE goes to the agent.
    pub async fn remove(&self, key: StreamKey) -> Option<StreamSummary> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Command::Remove { key, reply }) {
            return None;
        }
        rx.await.ok().flatten()
    }

    /// The store's committed marks (docs/protocol.md 11.4) of sensors with
    /// acknowledged streams; false once the engine has stopped.
    pub async fn marks(
        &self,
        marks: Vec<(SensorId, Option<i64>)>,
        asked: std::time::Instant,
    ) -> bool {
        self.send(Command::Marks(marks, asked))
    }

    /// Hands every row received so far to the writer.
    pub async fn flush(&self) {
        let (reply, rx) = oneshot::channel();
        if self.send(Command::Flush { reply }) {
            let _ = rx.await;
        }
    }
}

/// The receive thread and its handle.
#[derive(Debug)]
pub struct MediaEngine {
    handle: MediaHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    notices: Option<mpsc::UnboundedReceiver<MediaNotice>>,
}

impl MediaEngine {
    /// Binds the port pair and starts the thread. Must be called inside a
    /// tokio runtime (the thread hands rows to the async writer).
    pub fn start(
        config: &MediaConfig,
        advertise: IpAddr,
        writer: WriterHandle,
        metrics: Arc<Metrics>,
    ) -> Result<MediaEngine, MediaError> {
        let (rtp, rtcp) =
            bind_pair(config.rtp_bind, config.receive_buffer_bytes).map_err(|source| {
                MediaError::Bind {
                    addr: config.rtp_bind,
                    source,
                }
            })?;
        let bound = rtp.local_addr().map_err(|source| MediaError::Bind {
            addr: config.rtp_bind,
            source,
        })?;
        let granted = receive_buffer(&rtp);
        let (wake_tx, wake_rx) = UnixDatagram::pair().map_err(MediaError::Thread)?;
        wake_tx.set_nonblocking(true).map_err(MediaError::Thread)?;
        wake_rx.set_nonblocking(true).map_err(MediaError::Thread)?;
        let (tx, commands) = mailbox();
        let handle = MediaHandle {
            tx,
            waker: Arc::new(wake_tx),
            rtp_addr: SocketAddr::new(advertise, bound.port()),
        };
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let thread = ReceiveThread::new(
            (rtp, rtcp),
            wake_rx,
            commands,
            config,
            writer,
            metrics,
            notices_tx,
        );
        let priority = config.receive_priority.0;
        let joined = std::thread::Builder::new()
            .name("media-rx".into())
            .spawn(move || {
                super::realtime::report(super::realtime::enter(priority), priority);
                thread.run()
            })
            .map_err(MediaError::Thread)?;
        tracing::info!(
            "RTP on {} (RTCP {}), receive buffers of {granted} bytes",
            bound,
            bound.port().wrapping_add(1),
        );
        Ok(MediaEngine {
            handle,
            thread: Some(joined),
            notices: Some(notices),
        })
    }

    pub fn handle(&self) -> MediaHandle {
        self.handle.clone()
    }

    /// What the engine reports of its own accord (silent streams); the
    /// first call takes the receiver.
    pub fn take_notices(&mut self) -> Option<mpsc::UnboundedReceiver<MediaNotice>> {
        self.notices.take()
    }

    /// Ends every stream (BYE to each agent, rows to the writer) and stops
    /// the thread.
    pub async fn stop(mut self) {
        let (reply, rx) = oneshot::channel();
        if self.handle.send(Command::Stop { reply }) {
            let _ = rx.await;
        }
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

#[cfg(test)]
mod tests;
