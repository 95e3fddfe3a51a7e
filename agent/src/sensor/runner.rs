//! One OS thread per sensor: open, read on a fixed schedule, publish to
//! the hand-off; on failure report, back off and reopen.
//!
//! Sensor reads block (I2C transfers, sysfs reads, measurement waits), so
//! they get their own thread: a hung chip stalls only its own thread, and
//! the sender sees the hand-off go stale. Failures never end the thread;
//! only `Runner::stop` does.

use super::{SensorConfig, SensorEnv};
use crate::backoff::Backoff;
use crate::handoff::SampleWriter;
use crate::status::StatusHub;
use sipsensor_protocol::IdGenerator;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// First and longest delay between reopen attempts.
pub const RETRY_INITIAL: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// A running sensor thread.
#[derive(Debug)]
pub struct Runner {
    name: String,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Retry timing, shortened in tests.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: RETRY_INITIAL,
            max: RETRY_MAX,
        }
    }
}

impl Runner {
    /// Start the thread for sensor `index` of the config.
    pub fn spawn(
        index: usize,
        config: SensorConfig,
        env: SensorEnv,
        writer: SampleWriter,
        hub: StatusHub,
        retry: RetryPolicy,
    ) -> std::io::Result<Runner> {
        let stop = Arc::new(AtomicBool::new(false));
        let name = config.name.clone();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sensor-{}", config.name))
            .spawn(move || run(index, &config, &env, writer, &hub, &flag, retry))?;
        Ok(Runner { name, stop, thread })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ask the thread to stop, without waiting.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.thread().unpark();
    }

    /// Ask the thread to stop and wait up to `wait` for it. `false` if it
    /// is still inside a hung read; it is then left behind (detached).
    pub fn stop(self, wait: Duration) -> bool {
        self.request_stop();
        self.wait(Instant::now() + wait)
    }

