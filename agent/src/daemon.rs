//! `sipsensor-agent run`: the daemon's life cycle.
//!
//! 1. Load the config. If it is missing or invalid, say what is wrong (log,
//!    `status`, LED code) and wait for a fixed file: the files are polled
//!    and SIGHUP re-checks at once. The process never exits over a bad
//!    config, so the init system does not restart it in a loop.
//! 2. Start the parts: status socket, status LED, one I/O thread per
//!    sensor feeding the sample hand-off, one task per GPIO input feeding
//!    the event hand-off. The SIP session and the real-time sender take
//!    over `Pipeline::board` and `Pipeline::events`.
//! 3. SIGHUP: reload; a bad new config is reported and the old one kept.
//!    SIGTERM/SIGINT: stop everything and exit within 2 s.

use crate::backoff::Backoff;
use crate::config::{
    self, ClearText, Config, ConfigFiles, GpioInputConfig, LedConfig, LogLevel, StreamConfig,
};
use crate::gpio::{self, SysfsInput, SysfsOutput};
use crate::handoff::{self, Board, EventReceiver, EventSender};
use crate::led::{self, NoLed};
use crate::logging::{self, LogHandle};
use crate::sensor::SensorEnv;
use crate::sensor::runner::{RetryPolicy, Runner};
use crate::session::{
    self,
    run::{Media, MediaAddress, Sockets},
    streamer::StreamerMedia,
};
use crate::status::{AgentState, StatusHub, server};
use crate::update;
use sipsensor_protocol::IdGenerator;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Events queued per GPIO input before the sender drains them.
const EVENT_RING: usize = 64;
/// The whole shutdown stays within the 2 s the init system is promised:
/// the session's BYE and un-REGISTER first, then the sensor threads.
const SESSION_BUDGET: Duration = Duration::from_millis(1100);
const STOP_BUDGET: Duration = Duration::from_millis(700);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub files: ConfigFiles,
    pub env: SensorEnv,
    /// Overrides the config's `status.socket`.
    pub socket: Option<PathBuf>,
    /// How often config files are checked while waiting for a fix.
    pub poll: Duration,
}

/// The sensors of one config, running.
#[derive(Debug)]
pub struct Pipeline {
    pub stream: StreamConfig,
    /// The stream's channels and the GPIO edges, until the real-time
    /// sender takes them ([`Pipeline::take_media`]).
    media: Option<(Board, EventReceiver)>,
    runners: Vec<Runner>,
    inputs: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Start one I/O thread per sensor and one task per input. Must run
    /// inside the tokio runtime.
    pub fn start(
        config: &Config,
        env: &SensorEnv,
        hub: &StatusHub,
        retry: RetryPolicy,
    ) -> std::io::Result<Pipeline> {
        hub.set_sensors(
            config
                .sensors
                .iter()
                .map(|s| (s.name.clone(), s.type_name().to_owned()))
                .collect(),
        );
        hub.set_inputs(
            config
                .gpio
                .inputs
                .iter()
                .map(|i| (i.name.clone(), i.pin))
                .collect(),
        );
        let mut readers = Vec::new();
        let mut sizes = Vec::new();
        let mut runners = Vec::new();
        for (i, s) in config.sensors.iter().enumerate() {
            let n = s.channels().len();
            let (w, r) = handoff::samples(n, s.stale_after());
            readers.push(r);
            sizes.push(n);
            runners.push(Runner::spawn(
                i,
                s.clone(),
                env.clone(),
                w,
                hub.clone(),
                retry,
            )?);
        }
        let map = config
            .stream
            .channels
            .iter()
            .map(|c| (c.sensor, c.channel))
            .collect();
        let board = Board::new(readers, &sizes, map);
        let (senders, events) = handoff::events(config.gpio.inputs.len(), EVENT_RING);
        let inputs = config
            .gpio
            .inputs
            .iter()
            .cloned()
            .zip(senders)
            .enumerate()
            .map(|(i, (cfg, tx))| {
                tokio::spawn(input_task(
                    u16::try_from(i).unwrap_or(u16::MAX),
                    cfg,
                    tx,
                    hub.clone(),
                ))
            })
            .collect();
        Ok(Pipeline {
            stream: config.stream.clone(),
            media: Some((board, events)),
            runners,
            inputs,
        })
    }

    /// The board and the event ring, for the sender (once).
    pub fn take_media(&mut self) -> Option<(Board, EventReceiver)> {
        self.media.take()
    }

