//! The daemon's shared status: every shell of the daemon updates it, the
//! status socket snapshots it, the LED follows its state.
//!
//! Counters the real-time sender bumps per packet are atomics, so the hot
//! path never takes the hub's lock; everything else changes rarely and
//! sits behind a mutex.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};
use tokio::sync::watch;

use super::model::{
    AgentState, ErrorRecord, InputStatus, RegistrationStatus, RepairStatus, SensorState,
    SensorStatus, SessionStatus, Status, StatusChange, unix_ms,
};

/// Where the live stream's repair figures are read, at each snapshot: its
/// sender's own atomics (crate::stream), so the hot path bumps them once.
pub struct RepairSource(Box<dyn Fn() -> RepairStatus + Send>);

impl RepairSource {
    pub fn new(read: impl Fn() -> RepairStatus + Send + 'static) -> Self {
        RepairSource(Box::new(read))
    }
}

impl std::fmt::Debug for RepairSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepairSource")
    }
}

/// Totals the sender bumps without taking a lock.
#[derive(Debug, Default)]
pub struct Counters {
    pub packets_sent: AtomicU64,
    pub samples_sent: AtomicU64,
    pub samples_missing: AtomicU64,
    pub events_sent: AtomicU64,
    pub events_dropped: AtomicU64,
    pub backfill_packets: AtomicU64,
    pub backfill_bytes: AtomicU64,
    pub backfill_restarts: AtomicU64,
    pub spool_released_bytes: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    config_files: Vec<PathBuf>,
    registrations: Vec<RegistrationStatus>,
    sessions: Vec<SessionStatus>,
    /// The sender's counters when each session was shown.
    session_base: Vec<[u64; 3]>,
    sensors: Vec<SensorStatus>,
    inputs: Vec<InputStatus>,
    last_error: Option<ErrorRecord>,
    repair: Option<RepairSource>,
}

/// The daemon's shared status; cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusHub {
    inner: Arc<Mutex<Inner>>,
    counters: Arc<Counters>,
    state: Arc<watch::Sender<AgentState>>,
    started: Instant,
}

