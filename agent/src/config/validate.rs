//! Semantic checks on the merged raw config, producing a `Config`.
//!
//! Every problem is collected (not just the first) with the path of the key
//! it concerns; `config::resolve` turns the path into file:line:column.

use super::locate::{KeyPath, Target};
use super::raw::*;
use super::*;
use crate::sensor::SensorConfig;
use sipsensor_runtime::sip_transport::tls::IdentityFiles;

mod sensors;
use sensors::sensors;
pub use sensors::{MAX_I2C_BUS, channel_keys, sensor_keys, type_name};

/// Highest sysfs GPIO number accepted (global numbering; boards with
/// dynamically numbered chips start at 512).
pub const MAX_GPIO: u32 = 4095;
/// Channels × samples per packet: keeps a packet of 4-byte samples near
/// 1 KB, under the 1280-byte IPv6 minimum MTU with headers.
pub const MAX_SAMPLES_PER_PACKET_TOTAL: u32 = 256;

/// The agent's URIs do not carry the transport: `sip.transport` does (TLS
/// by default), and `sips:` URIs are not taken yet.
const TLS_MISSING: &str = "`sips:` URIs are not supported; write `sip:` (the transport is `sip.transport`, TLS by default)";

struct V {
    diags: Vec<Diag>,
}

impl V {
    fn err(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diags.push(Diag {
            path,
            target: Target::Value,
            message: message.into(),
        });
    }

    fn err_key(&mut self, path: KeyPath, message: impl Into<String>) {
        self.diags.push(Diag {
            path,
            target: Target::Key,
            message: message.into(),
        });
    }

    fn uri(&mut self, path: KeyPath, text: &str, need_user: bool) -> Option<SipUri> {
        match SipUri::parse(text) {
            Err(why) => {
                self.err(path, format!("`{text}` is not a SIP URI: {why}"));
                None
            }
            Ok(u) if u.is_secure() => {
                self.err(path, TLS_MISSING);
                None
            }
            Ok(u) if need_user && u.user().is_none() => {
                self.err(
                    path,
                    format!("`{text}` has no user part; expected e.g. sip:sensor-0001@example.net"),
                );
                None
            }
            Ok(u) => Some(u),
        }
    }

    fn opt_uri(&mut self, path: KeyPath, text: &Option<String>) -> Option<SipUri> {
        text.as_deref().and_then(|t| self.uri(path, t, false))
    }

    fn range(&mut self, path: KeyPath, v: u32, lo: u32, hi: u32, what: &str) -> bool {
        if v < lo || v > hi {
            self.err(path, format!("{what} must be {lo} to {hi}, got {v}"));
            return false;
        }
        true
    }

    fn name(&mut self, path: KeyPath, name: &str, what: &str) -> bool {
        let ok = name.len() <= 32
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
        if !ok {
            self.err(
                path,
                format!(
                    "{what} `{name}` must be 1-32 characters of a-z, 0-9, `_` or `-`, starting with a letter"
                ),
            );
        }
        ok
    }
}

