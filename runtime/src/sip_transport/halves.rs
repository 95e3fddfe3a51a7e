//! The two halves of a connection, plain TCP or TLS: what a handshake
//! (`tls`) hands to the stream transport (`stream`), so neither names the
//! other's internals.

use tokio::io::{AsyncRead, AsyncWrite};

pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;
