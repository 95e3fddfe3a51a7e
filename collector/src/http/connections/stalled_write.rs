//! A connection whose client stops reading (its answer never drains) is
//! closed after a while: without this, a client that asks and never reads
//! holds its connection, its buffers and the handler's place for good.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose writes fail with `TimedOut` once one has waited `limit`.
pub struct StalledWriteLimit<S> {
    inner: S,
    limit: Duration,
    /// Armed while a write waits for room; dropped when it makes progress.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> StalledWriteLimit<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        StalledWriteLimit {
            inner,
            limit,
            deadline: None,
        }
    }

    fn on_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(deadline.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client reads nothing of its answer",
        ))
    }

    fn poll_guarded<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match op(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.on_pending(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StalledWriteLimit<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StalledWriteLimit<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_guarded(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_guarded(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_guarded(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_guarded(cx, |s, cx| s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        // A pipe of 64 bytes: the writer waits once it is full.
        let (near, _far) = tokio::io::duplex(64);
        let mut guarded = StalledWriteLimit::new(near, Duration::from_secs(10));
        guarded.write_all(&[1; 64]).await.unwrap();
        let t = tokio::time::Instant::now();
        let e = guarded.write_all(&[2; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_reading_is_served() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut guarded = StalledWriteLimit::new(near, Duration::from_secs(10));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 64];
            while got < 64 * 5 {
                // Each pause is shorter than the limit: progress re-arms it.
                tokio::time::sleep(Duration::from_secs(6)).await;
                got += far.read(&mut buf).await.unwrap();
            }
            got
        });
        guarded.write_all(&[3; 64 * 5]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 64 * 5);
    }
}
