//! sipsensor-collector: the data-collector end of sipsensor. It stores every
//! sample the sensors stream (SQLite or PostgreSQL), keeps per-stream
//! statistics, and serves a JSON API, Prometheus metrics and a live page.
//!
//! The SIP/RTP side (UAS, registrar) feeds [`storage::writer::WriterHandle`]
//! and [`stats::StreamHandle`]; everything else here is independent of it.

pub mod metrics;
pub mod ratelimit;
pub mod stats;
pub mod storage;
