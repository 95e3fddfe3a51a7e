//! Cutting a byte stream (TCP) into SIP messages (RFC 3261 18.3) and
//! recognising CRLF keep-alives between them (RFC 5626 section 3.5.1).

/// RFC 5626 3.5.1: a client's keep-alive "ping" on a stream.
pub const PING: &[u8] = b"\r\n\r\n";
/// RFC 5626 3.5.1: the answer to a [`PING`].
pub const PONG: &[u8] = b"\r\n";
/// Default message limit: generous for anything this project sends (a
/// REGISTER or an INVITE with a sensor SDP is a few KiB) and equal to the
/// largest UDP datagram, so both transports accept the same messages.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 65_535;

/// One unit cut from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message: start line, headers, blank line and exactly
    /// Content-Length bytes of body. Leading CRLFs are not included.
    Message(Vec<u8>),
    /// A double CRLF between messages: answer with [`PONG`].
    Ping,
    /// A single CRLF while [`StreamFramer::expect_pong`] was pending.
    Pong,
}

/// Why the stream cannot be framed. Framing cannot resynchronise after any
/// of these, so the connection should be closed (after a 400 built from
/// `head`, where given, if the caller wants to answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("no end of headers within {max} bytes")]
    HeadersTooLong { max: usize },
    #[error("message of {size} bytes exceeds the limit of {max}")]
    TooLarge { size: usize, max: usize },
    /// RFC 3261 18.3: on a stream, Content-Length MUST be present.
    #[error("message on a stream has no Content-Length (RFC 3261 18.3)")]
    MissingContentLength { head: Vec<u8> },
    #[error("invalid Content-Length {value:?}")]
    InvalidContentLength { value: String, head: Vec<u8> },
    #[error("conflicting Content-Length values")]
    ConflictingContentLength { head: Vec<u8> },
    /// The caller pushed more than it drained with [`StreamFramer::next_frame`].
    #[error("more than {max} bytes buffered without being framed")]
    Backlog { max: usize },
}

/// Sans-I/O framer for one stream connection: `push` bytes as they arrive,
/// then call `next_frame` until it returns `None`.
#[derive(Debug)]
pub struct StreamFramer {
    buf: Vec<u8>,
    max_message: usize,
    /// Where to resume looking for the end of headers.
    scan_from: usize,
    /// Total length of the message at the front, once its head is parsed.
    pending_len: Option<usize>,
    pong_expected: bool,
    failed: Option<FrameError>,
}