    /// Stop every part within `budget`; sensor threads stuck in a read are
    /// left behind (they hold nothing the next pipeline needs).
    pub async fn stop(self, budget: Duration) {
        for t in &self.inputs {
            t.abort();
        }
        for r in &self.runners {
            r.request_stop();
        }
        let deadline = Instant::now() + budget;
        let runners = self.runners;
        let _ = tokio::task::spawn_blocking(move || {
            for r in runners {
                r.wait(deadline);
            }
        })
        .await;
    }
}

/// Watch one input for as long as the daemon runs; reopen after failures.
async fn input_task(index: u16, cfg: GpioInputConfig, mut tx: EventSender, hub: StatusHub) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    let mut rng = IdGenerator::from_entropy();
    let mut last_error = String::new();
    loop {
        let error = match SysfsInput::open(&cfg) {
            Ok(mut line) => {
                if !last_error.is_empty() {
                    tracing::info!("input {}: GPIO {} works again", cfg.name, cfg.pin);
                }
                last_error.clear();
                backoff.reset();
                match gpio::watch_input(index, &cfg, &mut line, &mut tx, &hub).await {
                    Ok(()) => continue,
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => e.to_string(),
        };
        let delay = backoff.next_delay(&mut rng);
        if error != last_error {
            tracing::warn!(
                "input {}: {error}; retrying in {:.1} s",
                cfg.name,
                delay.as_secs_f64()
            );
        }
        hub.error(&format!("input {}", cfg.name), error.clone());
        last_error = error;
        tokio::time::sleep(delay).await;
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Wake {
    Stop,
    Reload,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Wake {
        tokio::select! {
            _ = self.term.recv() => Wake::Stop,
            _ = self.int.recv() => Wake::Stop,
            _ = self.hup.recv() => Wake::Reload,
        }
    }
}

/// Contents and metadata of the files a config depends on: a change means
/// "check again".
fn fingerprint(files: &ConfigFiles) -> Vec<Option<(Vec<u8>, u32)>> {
    use std::os::unix::fs::MetadataExt;
    let mut paths = files.required.clone();
    paths.extend(files.optional.iter().cloned());
    paths.push(config::secrets_path_best_effort(files));
    paths
        .iter()
        .map(|p| {
            let mode = std::fs::metadata(p).ok()?.mode();
            Some((std::fs::read(p).unwrap_or_default(), mode))
        })
        .collect()
}

/// The parts that follow the config: socket, LED, log level.
struct Shell {
    hub: StatusHub,
    log: LogHandle,
    socket_override: Option<PathBuf>,
    socket: Option<(PathBuf, JoinHandle<()>)>,
    led: Option<(Option<LedConfig>, JoinHandle<()>, watch::Sender<bool>)>,
}

impl Shell {
    /// Serve status on `path` (or the override), rebinding if it changed.
    /// `Err` only when another agent already answers there.
    fn socket(&mut self, path: PathBuf) -> std::io::Result<()> {
        let path = self.socket_override.clone().unwrap_or(path);
        if self.socket.as_ref().is_some_and(|(p, _)| *p == path) {
            return Ok(());
        }
        if let Some((_, t)) = self.socket.take() {
            t.abort();
        }
        match server::bind(&path) {
            Ok(sock) => {
                let hub = self.hub.clone();
                self.socket = Some((path, tokio::spawn(sock.serve(hub))));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(e),
            Err(e) => {
                let msg = format!(
                    "status socket {}: {e}; `sipsensor-agent status` will not work",
                    path.display()
                );
                tracing::error!("{msg}");
                self.hub.error("status", msg);
                Ok(())
            }
        }
    }

    /// Drive the LED on `pin`, restarting the driver if the pin changed.
    async fn led(&mut self, cfg: Option<LedConfig>) {
        if self.led.as_ref().is_some_and(|(c, _, _)| *c == cfg) {
            return;
        }
        self.stop_led().await;
        let (stop_tx, stop_rx) = watch::channel(false);
        let states = self.hub.subscribe();
        let task = match cfg {
            Some(c) => match SysfsOutput::open(&c) {
                Ok(out) => tokio::spawn(led::run(out, states, stop_rx)),
                Err(e) => {
                    tracing::warn!("status LED: {e}");
                    self.hub.error("status LED", e.to_string());
                    tokio::spawn(led::run(NoLed, states, stop_rx))
                }
            },
            None => tokio::spawn(led::run(NoLed, states, stop_rx)),
        };
        self.led = Some((cfg, task, stop_tx));
    }

    /// Stop the LED driver; it switches the LED off on its way out.
    async fn stop_led(&mut self) {
        if let Some((_, task, stop)) = self.led.take() {
            stop.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_millis(200), task).await;
        }
    }

    /// Apply a valid config's socket, LED and log level.
    async fn apply(&mut self, c: &Config) -> std::io::Result<()> {
        self.log.set(c.logging.level);
        self.hub.set_config_files(c.sources.clone());
        self.led(c.gpio.status_led).await;
        self.socket(c.status.socket.clone())
    }
}

/// Run the daemon until SIGTERM/SIGINT.
pub fn run(opts: RunOptions) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sipsensor-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run_async(opts))
}

async fn run_async(opts: RunOptions) -> ExitCode {
    let log = logging::init(LogLevel::Info);
    let hub = StatusHub::new();
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut shell = Shell {
        hub: hub.clone(),
        log,
        socket_override: opts.socket.clone(),
        socket: None,
        led: None,
    };
    tracing::info!("sipsensor-agent {} starting", env!("CARGO_PKG_VERSION"));

    let Some(mut config) = wait_for_config(&opts, &mut shell, &mut signals).await else {
        shell.stop_led().await;
        return ExitCode::SUCCESS;
    };
    loop {
        if let Err(e) = shell.apply(&config).await {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
        warn_clear_text(&config);
        hub.set_state(AgentState::Starting);
        let mut pipeline = match Pipeline::start(&config, &opts.env, &hub, RetryPolicy::default()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot start the sensor threads: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            "running: {} sensors, {} inputs, stream {} Hz × {} channels",
            config.sensors.len(),
            config.gpio.inputs.len(),
            pipeline.stream.rate_hz,
            pipeline.stream.channels.len()
        );
        let mut session = start_session(&config, &mut pipeline, &hub);
        loop {
            match signals.next().await {
                Wake::Stop => {
                    tracing::info!("stopping");
                    session.stop().await;
                    pipeline.stop(STOP_BUDGET).await;
                    shell.stop_led().await;
                    tracing::info!("stopped");
                    return ExitCode::SUCCESS;
                }
                Wake::Reload => match config::load_with_notes(&opts.files) {
                    Ok((new, notes)) => {
                        for n in notes {
                            tracing::warn!("{n}");
                        }
                        tracing::info!("SIGHUP: config reloaded");
                        session.stop().await;
                        pipeline.stop(STOP_BUDGET).await;
                        config = new;
                        break;
                    }
                    Err(errors) => {
                        for e in &errors.0 {
                            tracing::error!("config: {e}");
                        }
                        tracing::error!(
                            "SIGHUP: the new config is invalid; keeping the running one"
                        );
                        hub.error("config", errors.to_string());
                    }
                },
            }
        }
    }
}

/// One line at start when signalling or samples travel in clear text:
/// TLS and SRTP are the default, so this was asked for, but whoever reads
/// the log should know (issue #14, docs/security.md).
fn warn_clear_text(config: &Config) {
    match config.clear_text() {
        None => {}
        Some(ClearText::Signalling(transport)) => tracing::warn!(
            "clear text: SIP over {transport} carries signalling and samples unencrypted and \
             unauthenticated; set `sip.transport: tls` with the site's CA in `sip.ca_file` \
             (docs/security.md)"
        ),
        Some(ClearText::SamplesSrtpOff) => tracing::warn!(
            "clear text: `media.srtp: off` sends the samples as plain RTP, unencrypted and \
             unauthenticated (SIP itself is TLS); remove the key to require SRTP \
             (docs/security.md)"
        ),
        Some(ClearText::SamplesSrtpOptional) => tracing::warn!(
            "clear text possible: `media.srtp: optional` sends the samples as plain RTP to a \
             peer that offers or accepts no SRTP keys; remove the key to require SRTP \
             (docs/security.md)"
        ),
    }
}

/// The SIP session and the real-time sender, running.
struct SessionTask {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SessionTask {
    /// Hang up and unregister within [`SESSION_BUDGET`].
    async fn stop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(SESSION_BUDGET, task).await {
                Ok(_) => {}
                Err(_) => tracing::warn!("the session did not end in time"),
            }
        }
    }
}

/// Starts the session task: it binds the media sockets (which needs the
/// registrar's or collector's address: DNS or the network may not be up
/// yet at boot, so it retries with back-off, saying why once), then runs
/// the SIP session with the real-time sender until told to stop.
fn start_session(config: &Config, pipeline: &mut Pipeline, hub: &StatusHub) -> SessionTask {
    let (stop, mut stop_rx) = watch::channel(false);
    let Some((board, events)) = pipeline.take_media() else {
        return SessionTask { stop, task: None };
    };
    let config = config.clone();
    let hub = hub.clone();
    let task = tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut rng = IdGenerator::from_entropy();
        let mut last = String::new();
        let sockets = loop {
            match Sockets::bind(&config) {
                Ok(s) => break s,
                Err(e) => {
                    let message = e.to_string();
                    if message != last {
                        tracing::error!("cannot start the session yet: {message}; retrying");
                        hub.error("session", message.clone());
                        last = message;
                    }
                    hub.set_state(AgentState::Registering);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay(&mut rng)) => {}
                        _ = stop_rx.changed() => return,
                    }
                }
            }
        };
        let Ok(rtp) = sockets.rtp.local_addr() else {
            return;
        };
        let ssrc = rng.u32();
        let address = MediaAddress { rtp, ssrc };
        let (spool, spool_writer) = match config.spool.as_ref().map(crate::spool::start) {
            None => (None, None),
            Some(Ok((feed, writer))) => (Some(feed), Some(writer)),
            Some(Err(e)) => {
                // Streaming live matters more than the spool.
                tracing::error!("spool: {e}; streaming without a spool");
                hub.error("spool", e.to_string());
                (None, None)
            }
        };
        let mut media = StreamerMedia::new(
            &config,
            board,
            events,
            sockets,
            ssrc,
            session::run::cname(&config),
            hub.clone(),
            spool,
            spool_writer.as_ref().map(|w| w.spool()),
        );
        // The updater runs beside the session, whose fleet subscriptions
        // carry its wants and states (docs/protocol.md 12); with
        // `update.enabled: false` it only reports, refusing every want.
        let (links, updater_ends) = update::run::links();
        let updater = tokio::spawn(update::run::run(
            config.update.clone(),
            env!("CARGO_PKG_VERSION").to_owned(),
            links,
            stop_rx.clone(),
        ));
        let ran = session::run::run(
            &config,
            address,
            &mut media,
            hub.clone(),
            updater_ends,
            stop_rx,
        );
        if let Err(e) = ran.await {
            tracing::error!("session: {e}");
            hub.error("session", e.to_string());
            hub.set_state(AgentState::Error);
        }
        // Told to stop too (or its reports have nowhere to go): it ends
        // at its next wake.
        updater.abort();
        media.stop();
        // The sender samples and spools until here.
        media.shutdown();
        if let Some(w) = spool_writer {
            // Writes and syncs what the sender handed over last.
            w.stop();
        }
    });
    SessionTask {
        stop,
        task: Some(task),
    }
}

