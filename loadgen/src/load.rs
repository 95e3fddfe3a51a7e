//! A load run: N sensors register, call and stream for a while, then hang
//! up; the figures of `make bench-collector` (docs/benchmarks.md).

mod fleet;

pub use self::fleet::LoadFleet;
use crate::pump::MediaPump;
use crate::sensor::{LoadBackfill, SensorConfig, SensorError, SimSensor, standard_stream};
use crate::sockets::RtpSockets;
use sipsensor_runtime::sip_transport::TlsConfig;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The collector's SIP address.
    pub collector: SocketAddr,
    pub domain: String,
    pub sensors: usize,
    pub prefix: String,
    pub password_prefix: String,
    pub rate_hz: u32,
    pub channels: usize,
    pub samples_per_packet: u8,
    /// Steady-state measurement window.
    pub duration: Duration,
    /// Addresses the sensors' sockets are spread over.
    pub ips: Vec<IpAddr>,
    /// Sensors per RTP socket.
    pub per_rtp_socket: usize,
    /// REGISTERs or INVITEs in flight at once.
    pub concurrency: usize,
    /// Collector process to measure (CPU, RSS).
    pub collector_pid: Option<u32>,
    /// Collector's /metrics (host:port) for the stored-row count.
    pub metrics: Option<SocketAddr>,
    /// Threads sending RTP (streams are spread over them).
    pub pumps: usize,
    /// SIP over TLS to `collector` (a TLS address then) and SRTP, each
    /// sensor on its own connection, as boards are; `None`: UDP and RTP.
    pub tls: Option<TlsConfig>,
    /// The first this many sensors offer docs/protocol.md 11 and backfill
    /// `backfill` after their call, all at once (issue #15's benchmark).
    pub backfill_sensors: usize,
    pub backfill: LoadBackfill,
    /// Every sensor answers the fleet subscription (docs/protocol.md 12)
    /// with a fake install; `None`: they serve no subscription.
    pub fleet: Option<LoadFleet>,
    /// Every sensor pings the collector inside its session this often and
    /// sets a lost session up again (REGISTER, call), as the agent does
    /// (docs/protocol.md 6.1): a run that outlives a collector restart.
    pub keep_session: Option<Duration>,
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub sensors: usize,
    pub registered: usize,
    pub streaming: usize,
    pub registrations_per_s: f64,
    pub sessions_per_s: f64,
    /// RTP packets per second sent in the window.
    pub packets_per_s: f64,
    pub packets_sent: u64,
    /// Packets the collector's last receiver reports count as lost.
    pub packets_lost: i64,
    /// Streams whose final receiver report did not come back.
    pub missing_reports: usize,
    pub samples_sent: u64,
    /// Of `samples_sent`, those backfilled (each counted once), and when
    /// the collector's mark passed the last backfill (seconds after its
    /// call; the latest of the streams that got there).
    pub backfill_samples_sent: u64,
    pub backfill_done_s: Option<f64>,
    /// Backfilling streams whose mark passed their whole backfill.
    pub backfills_done: usize,
    /// Backfilled samples sent again from a mark that stopped (11.7).
    pub backfill_samples_again: u64,
    /// Samples the collector committed (from its metrics), if known, and
    /// of them those resent or backfilled.
    pub samples_stored: Option<u64>,
    pub late_samples_stored: Option<u64>,
    /// Backfill packets the collector refused while its storage was busy.
    pub backfill_deferred: Option<u64>,
    pub collector_cpu_percent: Option<f64>,
    pub collector_rss_mb: Option<f64>,
    pub collector_peak_rss_mb: Option<f64>,
    pub loadgen_cpu_percent: Option<f64>,
    pub window_s: f64,
    /// The machine's 1-minute load average at the end of the window: these
    /// machines are shared, and a busy neighbour shows here.
    pub load_average: Option<f64>,
    /// Largest delay of an RTP packet behind its due time over the run: a
    /// late pump sends what is overdue at once, a burst no sensor fleet
    /// sends.
    pub pump_max_late_ms: f64,
    /// Packets the kernel refused to send (counted as sent).
    pub send_errors: u64,
    /// Whether the streams were SRTP (signalled over TLS).
    pub srtp: bool,
    /// Packets the collector refused as SRTP (its metrics), if known.
    pub srtp_rejected: Option<u64>,
    /// With a simulated fleet: sensors per `VERSION UPDATE` at the end of
    /// the window.
    pub fleet: std::collections::BTreeMap<String, usize>,
}

