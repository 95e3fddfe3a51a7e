//! The bytes on disk, without files: a segment header and length-prefixed,
//! CRC-checked records. Pure functions, so torn and corrupt inputs are
//! tested on byte slices.
//!
//! ```text
//! segment  = header record*
//! header   = "SSPL" version:u16 0:u16 id:u64 prev_min:i64 prev_max:i64
//!            released:i64 crc32(previous 40 bytes):u32        (44 bytes)
//! record   = len:u32 crc32(payload):u32 payload               (len ≥ 1)
//! payload  = 1 stream:u32 first:i64 spacing:u32 channels:u8 count:u16 values
//!          | 2 at:i64 input:u16 level:u8
//!          | 3 released:i64
//! values   = count × channels zigzag varints: row 0 as is, every later
//!            row minus the row before it (wrapping), channel by channel
//! ```
//!
//! All integers little-endian; instants are ns since the Unix epoch as the
//! agent stamped them. `prev_min`/`prev_max` bound the previous segment's
//! instants (`i64::MIN` when unknown), so opening reads only headers of
//! sealed segments. Values are deltas because sensor readings change
//! slowly: 1–2 bytes a value instead of 4, which is what lets a week fit
//! the data partition.

use super::{GpioEdge, Record, SampleRun};

pub const MAGIC: [u8; 4] = *b"SSPL";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 44;
/// Record framing: length and CRC.
pub const FRAME_LEN: usize = 8;
/// No payload is longer: 300 values (the payload format's limit of 1200
/// bytes of i32) at 5 bytes each plus the fixed part. A longer length is
/// garbage, not a record.
pub const MAX_PAYLOAD: usize = 4096;

const KIND_SAMPLES: u8 = 1;
const KIND_EDGE: u8 = 2;
const KIND_RELEASED: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u64,
    /// Bounds of the previous segment's instants.
    pub prev_min: i64,
    pub prev_max: i64,
    /// The release mark when this segment began.
    pub released: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a spool segment (bad magic or shorter than a header)")]
    NotSegment,
    #[error("the header's checksum does not match")]
    Checksum,
    #[error(
        "format version {0} is newer than this agent's {VERSION}; use a newer agent or move the spool away"
    )]
    Future(u16),
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.prev_min.to_le_bytes());
        b[24..32].copy_from_slice(&self.prev_max.to_le_bytes());
        b[32..40].copy_from_slice(&self.released.to_le_bytes());
        let crc = crc32fast::hash(&b[..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        if b.len() < HEADER_LEN || b[0..4] != MAGIC {
            return Err(HeaderError::NotSegment);
        }
        // The version is read before the checksum: a future format may
        // lay its header out differently.
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version > VERSION {
            return Err(HeaderError::Future(version));
        }
        if crc32fast::hash(&b[..40]) != u32::from_le_bytes(arr(&b[40..44])) {
            return Err(HeaderError::Checksum);
        }
        Ok(Header {
            id: u64::from_le_bytes(arr(&b[8..16])),
            prev_min: i64::from_le_bytes(arr(&b[16..24])),
            prev_max: i64::from_le_bytes(arr(&b[24..32])),
            released: i64::from_le_bytes(arr(&b[32..40])),
        })
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record(Record),
    Released(i64),
}

/// Writes into a caller's buffer (the real-time thread's is preallocated):
/// returns the payload length, or `None` when it does not fit.
pub fn encode_samples(out: &mut [u8], run: &SampleRunRef<'_>) -> Option<usize> {
    let mut w = Cursor { buf: out, at: 0 };
    let channels = usize::from(run.channels);
    let count = run.values.len().checked_div(channels).unwrap_or(0);
    w.put(&[KIND_SAMPLES])?;
    w.put(&run.stream.to_le_bytes())?;
    w.put(&run.first_ns.to_le_bytes())?;
    w.put(&run.spacing_ns.to_le_bytes())?;
    w.put(&[run.channels])?;
    w.put(&u16::try_from(count).ok()?.to_le_bytes())?;
    for (i, v) in run.values[..count * channels].iter().enumerate() {
        let prev = if i >= channels {
            run.values[i - channels]
        } else {
            0
        };
        w.varint(zigzag(v.wrapping_sub(prev)))?;
    }
    Some(w.at)
}

/// A run of samples borrowed from the sender's packet buffer.
#[derive(Debug, Clone, Copy)]
pub struct SampleRunRef<'a> {
    pub stream: u32,
    pub first_ns: i64,
    pub spacing_ns: u32,
    pub channels: u8,
    pub values: &'a [i32],
}