pub(super) fn validate(raw: &RawConfig) -> Result<Config, Vec<Diag>> {
    let mut v = V { diags: Vec::new() };
    let root = KeyPath::root();

    let identity = identity(&mut v, &raw.identity, &root.key("identity"));
    let sensors = sensors(&mut v, &raw.sensors, &root.key("sensors"));
    let gpio = gpio(&mut v, &raw.gpio, &root.key("gpio"), &raw.sensors);
    let stream = stream(&mut v, &raw.stream, &root.key("stream"), &sensors);
    if raw.sensors.is_empty() && raw.gpio.inputs.is_empty() {
        v.err_key(
            root.key("sensors"),
            "nothing to stream: add an entry under `sensors:` or `gpio.inputs:`",
        );
    }
    let sip = sip(&mut v, &raw.sip, &root.key("sip"), identity.as_ref());

    let rt = &raw.realtime;
    let rtp = root.key("realtime");
    v.range(
        rtp.key("priority"),
        rt.priority,
        1,
        99,
        "SCHED_FIFO priority",
    );
    if let Some(cpu) = rt.cpu {
        v.range(rtp.key("cpu"), cpu, 0, 1023, "CPU index");
    }
    // Below a second a peer reporting every second (docs/protocol.md 6.1)
    // is declared dead at its first late report.
    v.range(
        root.key("media").key("peer_timeout_ms"),
        raw.media.peer_timeout_ms,
        1000,
        60000,
        "peer timeout (milliseconds)",
    );

    let socket = PathBuf::from(&raw.status.socket);
    // sun_path holds 108 bytes including the terminating NUL.
    if !socket.is_absolute() || raw.status.socket.len() > 107 {
        v.err(
            root.key("status").key("socket"),
            format!(
                "`{}` must be an absolute path of at most 107 bytes",
                raw.status.socket
            ),
        );
    }
    if !Path::new(&raw.secrets_file).is_absolute() {
        v.err(
            root.key("secrets_file"),
            format!("`{}` must be an absolute path", raw.secrets_file),
        );
    }

    let spool = match spool::check(&raw.spool, &raw.stream) {
        Ok(s) => s,
        Err(errors) => {
            for (key, message) in errors {
                v.err(root.key("spool").key(key), message);
            }
            None
        }
    };

    let update = match update::check(&raw.update, &raw.sip.ca_file) {
        Ok(u) => Some(u),
        Err(errors) => {
            for (key, message) in errors {
                v.err(root.key("update").key(key), message);
            }
            None
        }
    };

    let level = match raw.logging.level {
        RawLevel::Error => LogLevel::Error,
        RawLevel::Warn => LogLevel::Warn,
        RawLevel::Info => LogLevel::Info,
        RawLevel::Debug => LogLevel::Debug,
        RawLevel::Trace => LogLevel::Trace,
    };

    match (identity, sip, stream, update) {
        (Some(identity), Some(sip), Some(stream), Some(update)) if v.diags.is_empty() => {
            Ok(Config {
                identity,
                sip,
                stream,
                sensors: sensors.into_iter().flatten().collect(),
                gpio,
                realtime: RealtimeConfig {
                    priority: u8::try_from(rt.priority).unwrap_or(50),
                    cpu: rt.cpu.and_then(|c| u16::try_from(c).ok()),
                },
                media: MediaConfig {
                    srtp: raw.media.srtp.map(|s| match s {
                        RawSrtp::Required => SrtpPolicy::Required,
                        RawSrtp::Optional => SrtpPolicy::Optional,
                        RawSrtp::Off => SrtpPolicy::Off,
                    }),
                    peer_timeout: Duration::from_millis(u64::from(raw.media.peer_timeout_ms)),
                },
                logging: LoggingConfig { level },
                status: StatusConfig { socket },
                spool,
                update,
                sources: Vec::new(),
            })
        }
        _ => Err(v.diags),
    }
}

fn identity(v: &mut V, raw: &RawIdentity, path: &KeyPath) -> Option<Identity> {
    if let Some(d) = &raw.display_name
        && (d.chars().count() > 64 || d.chars().any(char::is_control))
    {
        v.err(
            path.key("display_name"),
            "must be at most 64 characters without control characters",
        );
    }
    let Some(aor) = &raw.aor else {
        v.err(
            path.key("aor"),
            "missing: the sensor's address of record, e.g. `aor: sip:sensor-0001@example.net`",
        );
        return None;
    };
    let aor = v.uri(path.key("aor"), aor, true)?;
    Some(Identity {
        aor,
        display_name: raw.display_name.clone(),
    })
}