    /// Wait until `deadline` for a stopped thread to end.
    pub fn wait(self, deadline: Instant) -> bool {
        while !self.thread.is_finished() {
            if Instant::now() >= deadline {
                tracing::warn!(
                    "sensor {}: read still blocked; leaving its thread",
                    self.name
                );
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.thread.join();
        true
    }
}

/// Sleep until `deadline` or until stopped; `false` when stopped.
fn sleep_until(deadline: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Logs a failure once per episode: the first error and any different one
/// at `warn`, repeats at `debug`.
struct Reporter<'a> {
    name: &'a str,
    index: usize,
    hub: &'a StatusHub,
    last: Option<String>,
    failures: u64,
}

impl Reporter<'_> {
    fn failed(&mut self, what: &str, e: &super::SensorError, retry_in: Duration) {
        let msg = format!("{what}: {e}");
        self.failures += 1;
        if self.last.as_deref() != Some(msg.as_str()) {
            tracing::warn!(
                "sensor {}: {msg}; retrying in {:.1} s",
                self.name,
                retry_in.as_secs_f64()
            );
        } else {
            tracing::debug!(
                "sensor {}: {msg} (again, {} failures)",
                self.name,
                self.failures
            );
        }
        self.hub.sensor_failed(self.index, &msg);
        self.last = Some(msg);
    }

    fn ok(&mut self, what: &str) {
        if self.last.take().is_some() {
            tracing::info!(
                "sensor {}: {what} after {} failures",
                self.name,
                self.failures
            );
        } else {
            tracing::info!("sensor {}: {what}", self.name);
        }
        self.failures = 0;
    }
}

fn run(
    index: usize,
    config: &SensorConfig,
    env: &SensorEnv,
    mut writer: SampleWriter,
    hub: &StatusHub,
    stop: &AtomicBool,
    retry: RetryPolicy,
) {
    let mut backoff = Backoff::new(retry.initial, retry.max);
    let mut rng = IdGenerator::from_entropy();
    let mut rep = Reporter {
        name: &config.name,
        index,
        hub,
        last: None,
        failures: 0,
    };
    while !stop.load(Ordering::Relaxed) {
        let mut sensor = match config.open(env) {
            Ok(s) => {
                rep.ok("opened");
                s
            }
            Err(e) => {
                let d = backoff.next_delay(&mut rng);
                rep.failed("open", &e, d);
                if !sleep_until(Instant::now() + d, stop) {
                    return;
                }
                continue;
            }
        };
        let mut next = Instant::now();
        loop {
            if !sleep_until(next, stop) {
                return;
            }
            match sensor.read() {
                Ok(reading) => {
                    writer.publish(&reading);
                    hub.sensor_read(index);
                    backoff.reset();
                }
                Err(e) => {
                    let d = backoff.next_delay(&mut rng);
                    rep.failed("read", &e, d);
                    if !sleep_until(Instant::now() + d, stop) {
                        return;
                    }
                    break; // reopen: the chip may have been reset or replaced
                }
            }
            // Absolute schedule: no drift; after a long stall, skip the
            // missed reads instead of bursting to catch up.
            next += config.interval;
            let now = Instant::now();
            if next + config.interval < now {
                next = now;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::{self, Freshness};
    use crate::sensor::SensorKind;
    use crate::sensor::bme280::fake::FakeBme280;
    use crate::sensor::bme280::{
        Bme280Config, Calibration, Chip, ID_BME280, ID_BMP280, Mode, RawSample, Standby,
    };
    use crate::sensor::i2c::fake::FakeOpener;
    use crate::status::SensorState;

    fn fast() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(20),
        }
    }

    fn cal() -> Calibration {
        Calibration {
            t1: 27504,
            t2: 26435,
            t3: -1000,
            p1: 36477,
            p2: -10685,
            p3: 3024,
            p4: 2855,
            p5: 140,
            p6: -7,
            p7: 15500,
            p8: -14600,
            p9: 6000,
            ..Calibration::default()
        }
    }

    const RAW: RawSample = RawSample {
        adc_p: 415_148,
        adc_t: 519_888,
        adc_h: 0x8000,
    };

    /// Wait (bounded: 400 × 5 ms) for `cond`.
    fn eventually(mut cond: impl FnMut() -> bool) -> bool {
        for _ in 0..400 {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn wrong_chip_is_reported_and_retried_until_the_right_one_answers() {
        let opener = FakeOpener::new();
        let bus = opener.bus(1);
        // A BMP280 where a BME280 is configured.
        bus.attach(0x76, FakeBme280::new(ID_BMP280, &cal(), RAW));
        let config = SensorConfig {
            name: "env".into(),
            interval: Duration::from_millis(20),
            kind: SensorKind::Bme280(Bme280Config {
                chip: Chip::Bme280,
                bus: 1,
                address: 0x76,
                mode: Mode::Normal,
                oversampling: 1,
                filter: 0,
                standby: Standby::Ms0_5,
            }),
        };
        let env = SensorEnv {
            sysfs_root: "/nonexistent".into(),
            i2c: Arc::new(opener.clone()),
        };
        let hub = StatusHub::new();
        hub.set_sensors(vec![("env".into(), "bme280".into())]);
        let (w, mut r) = handoff::samples(3, Duration::from_secs(1));
        let runner = Runner::spawn(0, config, env, w, hub.clone(), fast()).unwrap();

        assert!(eventually(|| hub.snapshot().sensors[0].errors >= 2));
        let s = hub.snapshot();
        assert_eq!(s.sensors[0].state, SensorState::Failing);
        assert!(
            s.sensors[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("chip ID 0x58, expected 0x60"),
            "{s:?}"
        );
        let mut out = [None; 3];
        assert_eq!(r.sample(Instant::now(), &mut out), Freshness::Empty);

        // The technician swaps in the right chip: the runner recovers.
        bus.attach(0x76, FakeBme280::new(ID_BME280, &cal(), RAW));
        assert!(eventually(
            || r.sample(Instant::now(), &mut out) == Freshness::New
        ));
        assert_eq!(out[0], Some(25.08));
        assert!(eventually(
            || hub.snapshot().sensors[0].state == SensorState::Ok
        ));

        // It stops answering: reported again, values go stale, no crash.
        bus.set_answering(0x76, false);
        let errors = hub.snapshot().sensors[0].errors;
        assert!(eventually(|| hub.snapshot().sensors[0].errors > errors));
        bus.set_answering(0x76, true);
        let reads = hub.snapshot().sensors[0].reads;
        assert!(eventually(|| hub.snapshot().sensors[0].reads > reads + 2));
        assert!(runner.stop(Duration::from_secs(5)));
    }

    #[test]
    fn simulated_sensor_publishes_its_waveform() {
        let sim = crate::sensor::sim::SimConfig {
            seed: 9,
            channels: vec![crate::sensor::sim::SimChannel {
                name: "x".into(),
                unit: crate::units::Unit::VOLT,
                scale: 0.001,
                offset: 1.0,
                amplitude: 0.5,
                period: Duration::from_secs(1),
                noise: 0.0,
            }],
        };
        let config = SensorConfig {
            name: "sim".into(),
            interval: Duration::from_millis(5),
            kind: SensorKind::Simulated(sim.clone()),
        };
        let env = SensorEnv::system("/sys".into(), "/dev".into());
        let hub = StatusHub::new();
        hub.set_sensors(vec![("sim".into(), "simulated".into())]);
        let (w, mut r) = handoff::samples(1, Duration::from_secs(1));
        let runner = Runner::spawn(0, config, env, w, hub.clone(), fast()).unwrap();
        assert!(eventually(|| hub.snapshot().sensors[0].reads >= 3));
        let mut out = [None];
        r.sample(Instant::now(), &mut out);
        let v = out[0].unwrap();
        let possible: Vec<f64> = (0..10_000)
            .map(|k| sim.value(0, k, Duration::from_millis(5)))
            .collect();
        assert!(possible.contains(&v), "{v} is not a sample of the waveform");
        assert!(runner.stop(Duration::from_secs(5)));
    }
}
