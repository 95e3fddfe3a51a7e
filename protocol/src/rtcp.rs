//! (filled by the media work: see docs/protocol.md)