/// Load the config, or report why not and wait until the files change
/// (or SIGHUP). `None` when told to stop meanwhile.
async fn wait_for_config(
    opts: &RunOptions,
    shell: &mut Shell,
    signals: &mut Signals,
) -> Option<Config> {
    let mut reported = String::new();
    loop {
        match config::load_with_notes(&opts.files) {
            Ok((c, notes)) => {
                for n in notes {
                    tracing::warn!("{n}");
                }
                if !reported.is_empty() {
                    tracing::info!("config is valid now");
                }
                return Some(c);
            }
            Err(errors) => {
                let missing = opts.files.required.iter().all(|p| !p.exists());
                let state = if missing {
                    AgentState::NoConfig
                } else {
                    AgentState::ConfigError
                };
                let text = errors.to_string();
                if text != reported {
                    for e in &errors.0 {
                        tracing::error!("config: {e}");
                    }
                    tracing::error!(
                        "waiting for a fixed config (checked every {} s, or now on SIGHUP); status LED shows {} flashes",
                        opts.poll.as_secs_f64(),
                        led::flashes(state)
                    );
                    reported = text.clone();
                }
                shell.hub.set_state(state);
                shell.hub.error("config", text);
                shell.led(config::led_best_effort(&opts.files)).await;
                if let Err(e) = shell.socket(config::socket_best_effort(&opts.files)) {
                    tracing::error!("{e}");
                    return None;
                }
                let before = fingerprint(&opts.files);
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(opts.poll) => {
                            if fingerprint(&opts.files) != before {
                                break;
                            }
                        }
                        wake = signals.next() => match wake {
                            Wake::Stop => return None,
                            Wake::Reload => break,
                        },
                    }
                }
            }
        }
    }
}
