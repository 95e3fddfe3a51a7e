//! The stream framer of SIP over TCP/TLS (RFC 3261 18.3, RFC 5626 3.5.1
//! keep-alives). Cuts the input into chunks at points the input itself
//! chooses and checks that the frames do not depend on how the bytes were
//! split, that no frame exceeds the limit, and that the backlog stays
//! bounded.

use sipsensor_protocol::{StreamFrame, StreamFramer};

/// Small, so that the size limits are reached within a fuzz input.
const MAX_MESSAGE: usize = 512;

pub fn run(data: &[u8]) {
    let Some((&seed, bytes)) = data.split_first() else {
        return;
    };
    let whole = frames(bytes, |_| bytes.len());
    let bytewise = frames(bytes, |_| 1);
    // Chunk lengths 1..=16 from a small generator seeded by the input.
    let mut state = u32::from(seed) | 1;
    let chunked = frames(bytes, |_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 16 + 1) as usize
    });
    assert_eq!(bytewise, chunked, "frames depend on how the stream was cut");
    // Pushing everything at once may overrun the backlog; otherwise it
    // must frame like the rest.
    if !whole.ends_with(&[Outcome::Backlog]) {
        assert_eq!(whole, bytewise, "frames depend on how the stream was cut");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Frame(StreamFrame),
    Failed(String),
    Backlog,
}

/// Pushes `bytes` in chunks of `next_len` and drains after each push.
fn frames(bytes: &[u8], mut next_len: impl FnMut(usize) -> usize) -> Vec<Outcome> {
    let mut framer = StreamFramer::new(MAX_MESSAGE);
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + next_len(at).max(1)).min(bytes.len());
        if framer.push(&bytes[at..end]).is_err() {
            out.push(Outcome::Backlog);
            return out;
        }
        at = end;
        while let Some(next) = framer.next_frame() {
            match next {
                Ok(frame) => {
                    if let StreamFrame::Message(m) = &frame {
                        assert!(m.len() <= MAX_MESSAGE, "a frame over the limit");
                    }
                    out.push(Outcome::Frame(frame));
                }
                Err(e) => {
                    out.push(Outcome::Failed(format!("{e:?}")));
                    return out;
                }
            }
        }
        assert!(framer.buffered() <= framer.max_buffered());
    }
    out
}
