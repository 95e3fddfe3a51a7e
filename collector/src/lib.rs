//! sipsensor-collector: the data-collector end of sipsensor. It stores every
//! sample the sensors stream (SQLite or PostgreSQL), keeps per-stream
//! statistics, and serves a JSON API, Prometheus metrics and a live page.
//!
//! The SIP/RTP side (UAS, registrar) feeds [`storage::writer::WriterHandle`]
//! and [`stats::StreamHandle`], taken from [`app::Services`].

pub mod app;
pub mod config;
pub mod export;
pub mod http;
pub mod media;
pub mod metrics;
pub mod ratelimit;
pub mod retention;
pub mod sip;
pub mod stats;
pub mod storage;
pub mod timefmt;
pub mod update;
