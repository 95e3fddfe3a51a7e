//! The APP packets of acknowledgement and backfill (RFC 3550 6.7,
//! docs/protocol.md 11.4): name `SSBF`, subtype 0 the collector's
//! committed-through mark, subtype 1 the agent's expired range, subtype 2
//! its range without samples (backfill complete up to the live start). APP
//! packets of other names, and subtypes this code does not know, are
//! ignored: later versions may add some.

use super::packets::App;
use thiserror::Error;

/// The APP name (RFC 3550 6.7: four ASCII characters).
pub const APP_NAME: [u8; 4] = *b"SSBF";
pub const SUBTYPE_COMMITTED: u8 = 0;
pub const SUBTYPE_EXPIRED: u8 = 1;
pub const SUBTYPE_UNSAMPLED: u8 = 2;
const COMMITTED_LEN: usize = 12;
const EXPIRED_LEN: usize = 20;

/// One acknowledgement or backfill message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillMessage {
    /// Collector to agent: every sample and event of the stream
    /// `media_ssrc` names with an instant at or before `through_ns` is
    /// committed to storage (0: nothing yet).
    Committed { media_ssrc: u32, through_ns: u64 },
    /// Agent to collector: no sample or event of the stream with an
    /// instant strictly between `after_ns` and `before_ns` will ever be
    /// sent; the spool no longer has them.
    Expired {
        media_ssrc: u32,
        after_ns: u64,
        before_ns: u64,
    },
    /// Agent to collector: the agent never sampled strictly between
    /// `after_ns` and `before_ns` (it was off, or the backfill has sent
    /// everything before the live start); nothing will come.
    Unsampled {
        media_ssrc: u32,
        after_ns: u64,
        before_ns: u64,
    },
}

/// An `SSBF` APP packet that is too short for its subtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("SSBF subtype {subtype}: {len} data bytes, {need} needed")]
pub struct AppError {
    pub subtype: u8,
    pub len: usize,
    pub need: usize,
}

fn range(media_ssrc: u32, after_ns: u64, before_ns: u64) -> Vec<u8> {
    let mut d = Vec::with_capacity(EXPIRED_LEN);
    d.extend_from_slice(&media_ssrc.to_be_bytes());
    d.extend_from_slice(&after_ns.to_be_bytes());
    d.extend_from_slice(&before_ns.to_be_bytes());
    d
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl BackfillMessage {
    /// Reads an APP packet: `Ok(None)` for other names and unknown
    /// subtypes. Data beyond the fields is ignored (later versions may
    /// append fields).
    pub fn from_app(app: &App) -> Result<Option<Self>, AppError> {
        if app.name != APP_NAME {
            return Ok(None);
        }
        let need = match app.subtype {
            SUBTYPE_COMMITTED => COMMITTED_LEN,
            SUBTYPE_EXPIRED | SUBTYPE_UNSAMPLED => EXPIRED_LEN,
            _ => return Ok(None),
        };
        let d = &app.data;
        if d.len() < need {
            return Err(AppError {
                subtype: app.subtype,
                len: d.len(),
                need,
            });
        }
        let media_ssrc = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        Ok(Some(match app.subtype {
            SUBTYPE_COMMITTED => Self::Committed {
                media_ssrc,
                through_ns: be64(&d[4..]),
            },
            SUBTYPE_EXPIRED => Self::Expired {
                media_ssrc,
                after_ns: be64(&d[4..]),
                before_ns: be64(&d[12..]),
            },
            _ => Self::Unsampled {
                media_ssrc,
                after_ns: be64(&d[4..]),
                before_ns: be64(&d[12..]),
            },
        }))
    }

    /// The APP packet, sent by `sender_ssrc`.
    pub fn to_app(&self, sender_ssrc: u32) -> App {
        let (subtype, data) = match *self {
            Self::Committed {
                media_ssrc,
                through_ns,
            } => {
                let mut d = Vec::with_capacity(COMMITTED_LEN);
                d.extend_from_slice(&media_ssrc.to_be_bytes());
                d.extend_from_slice(&through_ns.to_be_bytes());
                (SUBTYPE_COMMITTED, d)
            }
            Self::Expired {
                media_ssrc,
                after_ns,
                before_ns,
            } => (SUBTYPE_EXPIRED, range(media_ssrc, after_ns, before_ns)),
            Self::Unsampled {
                media_ssrc,
                after_ns,
                before_ns,
            } => (SUBTYPE_UNSAMPLED, range(media_ssrc, after_ns, before_ns)),
        };
        App {
            subtype,
            ssrc: sender_ssrc,
            name: APP_NAME,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::tests::writer_with_rr;
    use crate::rtcp::{CompoundWriter, RtcpPacket, parse_compound};

    #[test]
    fn committed_and_expired_round_trip_through_a_compound() {
        let committed = BackfillMessage::Committed {
            media_ssrc: 0x1a2b3c4d,
            through_ns: 1_767_225_601_300_000_000,
        };
        let expired = BackfillMessage::Expired {
            media_ssrc: 0x1a2b3c4d,
            after_ns: 1,
            before_ns: u64::MAX,
        };
        let mut buf = [0u8; 128];
        let mut w = writer_with_rr(&mut buf, 0x0badcafe);
        w.app(&committed.to_app(0x0badcafe)).unwrap();
        w.app(&expired.to_app(0x0badcafe)).unwrap();
        let unsampled = BackfillMessage::Unsampled {
            media_ssrc: 0x1a2b3c4d,
            after_ns: 5,
            before_ns: 6,
        };
        w.app(&unsampled.to_app(0x0badcafe)).unwrap();
        let len = w.len();
        assert_eq!(
            &buf[8..20],
            &[
                0x80, 204, 0, 5, 0x0b, 0xad, 0xca, 0xfe, b'S', b'S', b'B', b'F'
            ],
            "subtype 0, APP, 5 words follow; sender; name"
        );
        let got: Vec<_> = parse_compound(&buf[..len])
            .unwrap()
            .iter()
            .filter_map(|p| match p {
                RtcpPacket::App(a) => BackfillMessage::from_app(a).unwrap(),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![committed, expired, unsampled]);
    }

    #[test]
    fn other_names_and_subtypes_are_ignored_short_data_is_an_error() {
        let mut app = BackfillMessage::Committed {
            media_ssrc: 1,
            through_ns: 2,
        }
        .to_app(3);
        app.name = *b"XXXX";
        assert_eq!(BackfillMessage::from_app(&app), Ok(None));
        app.name = APP_NAME;
        app.subtype = 7;
        assert_eq!(BackfillMessage::from_app(&app), Ok(None));
        app.subtype = SUBTYPE_EXPIRED;
        assert_eq!(
            BackfillMessage::from_app(&app),
            Err(AppError {
                subtype: 1,
                len: 12,
                need: 20
            })
        );
        // Longer data (a later version's fields) still reads.
        app.subtype = SUBTYPE_COMMITTED;
        app.data.extend_from_slice(&[0; 8]);
        assert!(matches!(
            BackfillMessage::from_app(&app),
            Ok(Some(BackfillMessage::Committed { through_ns: 2, .. }))
        ));
    }

    #[test]
    fn app_data_must_be_whole_words_and_the_subtype_5_bits() {
        let mut buf = [0u8; 64];
        let mut w = CompoundWriter::new(&mut buf);
        let mut app = BackfillMessage::Committed {
            media_ssrc: 1,
            through_ns: 2,
        }
        .to_app(3);
        app.data.push(0);
        assert!(w.app(&app).is_err());
        app.data.truncate(12);
        app.subtype = 32;
        assert!(w.app(&app).is_err());
    }
}