fn sip(v: &mut V, raw: &RawSip, path: &KeyPath, identity: Option<&Identity>) -> Option<SipConfig> {
    let registrar = v.opt_uri(path.key("registrar"), &raw.registrar);
    let outbound_proxy = v.opt_uri(path.key("outbound_proxy"), &raw.outbound_proxy);
    let collector = v.opt_uri(path.key("collector"), &raw.collector);
    for (i, user) in raw.callers.iter().enumerate() {
        if !valid_username(user) {
            v.err(
                path.key("callers").index(i),
                "must be 1-64 characters without spaces, quotes or control characters",
            );
        }
    }
    let tls = sip_tls(v, raw, path);
    // Over UDP a source address proves nothing, so only a TCP/TLS flow to
    // a proxy can stand in for the callers' credentials.
    let flow = raw.trust_proxy_flow
        && !matches!(raw.transport, RawTransport::Udp)
        && (raw.registrar.is_some() || raw.outbound_proxy.is_some());
    if raw.collector.is_none() && raw.callers.is_empty() && !flow {
        v.err_key(
            path.clone(),
            "nobody to stream to: set `collector` (the agent calls it), `callers` \
             (digest users that may call the agent) or `transport: tls` (or `transport: tcp`) with a \
             `registrar` (calls on the agent's own connection to it are trusted)",
        );
    }
    // The agent opens TLS connections but accepts none (it holds no server
    // certificate), so under TLS it is called only over its own connection
    // to a registrar or proxy. Called directly, the calls would come in
    // clear text on `bind`: that must be asked for (`transport: udp`), not
    // fallen back to.
    if matches!(raw.transport, RawTransport::Tls)
        && !raw.callers.is_empty()
        && raw.registrar.is_none()
        && raw.outbound_proxy.is_none()
    {
        v.err(
            path.key("callers"),
            "being called directly needs a transport that accepts calls, and over TLS (the default \
             `sip.transport`) the agent accepts none: set `registrar` (or `outbound_proxy`) so the \
             calls come over its own TLS connection, or write `transport: udp` to be called in clear \
             text (see docs/security.md)",
        );
    }
    let caller_realm = raw
        .caller_realm
        .clone()
        .or_else(|| identity.map(|i| default_realm(&i.aor)));
    let bind = match raw.bind.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            v.err(
                path.key("bind"),
                format!(
                    "`{}` is not an address:port (e.g. 0.0.0.0:5060 or [::]:5060)",
                    raw.bind
                ),
            );
            None
        }
    };
    let over_tls = matches!(raw.transport, RawTransport::Tls);
    // Over TLS the agent listens nowhere by default: it accepts no TLS, and
    // a plain UDP/TCP port would take calls (and hand out SDES keys) in
    // clear text beside the TLS it was asked for.
    let listen = raw.listen.unwrap_or(!over_tls);
    if over_tls && listen {
        v.err(
            path.key("listen"),
            "`true` would take calls in clear text on `bind`, and over TLS (the default \
             `sip.transport`) the agent accepts no connections: remove the key (calls come over \
             its own TLS connection to `registrar`, `outbound_proxy` or `collector`), or write \
             `transport: udp` for clear text",
        );
    }
    // (Off by default over TLS without anyone to connect to: the errors
    // about callers or about nobody to stream to say why.)
    if raw.listen == Some(false)
        && (matches!(raw.transport, RawTransport::Udp)
            || (raw.registrar.is_none()
                && raw.outbound_proxy.is_none()
                && !(over_tls && raw.collector.is_some())))
    {
        v.err(
            path.key("listen"),
            "`false` needs `transport: tls` (or `transport: tcp`) and a `registrar`: calls then come over the \
             agent's own connection to it",
        );
    }
    // RFC 3261 10.2.1: 0 would mean "remove the binding".
    v.range(
        path.key("expires"),
        raw.expires,
        60,
        86400,
        "registration expiry (seconds)",
    );
    let username = match &raw.username {
        Some(u) => {
            if !valid_username(u) {
                v.err(
                    path.key("username"),
                    "must be 1-64 characters without spaces, quotes or control characters",
                );
            }
            Some(u.clone())
        }
        None => identity.and_then(|i| i.aor.user().map(str::to_owned)),
    };
    let transport = match raw.transport {
        RawTransport::Udp => Transport::Udp,
        RawTransport::Tcp => Transport::Tcp,
        RawTransport::Tls => Transport::Tls,
    };
    Some(SipConfig {
        registrar,
        outbound_proxy,
        collector,
        transport,
        bind: bind?,
        listen,
        expires: Duration::from_secs(u64::from(raw.expires)),
        username: username?,
        password: None,
        callers: Vec::new(),
        caller_realm: caller_realm?,
        callers_allow_md5: raw.callers_allow_md5,
        trust_proxy_flow: raw.trust_proxy_flow,
        tls,
    })
}

/// The TLS files when `transport: tls`; a certificate needs its key and
/// the other way round. That they are readable is checked on load.
fn sip_tls(v: &mut V, raw: &RawSip, path: &KeyPath) -> Option<SipTls> {
    let identity = match (&raw.certificate, &raw.private_key) {
        (Some(certificate), Some(private_key)) => Some(IdentityFiles {
            certificate: certificate.into(),
            private_key: private_key.into(),
        }),
        (None, None) => None,
        (Some(_), None) => {
            v.err(path.key("certificate"), "needs `private_key` too");
            None
        }
        (None, Some(_)) => {
            v.err(path.key("private_key"), "needs `certificate` too");
            None
        }
    };
    if !matches!(raw.transport, RawTransport::Tls) {
        if identity.is_some() {
            v.err(
                path.key("certificate"),
                "is used only with `transport: tls`",
            );
        }
        return None;
    }
    Some(SipTls {
        ca_file: raw.ca_file.clone().into(),
        identity,
    })
}

/// `user@host` of the AOR: unique per sensor (RFC 3261 22.1 wants realms
/// globally unique), and never the realm of the proxy in front, whose
/// challenge the caller answers in the same request.
fn default_realm(aor: &SipUri) -> String {
    use super::sip_uri::Host;
    let host = match aor.host() {
        Host::Name(name) => name.clone(),
        Host::V4(a) => a.to_string(),
        Host::V6(a) => format!("[{a}]"),
    };
    match aor.user() {
        Some(user) => format!("{user}@{host}"),
        None => host,
    }
}

/// A digest user name we can put in a header (RFC 3261 25.1 quoted-string).
fn valid_username(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && !user
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '"')
}

