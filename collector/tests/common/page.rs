//! The collector's HTTP router on a loopback port, as the page tests
//! serve it to the browser.

use sipsensor_collector::http::{self, AppState};
use sipsensor_collector::metrics::Metrics;
use sipsensor_collector::stats::StreamsRegistry;
use sipsensor_collector::storage::{Reading, ReadingSource, Session, Storage};
use sipsensor_collector::timefmt::now_ns;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The page tests' sampling interval: 2 Hz.
pub const STEP: i64 = 500_000_000;

pub fn temperature(i: i64) -> i64 {
    2100 + (150.0 * (i as f64 / 8.0).sin()).round() as i64
}

pub fn humidity(i: i64) -> i64 {
    455 + (i % 10) * 3
}

/// Live readings of a climate session (`common::climate`), instant `i`
/// at `t0 + i * STEP`.
pub fn climate_samples(
    session: &Session,
    range: std::ops::RangeInclusive<i64>,
    t0: i64,
) -> Vec<Reading> {
    range
        .map(|i| Reading {
            session: session.id,
            sensor: session.sensor,
            seq: i,
            index: 0,
            ts_ns: t0 + i * STEP,
            raws: vec![Some(temperature(i)), Some(humidity(i))],
            source: ReadingSource::Live,
        })
        .collect()
}

/// The runtime the page tests seed the store and serve with.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Whole seconds, 40 s ago: a chart of a few dozen instants from there
/// shows the last minute or so.
pub fn recent_t0() -> i64 {
    (now_ns() / 1_000_000_000 - 40) * 1_000_000_000
}

/// What the handlers share, over `store`, with no stream open.
pub fn app_state(store: impl Storage + 'static) -> AppState {
    let streams = StreamsRegistry::new();
    let metrics = Metrics::new(streams.clone());
    AppState {
        storage: Arc::new(store),
        streams,
        metrics,
        fleet: None,
    }
}

pub struct PageServer {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl PageServer {
    pub fn start(rt: &Runtime, state: AppState) -> PageServer {
        let listener = rt
            .block_on(http::bind("127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = rt.spawn(http::serve(
            listener,
            state,
            http::Doors::loopback(),
            async move {
                let _ = stopped.await;
            },
        ));
        PageServer { addr, stop, task }
    }

    /// Stops serving and waits until open requests are done.
    pub fn stop(self, rt: &Runtime) {
        let _ = self.stop.send(());
        rt.block_on(self.task).unwrap().unwrap();
    }
}