impl StreamFramer {
    pub fn new(max_message_size: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_message: max_message_size.max(1),
            scan_from: 0,
            pending_len: None,
            pong_expected: false,
            failed: None,
        }
    }

    /// Most bytes held at once: one message plus the next one's beginning.
    pub fn max_buffered(&self) -> usize {
        self.max_message.saturating_mul(2)
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Note that we sent a [`PING`]: the next lone CRLF is its pong.
    pub fn expect_pong(&mut self) {
        self.pong_expected = true;
    }

    /// Append received bytes. Fails once the stream has failed, or when the
    /// backlog would pass [`Self::max_buffered`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.buf.len() + bytes.len() > self.max_buffered() {
            return Err(self.fail(FrameError::Backlog {
                max: self.max_buffered(),
            }));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn fail(&mut self, err: FrameError) -> FrameError {
        self.failed = Some(err.clone());
        self.buf = Vec::new();
        err
    }

    /// The next complete frame, `None` if more bytes are needed. An error is
    /// returned once; after it the framer yields nothing more.
    pub fn next_frame(&mut self) -> Option<Result<Frame, FrameError>> {
        if self.failed.is_some() {
            return None;
        }
        loop {
            if self.pending_len.is_none() && self.buf.starts_with(b"\r\n") {
                if self.buf.starts_with(PING) {
                    self.buf.drain(..PING.len());
                    return Some(Ok(Frame::Ping));
                }
                // "\r\n" or "\r\n\r": possibly the first half of a ping.
                let may_be_ping = self.buf.len() == 2 || self.buf.as_slice() == b"\r\n\r";
                if may_be_ping && !self.pong_expected {
                    return None;
                }
                self.buf.drain(..2);
                if self.pong_expected {
                    self.pong_expected = false;
                    return Some(Ok(Frame::Pong));
                }
                // RFC 3261 7.5: CRLFs before a start line are ignored.
                continue;
            }
            return match self.message() {
                Ok(Some(message)) => Some(Ok(Frame::Message(message))),
                Ok(None) => None,
                Err(err) => Some(Err(self.fail(err))),
            };
        }
    }

    /// The message at the front of the buffer, if complete.
    fn message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let total = match self.pending_len {
            Some(total) => total,
            None => {
                let Some(head_len) = self.find_head_end()? else {
                    return Ok(None);
                };
                let body = content_length(&self.buf[..head_len])?;
                let total = head_len.saturating_add(body);
                if total > self.max_message {
                    return Err(FrameError::TooLarge {
                        size: total,
                        max: self.max_message,
                    });
                }
                self.pending_len = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let message = std::mem::replace(&mut self.buf, rest);
        self.pending_len = None;
        self.scan_from = 0;
        Ok(Some(message))
    }

    /// Length of the head including its terminating empty line.
    fn find_head_end(&mut self) -> Result<Option<usize>, FrameError> {
        let found = self.buf[self.scan_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| self.scan_from + i + 4);
        match found {
            Some(end) if end > self.max_message => Err(FrameError::HeadersTooLong {
                max: self.max_message,
            }),
            Some(end) => Ok(Some(end)),
            None if self.buf.len() >= self.max_message => Err(FrameError::HeadersTooLong {
                max: self.max_message,
            }),
            None => {
                // Resume where an end marker could still begin.
                self.scan_from = self.buf.len().saturating_sub(3);
                Ok(None)
            }
        }
    }
}

/// Content-Length (or compact `l`, RFC 3261 7.3.3) from a message head,
/// with folded lines joined (7.3.1).
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    // Skip the start line; headers may be folded onto following lines.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match (line.first(), lines.last_mut()) {
            (Some(b' ' | b'\t'), Some(prev)) => {
                prev.push(b' ');
                prev.extend_from_slice(line);
            }
            _ => lines.push(line.to_vec()),
        }
    }
    let mut found: Option<usize> = None;
    for line in &lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if !name.eq_ignore_ascii_case(b"content-length") && !name.eq_ignore_ascii_case(b"l") {
            continue;
        }
        let raw = line[colon + 1..].trim_ascii();
        let value = std::str::from_utf8(raw)
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| FrameError::InvalidContentLength {
                value: String::from_utf8_lossy(&raw[..raw.len().min(40)]).into_owned(),
                head: head.to_vec(),
            })?;
        match found {
            Some(previous) if previous != value => {
                return Err(FrameError::ConflictingContentLength {
                    head: head.to_vec(),
                });
            }
            _ => found = Some(value),
        }
    }
    found.ok_or_else(|| FrameError::MissingContentLength {
        head: head.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP [::1]:5062;branch=z9hG4bK1;rport\r\n\
        Content-Length: 0\r\n\r\n";

    fn options_with_body(body: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK2\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    fn drain(f: &mut StreamFramer) -> Vec<Result<Frame, FrameError>> {
        let mut out = Vec::new();
        for _ in 0..100 {
            match f.next_frame() {
                Some(frame) => out.push(frame),
                None => return out,
            }
        }
        panic!("framer never ran dry")
    }

    #[test]
    fn frames_pipelined_messages_with_bodies() {
        let second = options_with_body("hello\r\n\r\nworld");
        let mut stream = REGISTER.to_vec();
        stream.extend_from_slice(&second);
        let mut f = StreamFramer::new(DEFAULT_MAX_MESSAGE_SIZE);
        f.push(&stream).unwrap();
        assert_eq!(
            drain(&mut f),
            [
                Ok(Frame::Message(REGISTER.to_vec())),
                Ok(Frame::Message(second))
            ]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn byte_by_byte_gives_the_same_messages() {
        let second = options_with_body("v=0\r\n");
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(REGISTER);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(&second);
        let mut f = StreamFramer::new(1000);
        let mut frames = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b)).unwrap();
            frames.extend(drain(&mut f));
        }
        assert_eq!(
            frames,
            [
                Ok(Frame::Ping),
                Ok(Frame::Message(REGISTER.to_vec())),
                Ok(Frame::Ping),
                Ok(Frame::Message(second)),
            ]
        );
    }

    #[test]
    fn single_crlf_before_a_message_is_ignored() {
        let mut f = StreamFramer::new(1000);
        f.push(b"\r\n").unwrap();
        assert_eq!(f.next_frame(), None, "could be half a ping");
        f.push(REGISTER).unwrap();
        assert_eq!(drain(&mut f), [Ok(Frame::Message(REGISTER.to_vec()))]);
    }

    #[test]
    fn pong_after_our_ping() {
        let mut f = StreamFramer::new(1000);
        f.expect_pong();
        f.push(PONG).unwrap();
        assert_eq!(drain(&mut f), [Ok(Frame::Pong)]);
        // Not expected any more: a lone CRLF waits to see if it is a ping.
        f.push(b"\r\n").unwrap();
        assert_eq!(f.next_frame(), None);
        f.push(b"\r\n").unwrap();
        assert_eq!(drain(&mut f), [Ok(Frame::Ping)]);
    }

    #[test]
    fn compact_folded_and_spaced_content_length() {
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\nl :\r\n   4\r\nX: y\r\n\r\nbody".to_vec();
        let mut f = StreamFramer::new(1000);
        f.push(&msg).unwrap();
        assert_eq!(drain(&mut f), [Ok(Frame::Message(msg))]);
    }

    #[test]
    fn missing_content_length_is_an_error_once() {
        let head = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
        let mut f = StreamFramer::new(1000);
        f.push(head).unwrap();
        assert_eq!(
            f.next_frame(),
            Some(Err(FrameError::MissingContentLength {
                head: head.to_vec()
            }))
        );
        assert_eq!(f.next_frame(), None);
        assert!(f.push(REGISTER).is_err());
    }

    #[test]
    fn invalid_and_conflicting_content_length() {
        for (value, bad) in [
            ("-1", true),
            ("1x", true),
            ("", true),
            ("99999999999", true),
            ("0x10", true),
        ] {
            let msg = format!("ACK sip:a@b SIP/2.0\r\nContent-Length: {value}\r\n\r\n");
            let mut f = StreamFramer::new(1000);
            f.push(msg.as_bytes()).unwrap();
            let got = f.next_frame();
            assert_eq!(
                matches!(got, Some(Err(FrameError::InvalidContentLength { .. }))),
                bad,
                "{value:?}: {got:?}"
            );
        }
        let msg = b"ACK sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        let mut f = StreamFramer::new(1000);
        f.push(msg).unwrap();
        assert!(matches!(
            f.next_frame(),
            Some(Err(FrameError::ConflictingContentLength { .. }))
        ));
        // The same value twice is only redundant.
        let msg = b"ACK sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nab";
        let mut f = StreamFramer::new(1000);
        f.push(msg).unwrap();
        assert_eq!(drain(&mut f), [Ok(Frame::Message(msg.to_vec()))]);
    }

    #[test]
    fn oversized_body_fails_before_it_arrives() {
        let mut f = StreamFramer::new(200);
        f.push(b"INFO sip:a@b SIP/2.0\r\nContent-Length: 100000\r\n\r\n")
            .unwrap();
        assert_eq!(
            f.next_frame(),
            Some(Err(FrameError::TooLarge {
                size: 48 + 100_000,
                max: 200
            }))
        );
    }

    #[test]
    fn endless_headers_fail_at_the_limit() {
        let mut f = StreamFramer::new(64);
        f.push(b"INFO sip:a@b SIP/2.0\r\n").unwrap();
        assert_eq!(f.next_frame(), None);
        f.push(&[b'X'; 42]).unwrap();
        assert_eq!(
            f.next_frame(),
            Some(Err(FrameError::HeadersTooLong { max: 64 }))
        );
    }

    #[test]
    fn undrained_backlog_is_bounded() {
        let mut f = StreamFramer::new(100);
        f.push(&[b'a'; 150]).unwrap();
        assert_eq!(f.push(&[b'a'; 51]), Err(FrameError::Backlog { max: 200 }));
    }

    #[test]
    fn message_exactly_at_the_limit_passes() {
        let msg = options_with_body("x");
        let mut f = StreamFramer::new(msg.len());
        f.push(&msg).unwrap();
        assert_eq!(drain(&mut f), [Ok(Frame::Message(msg.clone()))]);
        let mut f = StreamFramer::new(msg.len() - 1);
        f.push(&msg).unwrap();
        assert!(matches!(
            f.next_frame(),
            Some(Err(FrameError::TooLarge { .. }))
        ));
    }
}