pub fn encode_edge(out: &mut [u8], edge: &GpioEdge) -> Option<usize> {
    let mut w = Cursor { buf: out, at: 0 };
    w.put(&[KIND_EDGE])?;
    w.put(&edge.at_ns.to_le_bytes())?;
    w.put(&edge.input.to_le_bytes())?;
    w.put(&[u8::from(edge.level)])?;
    Some(w.at)
}

pub fn encode_released(out: &mut [u8], at: i64) -> Option<usize> {
    let mut w = Cursor { buf: out, at: 0 };
    w.put(&[KIND_RELEASED])?;
    w.put(&at.to_le_bytes())?;
    Some(w.at)
}

pub fn decode(p: &[u8]) -> Option<Entry> {
    let mut r = Reader { buf: p, at: 0 };
    let entry = match r.u8()? {
        KIND_SAMPLES => {
            let stream = u32::from_le_bytes(r.take()?);
            let first_ns = i64::from_le_bytes(r.take()?);
            let spacing_ns = u32::from_le_bytes(r.take()?);
            let channels = r.u8()?;
            let count = usize::from(u16::from_le_bytes(r.take()?));
            let n = count * usize::from(channels);
            let mut values: Vec<i32> = Vec::with_capacity(n.min(MAX_PAYLOAD));
            for i in 0..n {
                let prev = if i >= usize::from(channels) {
                    values[i - usize::from(channels)]
                } else {
                    0
                };
                values.push(prev.wrapping_add(unzigzag(r.varint()?)));
            }
            Entry::Record(Record::Samples(SampleRun {
                stream,
                first_ns,
                spacing_ns,
                channels,
                values,
            }))
        }
        KIND_EDGE => Entry::Record(Record::Edge(GpioEdge {
            at_ns: i64::from_le_bytes(r.take()?),
            input: u16::from_le_bytes(r.take()?),
            level: r.u8()? != 0,
        })),
        KIND_RELEASED => Entry::Released(i64::from_le_bytes(r.take()?)),
        _ => return None,
    };
    (r.at == p.len()).then_some(entry)
}

/// The framed record (length, CRC, payload) for `payload`.
pub fn frame(payload: &[u8]) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    f[4..8].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f
}

/// The next record in `body` (the bytes after the header): the entry and
/// the bytes it took; `None` at the end or where the bytes stop being
/// records (a torn write, a zero-filled tail, garbage).
pub fn next_record(body: &[u8]) -> Option<(Entry, usize)> {
    let head = body.get(..FRAME_LEN)?;
    let len = u32::from_le_bytes(arr(&head[0..4])) as usize;
    if len == 0 || len > MAX_PAYLOAD {
        return None;
    }
    let payload = body.get(FRAME_LEN..FRAME_LEN + len)?;
    if crc32fast::hash(payload) != u32::from_le_bytes(arr(&head[4..8])) {
        return None;
    }
    Some((decode(payload)?, FRAME_LEN + len))
}

/// The entries of a segment body up to the first bad byte, and where the
/// good part ends.
pub fn scan(body: &[u8]) -> (Vec<Entry>, usize) {
    let mut entries = Vec::new();
    let mut at = 0;
    while let Some((e, n)) = body.get(at..).and_then(next_record) {
        entries.push(e);
        at += n;
    }
    (entries, at)
}

fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn unzigzag(v: u32) -> i32 {
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, b: &[u8]) -> Option<()> {
        self.buf
            .get_mut(self.at..self.at + b.len())?
            .copy_from_slice(b);
        self.at += b.len();
        Some(())
    }

    /// LEB128, 7 bits a byte.
    fn varint(&mut self, mut v: u32) -> Option<()> {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                return self.put(&[byte]);
            }
            self.put(&[byte | 0x80])?;
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.buf.get(self.at..self.at + N)?;
        self.at += N;
        Some(arr(b))
    }

    fn varint(&mut self) -> Option<u32> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            v |= u32::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: Vec<i32>) -> SampleRun {
        SampleRun {
            stream: 7,
            first_ns: 1_700_000_000_000_000_000,
            spacing_ns: 10_000_000,
            channels: 3,
            values,
        }
    }

    fn encoded(r: &SampleRun) -> Vec<u8> {
        let mut buf = [0u8; MAX_PAYLOAD];
        let n = encode_samples(&mut buf, &r.borrowed()).expect("fits");
        buf[..n].to_vec()
    }

    #[test]
    fn samples_round_trip_bit_exact_with_extremes() {
        let r = run(vec![
            i32::MIN,
            i32::MAX,
            0, //
            i32::MAX,
            i32::MIN + 1,
            -1, //
            5,
            6,
            7,
        ]);
        let bytes = encoded(&r);
        assert_eq!(decode(&bytes), Some(Entry::Record(Record::Samples(r))));
    }

    #[test]
    fn slow_values_take_about_a_byte_each() {
        let values: Vec<i32> = (0..30).map(|i| 2150 + i % 3).collect();
        let bytes = encoded(&run(values));
        // 20 bytes fixed, the first row 2 bytes a value, the rest 1.
        assert_eq!(bytes.len(), 20 + 3 * 2 + 27);
    }

    #[test]
    fn edge_and_release_round_trip() {
        let mut buf = [0u8; 64];
        let e = GpioEdge {
            at_ns: -5,
            input: 3,
            level: true,
        };
        let n = encode_edge(&mut buf, &e).expect("fits");
        assert_eq!(decode(&buf[..n]), Some(Entry::Record(Record::Edge(e))));
        let n = encode_released(&mut buf, 42).expect("fits");
        assert_eq!(decode(&buf[..n]), Some(Entry::Released(42)));
    }

    #[test]
    fn a_buffer_too_small_is_refused_not_overrun() {
        let mut buf = [0u8; 10];
        assert_eq!(
            encode_samples(&mut buf, &run(vec![1, 2, 3]).borrowed()),
            None
        );
    }

    #[test]
    fn trailing_or_unknown_bytes_are_not_a_record() {
        let mut bytes = encoded(&run(vec![1, 2, 3]));
        bytes.push(0);
        assert_eq!(decode(&bytes), None);
        assert_eq!(decode(&[9, 0, 0]), None);
    }

    fn framed(payloads: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            out.extend_from_slice(&frame(p));
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn scan_stops_at_a_torn_record_a_zero_tail_and_garbage() {
        let a = encoded(&run(vec![1, 2, 3]));
        let b = encoded(&run(vec![4, 5, 6]));
        let good = framed(&[a.clone(), b.clone()]);
        for tail in [
            framed(std::slice::from_ref(&a))[..10].to_vec(),
            vec![0u8; 4096],
            b"\x05\0\0\0garbage!".to_vec(),
        ] {
            let mut body = good.clone();
            body.extend_from_slice(&tail);
            let (entries, end) = scan(&body);
            assert_eq!(entries.len(), 2);
            assert_eq!(end, good.len());
        }
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut body = framed(&[encoded(&run(vec![1, 2, 3]))]);
        let last = body.len() - 1;
        body[last] ^= 1;
        assert_eq!(scan(&body).1, 0);
    }

    #[test]
    fn header_round_trips_and_refuses_future_versions_and_damage() {
        let h = Header {
            id: 9,
            prev_min: 1,
            prev_max: 2,
            released: i64::MIN,
        };
        let mut b = h.encode();
        assert_eq!(Header::decode(&b), Ok(h));
        b[33] ^= 1;
        assert_eq!(Header::decode(&b), Err(HeaderError::Checksum));
        let mut f = h.encode();
        f[4..6].copy_from_slice(&(VERSION + 1).to_le_bytes());
        assert_eq!(Header::decode(&f), Err(HeaderError::Future(VERSION + 1)));
        assert_eq!(Header::decode(b"SSP"), Err(HeaderError::NotSegment));
    }
}