/// 12345 as "12,345".
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl LoadReport {
    /// Header of [`Self::table_row`].
    pub const TABLE_HEADER: &'static str = "| store | streams | set-up (sessions/s) | packets/s | packets lost | samples stored / sent | collector CPU (% of a core) | collector RSS (peak) | load generator CPU | load average |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

    /// One markdown table row for docs/benchmarks.md.
    pub fn table_row(&self, store: &str) -> String {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} %"));
        let stored = match (self.samples_stored, self.late_samples_stored) {
            (None, _) => format!("- / {}", thousands(self.samples_sent)),
            // Live and backfilled apart: live must all be there at the end,
            // backfill may still be on its way.
            (Some(all), Some(late)) if self.backfill_samples_sent > 0 => format!(
                "{} / {} live, {} / {} backfilled",
                thousands(all.saturating_sub(late)),
                thousands(self.samples_sent - self.backfill_samples_sent),
                thousands(late),
                thousands(self.backfill_samples_sent)
            ),
            (Some(all), _) => format!("{} / {}", thousands(all), thousands(self.samples_sent)),
        };
        let streams = if self.streaming == self.sensors {
            thousands(self.sensors as u64)
        } else {
            format!(
                "{} of {}",
                thousands(self.streaming as u64),
                thousands(self.sensors as u64)
            )
        };
        let mut lost = if self.missing_reports > 0 {
            format!(
                "{} ({} reports missing)",
                self.packets_lost, self.missing_reports
            )
        } else {
            self.packets_lost.to_string()
        };
        if let Some(n) = self.srtp_rejected.filter(|n| *n > 0) {
            lost.push_str(&format!(" ({n} refused as SRTP)"));
        }
        format!(
            "| {store} | {streams} | {:.0} | {} | {lost} | {stored} | {} | {} MB ({} MB) | {} | {} |",
            self.sessions_per_s,
            thousands(self.packets_per_s.round() as u64),
            pct(self.collector_cpu_percent),
            self.collector_rss_mb
                .map_or("-".into(), |v| format!("{v:.0}")),
            self.collector_peak_rss_mb
                .map_or("-".into(), |v| format!("{v:.0}")),
            pct(self.loadgen_cpu_percent),
            self.load_average.map_or("-".into(), |v| format!("{v:.1}")),
        )
    }

    /// What a table row does not show but a reader of it must know: the
    /// load generator itself fell behind (over 100 ms) or failed to send.
    pub fn caveat(&self, store: &str) -> Option<String> {
        if self.pump_max_late_ms <= 100.0 && self.send_errors == 0 {
            return None;
        }
        Some(format!(
            "  ({store}, {} streams: the load generator fell up to {:.0} ms behind its schedule \
             and then sent the overdue packets at once; {} send errors)",
            thousands(self.sensors as u64),
            self.pump_max_late_ms,
            self.send_errors
        ))
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "pump_max_late_ms": self.pump_max_late_ms,
            "send_errors": self.send_errors,
            "sensors": self.sensors,
            "registered": self.registered,
            "streaming": self.streaming,
            "registrations_per_s": self.registrations_per_s,
            "sessions_per_s": self.sessions_per_s,
            "packets_per_s": self.packets_per_s,
            "packets_sent": self.packets_sent,
            "packets_lost": self.packets_lost,
            "missing_reports": self.missing_reports,
            "samples_sent": self.samples_sent,
            "samples_stored": self.samples_stored,
            "collector_cpu_percent": self.collector_cpu_percent,
            "collector_rss_mb": self.collector_rss_mb,
            "collector_peak_rss_mb": self.collector_peak_rss_mb,
            "loadgen_cpu_percent": self.loadgen_cpu_percent,
            "window_s": self.window_s,
            "load_average": self.load_average,
            "srtp": self.srtp,
            "srtp_rejected": self.srtp_rejected,
            "backfill_samples_sent": self.backfill_samples_sent,
            "backfill_done_s": self.backfill_done_s,
            "backfills_done": self.backfills_done,
            "backfill_samples_again": self.backfill_samples_again,
            "late_samples_stored": self.late_samples_stored,
            "backfill_deferred": self.backfill_deferred,
            "fleet": self.fleet,
        })
    }
}