impl Default for StatusHub {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusHub {
    pub fn new() -> Self {
        StatusHub {
            inner: Arc::new(Mutex::new(Inner {
                config_files: Vec::new(),
                registrations: Vec::new(),
                sessions: Vec::new(),
                session_base: Vec::new(),
                sensors: Vec::new(),
                inputs: Vec::new(),
                last_error: None,
                repair: None,
            })),
            counters: Arc::default(),
            state: Arc::new(watch::channel(AgentState::Starting).0),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not take status reporting down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn set_state(&self, s: AgentState) {
        self.state.send_replace(s);
    }

    pub fn state(&self) -> AgentState {
        *self.state.borrow()
    }

    /// Follow state changes (the LED driver does).
    pub fn subscribe(&self) -> watch::Receiver<AgentState> {
        self.state.subscribe()
    }

    pub fn set_config_files(&self, files: Vec<PathBuf>) {
        self.lock().config_files = files;
    }

    /// Apply a change a sans-I/O part decided.
    pub fn apply(&self, change: StatusChange) {
        match change {
            StatusChange::State(state) => self.set_state(state),
            StatusChange::Error { source, message } => self.error(source, message),
        }
    }

    /// Record a failure as the last error.
    pub fn error(&self, source: &str, message: impl Into<String>) {
        self.lock().last_error = Some(ErrorRecord {
            at_unix_ms: unix_ms(SystemTime::now()),
            source: source.to_owned(),
            message: message.into(),
        });
    }

    /// Replace the sensor list (at start and after a reload).
    pub fn set_sensors(&self, sensors: Vec<(String, String)>) {
        self.lock().sensors = sensors
            .into_iter()
            .map(|(name, kind)| SensorStatus {
                name,
                kind,
                state: SensorState::Starting,
                reads: 0,
                errors: 0,
                last_error: None,
                last_read_unix_ms: None,
            })
            .collect();
    }

    pub fn sensor_read(&self, index: usize) {
        if let Some(s) = self.lock().sensors.get_mut(index) {
            s.state = SensorState::Ok;
            s.reads += 1;
            s.last_read_unix_ms = Some(unix_ms(SystemTime::now()));
        }
    }

    pub fn sensor_failed(&self, index: usize, message: &str) {
        let name = {
            let mut g = self.lock();
            let Some(s) = g.sensors.get_mut(index) else {
                return;
            };
            s.state = SensorState::Failing;
            s.errors += 1;
            s.last_error = Some(message.to_owned());
            s.name.clone()
        };
        self.error(&format!("sensor {name}"), message);
    }

    pub fn set_inputs(&self, inputs: Vec<(String, u32)>) {
        self.lock().inputs = inputs
            .into_iter()
            .map(|(name, pin)| InputStatus {
                name,
                pin,
                level: None,
                edges: 0,
            })
            .collect();
    }

    /// The level of an input at start (not an edge).
    pub fn input_level(&self, index: usize, level: bool) {
        if let Some(i) = self.lock().inputs.get_mut(index) {
            i.level = Some(level);
        }
    }

    pub fn input_edge(&self, index: usize, level: bool) {
        if let Some(i) = self.lock().inputs.get_mut(index) {
            i.level = Some(level);
            i.edges += 1;
        }
    }

    /// Insert or replace the registration for `aor`.
    pub fn set_registration(&self, r: RegistrationStatus) {
        let mut g = self.lock();
        match g.registrations.iter_mut().find(|x| x.aor == r.aor) {
            Some(x) => *x = r,
            None => g.registrations.push(r),
        }
    }

    /// Insert or replace the session with this Call-ID.
    /// Shows a session. Its packet and sample counts are the sender's
    /// totals since this call (one stream at a time per agent).
    pub fn set_session(&self, s: SessionStatus) {
        let c = &self.counters;
        let base = [
            c.packets_sent.load(Ordering::Relaxed),
            c.samples_sent.load(Ordering::Relaxed),
            c.samples_missing.load(Ordering::Relaxed),
        ];
        let mut g = self.lock();
        let i = match g.sessions.iter().position(|x| x.call_id == s.call_id) {
            Some(i) => {
                g.sessions[i] = s;
                i
            }
            None => {
                g.sessions.push(s);
                g.session_base.push(base);
                g.sessions.len() - 1
            }
        };
        if let Some(b) = g.session_base.get_mut(i) {
            *b = base;
        }
    }

    pub fn remove_session(&self, call_id: &str) {
        let mut g = self.lock();
        if let Some(i) = g.sessions.iter().position(|s| s.call_id == call_id) {
            g.sessions.remove(i);
            if i < g.session_base.len() {
                g.session_base.remove(i);
            }
        }
    }

    /// The stream sender that started last reports its repair figures.
    pub fn set_repair_source(&self, source: RepairSource) {
        self.lock().repair = Some(source);
    }

    pub fn snapshot(&self) -> Status {
        let g = self.lock();
        let c = &self.counters;
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            state: self.state(),
            uptime_s: self.started.elapsed().as_secs(),
            config_files: g.config_files.clone(),
            registrations: g.registrations.clone(),
            sessions: g
                .sessions
                .iter()
                .zip(g.session_base.iter().chain(std::iter::repeat(&[0u64; 3])))
                .map(|(s, base)| {
                    let mut s = s.clone();
                    s.packets_sent = c
                        .packets_sent
                        .load(Ordering::Relaxed)
                        .saturating_sub(base[0]);
                    s.samples_sent = c
                        .samples_sent
                        .load(Ordering::Relaxed)
                        .saturating_sub(base[1]);
                    s.samples_missing = c
                        .samples_missing
                        .load(Ordering::Relaxed)
                        .saturating_sub(base[2]);
                    s
                })
                .collect(),
            packets_sent: c.packets_sent.load(Ordering::Relaxed),
            samples_sent: c.samples_sent.load(Ordering::Relaxed),
            samples_missing: c.samples_missing.load(Ordering::Relaxed),
            events_sent: c.events_sent.load(Ordering::Relaxed),
            events_dropped: c.events_dropped.load(Ordering::Relaxed),
            backfill: super::model::BackfillStatus {
                packets: c.backfill_packets.load(Ordering::Relaxed),
                bytes: c.backfill_bytes.load(Ordering::Relaxed),
                restarts: c.backfill_restarts.load(Ordering::Relaxed),
                spool_released_bytes: c.spool_released_bytes.load(Ordering::Relaxed),
            },
            repair: g.repair.as_ref().map(|r| (r.0)()).unwrap_or_default(),
            sensors: g.sensors.clone(),
            inputs: g.inputs.clone(),
            last_error: g.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::model::{Direction, RegistrationState};
    use crate::status::render;

    #[test]
    fn hub_collects_everything_into_a_snapshot() {
        let hub = StatusHub::new();
        assert_eq!(hub.state(), AgentState::Starting);
        let mut rx = hub.subscribe();
        hub.set_state(AgentState::Registering);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), AgentState::Registering);
        hub.set_config_files(vec!["/etc/a.yaml".into()]);
        hub.set_sensors(vec![("env".into(), "bme280".into())]);
        hub.sensor_read(0);
        hub.sensor_failed(0, "no answer");
        hub.sensor_failed(7, "ignored: no such sensor");
        hub.set_inputs(vec![("door".into(), 17)]);
        hub.input_edge(0, true);
        hub.counters().packets_sent.fetch_add(3, Ordering::Relaxed);
        hub.set_registration(RegistrationStatus {
            aor: "sip:a@b".into(),
            registrar: "sip:b".into(),
            state: RegistrationState::Registering,
            expires_in_s: None,
            last_response: None,
            failures: 0,
        });
        hub.set_registration(RegistrationStatus {
            aor: "sip:a@b".into(),
            registrar: "sip:b".into(),
            state: RegistrationState::Registered,
            expires_in_s: Some(3600),
            last_response: Some("200 OK".into()),
            failures: 0,
        });
        let sess = SessionStatus {
            call_id: "c1".into(),
            peer: "sip:collector@b".into(),
            direction: Direction::Outgoing,
            state: "streaming".into(),
            rate_hz: 100,
            channels: vec!["env.temperature".into()],
            packets_sent: 1,
            samples_sent: 2,
            samples_missing: 0,
            started_unix_ms: 1,
        };
        hub.set_session(sess.clone());
        let s = hub.snapshot();
        assert_eq!(s.state, AgentState::Registering);
        assert_eq!(s.registrations.len(), 1);
        assert_eq!(s.registrations[0].state, RegistrationState::Registered);
        // A session counts what the sender did since it was shown.
        let since_shown = SessionStatus {
            packets_sent: 0,
            samples_sent: 0,
            ..sess.clone()
        };
        assert_eq!(s.sessions, vec![since_shown]);
        assert_eq!(s.packets_sent, 3);
        hub.counters().packets_sent.fetch_add(4, Ordering::Relaxed);
        assert_eq!(hub.snapshot().sessions[0].packets_sent, 4);
        hub.remove_session("c1");
        assert!(hub.snapshot().sessions.is_empty());
        assert_eq!(s.sensors[0].reads, 1);
        assert_eq!(s.sensors[0].errors, 1);
        assert_eq!(s.sensors[0].state, SensorState::Failing);
        assert_eq!(s.inputs[0].level, Some(true));
        let e = s.last_error.clone().unwrap();
        assert_eq!(
            (e.source.as_str(), e.message.as_str()),
            ("sensor env", "no answer")
        );
        hub.remove_session("c1");
        assert!(hub.snapshot().sessions.is_empty());

        let text = render(&s);
        for needle in [
            "state:     registering",
            "sip:a@b at sip:b: Registered, expires in 3600 s, last: 200 OK",
            "Outgoing sip:collector@b [c1]: streaming, 100 Hz, 1 channels",
            "env (bme280): Failing, 1 reads, 1 errors, last error: no answer",
            "input door (GPIO 17): active, 1 edges",
            "last error: no answer (sensor env",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn the_streams_repair_figures_show_in_status_and_its_text() {
        let hub = StatusHub::new();
        assert_eq!(hub.snapshot().repair, RepairStatus::default());
        let text = render(&hub.snapshot());
        assert!(text.contains("repair:    0 NACKs (0 refused), 0 packets resent, 0 given up; collector's mark -, first live sample -"), "{text}");
        hub.set_repair_source(RepairSource::new(|| RepairStatus {
            nacks_received: 4,
            nacks_refused: 1,
            packets_resent: 6,
            given_up: 2,
            committed_mark_ns: Some(1_700_000_000_000_000_000),
            first_live_ns: Some(1_700_000_001_000_000_000),
        }));
        let s = hub.snapshot();
        assert_eq!((s.repair.packets_resent, s.repair.given_up), (6, 2));
        let text = render(&s);
        assert!(
            text.contains(
                "repair:    4 NACKs (1 refused), 6 packets resent, 2 given up; \
                 collector's mark 1700000000000000000 ns, first live sample 1700000001000000000 ns"
            ),
            "{text}"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"packets_resent\":6"), "{json}");
    }

    #[test]
    fn applied_changes_show_as_state_and_last_error() {
        let hub = StatusHub::new();
        let rx = hub.subscribe();
        hub.apply(StatusChange::State(AgentState::Error));
        hub.apply(StatusChange::Error {
            source: "call",
            message: "the collector refused the call: 403 Forbidden".into(),
        });
        assert!(rx.has_changed().unwrap());
        let s = hub.snapshot();
        assert_eq!(s.state, AgentState::Error);
        let e = s.last_error.unwrap();
        assert_eq!(
            (e.source.as_str(), e.message.as_str()),
            ("call", "the collector refused the call: 403 Forbidden")
        );
    }
}