fn stream(
    v: &mut V,
    raw: &RawStream,
    path: &KeyPath,
    sensors: &[Option<SensorConfig>],
) -> Option<StreamConfig> {
    let rate_ok = v.range(path.key("rate"), raw.rate, 1, 10_000, "sample rate (Hz)");
    let spp_ok = v.range(
        path.key("samples_per_packet"),
        raw.samples_per_packet,
        1,
        1000,
        "samples per packet",
    );
    if rate_ok && spp_ok {
        // Packet interval between 1 ms and 5 s.
        let interval_us = u64::from(raw.samples_per_packet) * 1_000_000 / u64::from(raw.rate);
        if !(1_000..=5_000_000).contains(&interval_us) {
            v.err(
                path.key("samples_per_packet"),
                format!(
                    "{} samples at {} Hz make a packet every {} ms; it must be 1 ms to 5 s",
                    raw.samples_per_packet,
                    raw.rate,
                    interval_us as f64 / 1000.0
                ),
            );
        }
    }
    // All channels of all sensors, by qualified name.
    let mut all = Vec::new();
    for (si, s) in sensors.iter().enumerate() {
        if let Some(s) = s {
            for (ci, spec) in s.channels().into_iter().enumerate() {
                all.push(StreamChannel {
                    sensor: si,
                    channel: ci,
                    spec,
                });
            }
        }
    }
    let channels = if raw.channels.is_empty() {
        all
    } else {
        let mut chosen: Vec<StreamChannel> = Vec::new();
        for (i, name) in raw.channels.iter().enumerate() {
            let p = path.key("channels").index(i);
            match all.iter().find(|c| &c.spec.name == name) {
                _ if chosen.iter().any(|c| &c.spec.name == name) => {
                    v.err(p, format!("`{name}` is listed twice"))
                }
                Some(c) => chosen.push(c.clone()),
                None if sensors.iter().any(Option::is_none) => {} // reported there
                None => {
                    let known: Vec<&str> = all.iter().map(|c| c.spec.name.as_str()).collect();
                    v.err(
                        p,
                        format!(
                            "no channel `{name}`; expected `sensor.channel`, one of: {}",
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        chosen
    };
    let n = u32::try_from(channels.len()).unwrap_or(u32::MAX);
    if spp_ok && n.saturating_mul(raw.samples_per_packet) > MAX_SAMPLES_PER_PACKET_TOTAL {
        v.err(
            path.key("samples_per_packet"),
            format!(
                "{n} channels × {} samples = {} values per packet; at most {MAX_SAMPLES_PER_PACKET_TOTAL} fit",
                raw.samples_per_packet,
                n.saturating_mul(raw.samples_per_packet)
            ),
        );
    }
    Some(StreamConfig {
        rate_hz: raw.rate,
        samples_per_packet: raw.samples_per_packet,
        channels,
    })
}

fn gpio(v: &mut V, raw: &RawGpio, path: &KeyPath, sensors: &[RawSensor]) -> GpioConfig {
    let mut inputs = Vec::new();
    let mut pins: Vec<(u32, KeyPath)> = Vec::new();
    for (i, g) in raw.inputs.iter().enumerate() {
        let p = path.key("inputs").index(i);
        v.name(p.key("name"), &g.name, "input name");
        if raw.inputs[..i].iter().any(|o| o.name == g.name) {
            v.err(
                p.key("name"),
                format!("input name `{}` is used twice", g.name),
            );
        }
        if sensors.iter().any(|s| s.name == g.name) {
            v.err(
                p.key("name"),
                format!(
                    "`{}` is also a sensor's name; events and channels share names",
                    g.name
                ),
            );
        }
        if v.range(p.key("pin"), g.pin, 0, MAX_GPIO, "GPIO number") {
            if let Some((_, other)) = pins.iter().find(|(pin, _)| *pin == g.pin) {
                v.err(
                    p.key("pin"),
                    format!("GPIO {} is already used by {other}", g.pin),
                );
            }
            pins.push((g.pin, p.clone()));
        }
        v.range(
            p.key("debounce_ms"),
            g.debounce_ms,
            0,
            10_000,
            "debounce time (ms)",
        );
        inputs.push(GpioInputConfig {
            name: g.name.clone(),
            pin: g.pin,
            edge: match g.edge {
                RawEdge::Rising => Edge::Rising,
                RawEdge::Falling => Edge::Falling,
                RawEdge::Both => Edge::Both,
            },
            debounce: Duration::from_millis(u64::from(g.debounce_ms)),
            active_low: g.active_low,
        });
    }
    let status_led = raw.status_led.as_ref().and_then(|l| {
        let p = path.key("status_led");
        if !v.range(p.key("pin"), l.pin, 0, MAX_GPIO, "GPIO number") {
            return None;
        }
        if let Some((_, other)) = pins.iter().find(|(pin, _)| *pin == l.pin) {
            v.err(
                p.key("pin"),
                format!("GPIO {} is already used by {other}", l.pin),
            );
        }
        Some(LedConfig {
            pin: l.pin,
            active_low: l.active_low,
        })
    });
    GpioConfig { inputs, status_led }
}