/// user+system CPU time of a process, in clock ticks (USER_HZ = 100).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted after the command name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `Vm*` line of /proc/PID/status in MB.
pub fn vm_mb(pid: &str, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// GET /metrics over plain HTTP/1.0: the response.
fn metrics_text(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// GET /metrics over plain HTTP/1.0 and the value of a sample line.
pub fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    metrics_text(addr)?
        .lines()
        .find_map(|l| l.strip_prefix(name).filter(|v| v.starts_with(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// The sum of a metric over all its label sets; 0 when it has none (the
/// collector leaves out a family before its first count). `None` when
/// /metrics cannot be read.
pub fn metric_sum(addr: SocketAddr, name: &str) -> Option<f64> {
    Some(sum_of(&metrics_text(addr)?, name))
}

fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The credentials file for `n` sensors (collector's format).
pub fn credentials_yaml(n: usize, prefix: &str, password_prefix: &str) -> String {
    let mut s = String::with_capacity(n * 40 + 8);
    s.push_str("users:\n");
    for i in 0..n {
        s.push_str(&format!("  {prefix}{i:05}: {password_prefix}{i:05}\n"));
    }
    s
}

/// Why the load could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Pump(#[source] std::io::Error),
    #[error("RTP socket: {0}")]
    RtpSocket(#[source] std::io::Error),
    #[error("sensor {index}: {source}")]
    Sensor {
        index: usize,
        #[source]
        source: SensorError,
    },
}

/// Runs the load; progress on stderr.
pub async fn run(o: LoadOptions) -> Result<LoadReport, LoadError> {
    let pumps = (0..o.pumps.max(1))
        .map(|_| MediaPump::start())
        .collect::<Result<Vec<_>, _>>()
        .map_err(LoadError::Pump)?;
    let ips = if o.ips.is_empty() {
        vec![IpAddr::from([127, 0, 0, 1])]
    } else {
        o.ips.clone()
    };
    let pool = RtpSockets::new(ips.clone(), o.per_rtp_socket);
    let mut sensors = Vec::with_capacity(o.sensors);
    // RFC 3263 4.1: the transport parameter picks TLS at the address.
    let uri_params = if o.tls.is_some() {
        ";transport=tls"
    } else {
        ""
    };
    for i in 0..o.sensors {
        let rtp = pool.take().map_err(LoadError::RtpSocket)?;
        let cfg = SensorConfig {
            aor: format!("sip:{}{i:05}@{}", o.prefix, o.domain),
            username: format!("{}{i:05}", o.prefix),
            password: format!("{}{i:05}", o.password_prefix),
            sip_ip: ips[i % ips.len()],
            registrar: Some(format!("sip:{}{uri_params}", o.collector)),
            collector: Some(format!("sip:collector@{}{uri_params}", o.collector)),
            expires: 3600,
            capabilities: standard_stream(o.channels, o.rate_hz, o.samples_per_packet),
            seed: i as u64,
        };
        let pump = pumps[i % pumps.len()].clone();
        let started = match (&o.fleet, &o.tls) {
            (Some(fleet), tls) => {
                SimSensor::start_with_fleet(cfg, tls.clone(), fleet.sensor(i), rtp, pump).await
            }
            (None, Some(tls)) => SimSensor::start_over_tls(cfg, tls.clone(), rtp, pump).await,
            (None, None) => SimSensor::start(cfg, rtp, pump).await,
        };
        let s = started.map_err(|source| LoadError::Sensor { index: i, source })?;
        // The last ones: called after every other stream is up, so their
        // backfills run at once beside the steady live load.
        if i >= o.sensors.saturating_sub(o.backfill_sensors) {
            s.backfill(o.backfill).await;
        }
        if let Some(every) = o.keep_session {
            s.keep_session(every).await;
        }
        sensors.push(Arc::new(s));
    }
    eprintln!("{} sensors started", sensors.len());
    let mut report = LoadReport {
        sensors: o.sensors,
        srtp: o.tls.is_some(),
        ..LoadReport::default()
    };

    // Phase 1: REGISTER (digest), then 2: INVITE (digest), bounded in flight.
    let limit = Arc::new(Semaphore::new(o.concurrency.max(1)));
    for phase in ["register", "call"] {
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for s in &sensors {
            let s = s.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await.ok()?;
                let r = if phase == "register" {
                    tokio::time::timeout(Duration::from_secs(60), s.register()).await
                } else {
                    tokio::time::timeout(Duration::from_secs(60), async {
                        s.call().await.map(|_| ())
                    })
                    .await
                };
                match r {
                    Ok(Ok(())) => Some(()),
                    Ok(Err(e)) => {
                        eprintln!("{} {phase}: {e}", s.config.aor);
                        None
                    }
                    Err(_) => {
                        eprintln!("{} {phase}: timed out", s.config.aor);
                        None
                    }
                }
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            if matches!(r, Ok(Some(()))) {
                ok += 1;
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let rate = ok as f64 / secs.max(1e-9);
        eprintln!(
            "{phase}: {ok} of {} in {secs:.1} s ({rate:.0}/s)",
            o.sensors
        );
        if phase == "register" {
            report.registered = ok;
            report.registrations_per_s = rate;
        } else {
            report.streaming = ok;
            report.sessions_per_s = rate;
        }
    }

    // Phase 3: the steady window, after a short settling time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = o.collector_pid.map(|p| p.to_string());
    let sent = |v: &[Arc<SimSensor>]| v.iter().map(|s| s.counters.packets()).sum::<u64>();
    let c0 = pid.as_deref().and_then(cpu_ticks);
    let l0 = cpu_ticks("self");
    let p0 = sent(&sensors);
    let t0 = Instant::now();
    if o.fleet.is_some() {
        fleet::sleep_reporting(&sensors, o.duration).await;
        report.fleet = fleet::summary(&sensors);
    } else {
        tokio::time::sleep(o.duration).await;
    }
    let window = t0.elapsed().as_secs_f64();
    let p1 = sent(&sensors);
    let c1 = pid.as_deref().and_then(cpu_ticks);
    let l1 = cpu_ticks("self");
    report.window_s = window;
    report.load_average = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    report.packets_per_s = (p1 - p0) as f64 / window;
    if let (Some(a), Some(b)) = (c0, c1) {
        report.collector_cpu_percent = Some((b - a) as f64 / window);
    }
    if let (Some(a), Some(b)) = (l0, l1) {
        report.loadgen_cpu_percent = Some((b - a) as f64 / window);
    }
    if let Some(p) = pid.as_deref() {
        report.collector_rss_mb = vm_mb(p, "VmRSS:");
        report.collector_peak_rss_mb = vm_mb(p, "VmHWM:");
    }

    // Phase 4: hang up; the collector's last RR (with its BYE) per stream.
    let before: Vec<u64> = sensors
        .iter()
        .map(|s| s.counters.rr_count.load(Ordering::Relaxed))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for s in &sensors {
        let s = s.clone();
        let limit = limit.clone();
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await.ok();
            s.hangup().await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting = sensors
            .iter()
            .zip(&before)
            .filter(|(s, b)| {
                s.counters.packets() > 0 && s.counters.rr_count.load(Ordering::Relaxed) <= **b
            })
            .count();
        if waiting == 0 || Instant::now() > deadline {
            report.missing_reports = waiting;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (s, b) in sensors.iter().zip(&before) {
        let sent = s.counters.packets();
        report.packets_sent += sent;
        let backfilled = s.counters.backfill_samples.load(Ordering::Relaxed);
        report.samples_sent += s.counters.samples.load(Ordering::Relaxed) + backfilled;
        report.backfill_samples_sent += backfilled;
        report.backfill_samples_again += s.counters.backfill_samples_again.load(Ordering::Relaxed);
        let done = s.counters.backfill_done_unix_ns.load(Ordering::Relaxed);
        if done > 0 {
            report.backfills_done += 1;
            let took = (done - s.counters.start_unix_ns.load(Ordering::Relaxed)) as f64 / 1e9;
            report.backfill_done_s = Some(report.backfill_done_s.map_or(took, |t| t.max(took)));
        }
        report.send_errors += s.counters.send_errors.load(Ordering::Relaxed);
        let final_report = s.counters.rr_count.load(Ordering::Relaxed) > *b;
        if let (true, Some(r)) = (final_report, s.counters.received_per_report()) {
            report.packets_lost += sent as i64 - r as i64;
        }
    }
    if let Some(m) = o.metrics {
        // Wait for the writer to commit everything handed to it.
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = None;
        loop {
            let pending = metric(m, "sipsensor_collector_pending_rows").unwrap_or(0.0);
            let stored = metric(m, "sipsensor_collector_samples_stored_total");
            if (pending == 0.0 && stored.is_some() && stored == last) || Instant::now() > deadline {
                report.samples_stored = stored.map(|v| v as u64);
                report.late_samples_stored =
                    metric(m, "sipsensor_collector_samples_stored_late_total").map(|v| v as u64);
                report.backfill_deferred = metrics_text(m).map(|t| {
                    sum_of(
                        &t,
                        "sipsensor_collector_packets_rejected_total{reason=\"backfill_deferred\"}",
                    ) as u64
                });
                report.srtp_rejected =
                    metric_sum(m, "sipsensor_collector_srtp_rejected_total").map(|v| v as u64);
                break;
            }
            last = stored;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    report.pump_max_late_ms = pumps
        .iter()
        .map(|p| p.max_late().as_secs_f64() * 1e3)
        .fold(0.0, f64::max);
    for p in &pumps {
        p.quit();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_readers_and_credentials() {
        assert!(cpu_ticks("self").is_some());
        assert!(vm_mb("self", "VmRSS:").unwrap() > 0.0);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        let y = credentials_yaml(2, "s-", "p-");
        assert_eq!(y, "users:\n  s-00000: p-00000\n  s-00001: p-00001\n");
    }

    #[test]
    fn the_row_splits_live_and_backfilled_samples_when_there_was_backfill() {
        let mut r = LoadReport {
            sensors: 10,
            streaming: 10,
            samples_sent: 1_500,
            samples_stored: Some(1_200),
            late_samples_stored: Some(200),
            ..LoadReport::default()
        };
        assert!(r.table_row("sqlite").contains("| 1,200 / 1,500 |"));
        r.backfill_samples_sent = 500;
        let row = r.table_row("sqlite");
        assert!(
            row.contains("| 1,000 / 1,000 live, 200 / 500 backfilled |"),
            "{row}"
        );
        r.samples_stored = None;
        assert!(r.table_row("sqlite").contains("| - / 1,500 |"));
    }

    #[test]
    fn a_labelled_metric_is_summed_over_its_label_sets_and_only_its_own() {
        let text = "# TYPE x counter\n\
                    x_total{reason=\"replay\"} 3\n\
                    x_total{reason=\"authentication\"} 4\n\
                    x_total_other 100\n\
                    y_total 9\n";
        assert_eq!(sum_of(text, "x_total"), 7.0);
        assert_eq!(sum_of(text, "y_total"), 9.0);
        assert_eq!(sum_of(text, "z_total"), 0.0);
    }
}
