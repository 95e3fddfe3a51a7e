//! Log lines to stderr (the init system or journald adds time and
//! program), level from the config and changeable on reload.

use crate::config::LogLevel;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

/// Changes the level of the installed logger.
#[derive(Debug, Clone)]
pub struct LogHandle(Option<reload::Handle<LevelFilter, tracing_subscriber::Registry>>);

pub fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Install the logger once per process; later calls (tests) get a handle
/// that changes nothing.
pub fn init(level: LogLevel) -> LogHandle {
    let (layer, handle) = reload::Layer::new(filter(level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    match tracing_subscriber::registry()
        .with(layer)
        .with(fmt)
        .try_init()
    {
        Ok(()) => LogHandle(Some(handle)),
        Err(_) => LogHandle(None),
    }
}

impl LogHandle {
    pub fn set(&self, level: LogLevel) {
        if let Some(h) = &self.0
            && let Err(e) = h.reload(filter(level))
        {
            tracing::warn!("cannot change the log level: {e}");
        }
    }
}
