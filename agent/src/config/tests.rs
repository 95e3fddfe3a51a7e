use super::*;
use crate::sensor::SensorKind;
use std::os::unix::fs::PermissionsExt;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn secrets(&self) -> String {
        format!(
            "secrets_file: {}\n",
            self.dir.path().join("secrets.yaml").display()
        )
    }

    /// A minimal valid main file plus `extra`; SIP over UDP, so that no CA
    /// file is needed.
    fn base(&self, extra: &str) -> PathBuf {
        self.write(
            "agent.yaml",
            &format!(
                "{}identity:\n  aor: sip:sensor-1@example.net\nsip: {{collector: \"sip:collector@example.net\", transport: udp}}\n# over UDP, so that no CA file is needed\n{extra}",
                self.secrets()
            ),
        )
    }

    fn load(&self, required: &[&PathBuf], optional: &[&PathBuf]) -> Result<Config, String> {
        let files = ConfigFiles::new(
            required.iter().map(|p| (*p).clone()).collect(),
            optional.iter().map(|p| (*p).clone()).collect(),
        );
        load(&files).map_err(|e| e.to_string())
    }

    /// Loads a simulated sensor of `sip:a@b.example` with these `sip:`
    /// lines.
    fn with_sip(&self, sip: &str) -> Result<Config, String> {
        let p = self.write(
            "agent.yaml",
            &format!(
                "{}identity: {{aor: sip:a@b.example}}\nsip:\n{sip}{SIM}",
                self.secrets()
            ),
        );
        self.load(&[&p], &[])
    }

    /// A throw-away CA written as `ca.pem`; its path.
    fn test_ca(&self) -> PathBuf {
        let ca = sipsensor_testkit::pki::TestCa::new("agent test CA");
        self.write("ca.pem", &ca.certificate_pem())
    }

    /// As `with_sip`, with `ca_file` naming a throw-away CA.
    fn with_tls_sip(&self, sip: &str) -> Result<Config, String> {
        let ca_file = self.test_ca();
        self.with_sip(&format!("  ca_file: {}\n{sip}", ca_file.display()))
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

const SIM: &str =
    "sensors:\n  - type: simulated\n    name: sim\n    channels:\n      - {name: wave, unit: V}\n";

#[test]
fn minimal_config_gets_the_documented_defaults() {
    let f = Files::new();
    let c = f.load(&[&f.base(SIM)], &[]).unwrap();
    assert_eq!(c.identity.aor.as_str(), "sip:sensor-1@example.net");
    assert_eq!(c.sip.transport, Transport::Udp);
    assert_eq!(c.clear_text(), Some(ClearText::Signalling(Transport::Udp)));
    assert_eq!(c.sip.bind, "0.0.0.0:5060".parse().unwrap());
    assert_eq!(c.sip.expires, Duration::from_secs(3600));
    assert_eq!(c.sip.username, "sensor-1");
    assert_eq!(c.sip.password, None);
    assert_eq!(c.stream.rate_hz, 10);
    assert_eq!(c.stream.samples_per_packet, 1);
    assert_eq!(c.stream.packet_interval(), Duration::from_millis(100));
    assert_eq!(c.realtime.priority, 50);
    assert_eq!(c.logging.level, LogLevel::Info);
    assert_eq!(
        c.status.socket,
        PathBuf::from(crate::status::DEFAULT_SOCKET)
    );
    let s = &c.sensors[0];
    assert_eq!(s.interval, Duration::from_millis(10));
    let SensorKind::Simulated(sim) = &s.kind else {
        panic!("{s:?}");
    };
    assert_eq!(sim.seed, 1);
    assert_eq!(sim.channels[0].scale, 0.001);
    assert_eq!(c.stream.channels[0].spec.name, "sim.wave");
}

#[test]
fn override_wins_key_by_key_and_replaces_lists() {
    let f = Files::new();
    let base = f.base(&format!(
        "stream:\n  rate: 100\n  samples_per_packet: 2\n{SIM}"
    ));
    let over = f.write(
        "boot.yaml",
        "# technician's edits\nstream:\n  rate: 50\nsip:\n  expires: 600\nsensors:\n  - {type: simulated, name: other, channels: [{name: x, unit: Cel}]}\n",
    );
    let c = f.load(&[&base], &[&over]).unwrap();
    assert_eq!(c.stream.rate_hz, 50);
    assert_eq!(c.stream.samples_per_packet, 2, "kept from the base file");
    assert_eq!(c.sip.expires, Duration::from_secs(600));
    assert_eq!(
        c.sip.collector.unwrap().as_str(),
        "sip:collector@example.net"
    );
    let names: Vec<_> = c.sensors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["other"]);
    assert_eq!(c.sources, vec![base, over]);
}

#[test]
fn a_missing_override_is_skipped_and_an_empty_one_changes_nothing() {
    let f = Files::new();
    let base = f.base(SIM);
    let missing = f.dir.path().join("nope.yaml");
    assert!(f.load(&[&base], &[&missing]).is_ok());
    let empty = f.write("empty.yaml", "# all commented out\n");
    let c = f.load(&[&base], &[&empty]).unwrap();
    assert_eq!(c.sources.len(), 2);
}

#[test]
fn semantic_errors_point_into_the_file_that_set_the_value() {
    let f = Files::new();
    let base = f.base(&format!("stream:\n  rate: 100\n{SIM}"));
    let over = f.write("boot.yaml", "\nstream:\n  rate: 0\n");
    let e = f.load(&[&base], &[&over]).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}:3:9: stream.rate: sample rate (Hz) must be 1 to 10000, got 0",
            f.path("boot.yaml")
        )
    );
}

#[test]
fn type_errors_and_unknown_keys_point_into_their_own_file() {
    let f = Files::new();
    let base = f.base(SIM);
    let over = f.write("boot.yaml", "sip:\n  expires: soon\n  expire: 5\n");
    let e = f.load(&[&base], &[&over]).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}:2:12: sip.expires: invalid type: string \"soon\", expected u32",
            f.path("boot.yaml")
        )
    );
    let over = f.write("boot.yaml", "sip:\n  expire: 5\n");
    let e = f.load(&[&base], &[&over]).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "{}:2:3: sip: unknown field `expire`, expected one of",
            f.path("boot.yaml")
        )),
        "{e}"
    );
}

#[test]
fn errors_in_several_files_are_all_reported() {
    let f = Files::new();
    let a = f.write("a.yaml", "sip: [\n");
    let b = f.write("b.yaml", "stream:\n  rate: -1\n");
    let e = f.load(&[&a, &b], &[]).unwrap_err();
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(
        lines[0].starts_with(&format!("{}:", f.path("a.yaml"))),
        "{e}"
    );
    assert!(
        lines[1].starts_with(&format!("{}:2:9: stream.rate: invalid", f.path("b.yaml"))),
        "{e}"
    );
}

#[test]
fn several_semantic_errors_come_together() {
    let f = Files::new();
    let p = f.base(
        "stream:\n  rate: 0\nrealtime:\n  priority: 100\ngpio:\n  inputs:\n    - {name: door, pin: 5000}\n",
    );
    let e = f.load(&[&p], &[]).unwrap_err();
    let want = [
        "agent.yaml:12:25: gpio.inputs[0].pin: GPIO number must be 0 to 4095, got 5000",
        "agent.yaml:7:9: stream.rate: sample rate (Hz) must be 1 to 10000, got 0",
        "agent.yaml:9:13: realtime.priority: SCHED_FIFO priority must be 1 to 99, got 100",
    ];
    for w in want {
        assert!(e.contains(w), "missing {w:?} in\n{e}");
    }
}

#[test]
fn missing_required_keys_point_at_their_parent_or_the_file() {
    let f = Files::new();
    let p = f.write(
        "agent.yaml",
        &format!(
            "{}\nsip:\n  collector: sip:c@example.net\n{SIM}",
            f.secrets()
        ),
    );
    let e = f.load(&[&p], &[]).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}:1:1: identity.aor: missing: the sensor's address of record, e.g. `aor: sip:sensor-0001@example.net`",
            f.path("agent.yaml")
        )
    );
    let p = f.write(
        "agent.yaml",
        &format!(
            "{}identity:\n  display_name: x\nsip:\n  collector: sip:c@example.net\n{SIM}",
            f.secrets()
        ),
    );
    let e = f.load(&[&p], &[]).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "{}:2:1: identity.aor: missing",
            f.path("agent.yaml")
        )),
        "{e}"
    );
}

#[test]
fn keys_of_another_sensor_type_are_refused_at_the_key() {
    let f = Files::new();
    let p = f.base("sensors:\n  - type: sht3x\n    name: rh\n    bus: 1\n    mode: normal\n");
    let e = f.load(&[&p], &[]).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}:10:5: sensors[0].mode: not a key of a `sht3x` sensor; it takes: type, name, interval_ms, bus, address, repeatability",
            f.path("agent.yaml")
        )
    );
}

#[test]
fn stream_channels_must_exist_and_fit_a_packet() {
    let f = Files::new();
    let p = f.base(&format!("stream:\n  channels: [sim.wave, sim.nope]\n{SIM}"));
    let e = f.load(&[&p], &[]).unwrap_err();
    assert!(e.contains("agent.yaml:7:24: stream.channels[1]: no channel `sim.nope`; expected `sensor.channel`, one of: sim.wave"), "{e}");
    let p = f.base(&format!(
        "stream:\n  rate: 1000\n  samples_per_packet: 300\n{SIM}"
    ));
    let e = f.load(&[&p], &[]).unwrap_err();
    assert!(e.contains("stream.samples_per_packet: 1 channels × 300 samples = 300 values per packet; at most 256 fit"), "{e}");
    let p = f.base(&format!("stream:\n  rate: 10000\n{SIM}"));
    let e = f.load(&[&p], &[]).unwrap_err();
    assert!(
        e.contains("1 samples at 10000 Hz make a packet every 0.1 ms"),
        "{e}"
    );
}

#[test]
fn stream_channel_selection_keeps_the_given_order() {
    let f = Files::new();
    let p = f.base(
        "stream:\n  channels: [b.y, a.x]\nsensors:\n  - {type: simulated, name: a, channels: [{name: x, unit: V}]}\n  - {type: simulated, name: b, channels: [{name: y, unit: A}, {name: z, unit: W}]}\n",
    );
    let c = f.load(&[&p], &[]).unwrap();
    let got: Vec<(usize, usize, &str)> = c
        .stream
        .channels
        .iter()
        .map(|ch| (ch.sensor, ch.channel, ch.spec.name.as_str()))
        .collect();
    assert_eq!(got, [(1, 0, "b.y"), (0, 0, "a.x")]);
}

#[test]
fn secrets_come_from_their_file_and_bad_modes_are_refused() {
    let f = Files::new();
    let base = f.base(SIM);
    let s = f.write("secrets.yaml", "password: pa55\n");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = f.load(&[&base], &[]).unwrap();
    assert_eq!(c.sip.password.as_ref().map(Password::expose), Some("pa55"));
    assert!(
        !format!("{c:?}").contains("pa55"),
        "Debug leaks the password"
    );
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o604)).unwrap();
    let e = f.load(&[&base], &[]).unwrap_err();
    assert!(e.contains("secrets.yaml: mode 0604"), "{e}");
}

#[test]
fn best_effort_helpers_read_what_parses() {
    let f = Files::new();
    let p = f.write(
        "agent.yaml",
        "gpio:\n  status_led: {pin: 60, active_low: true}\nstatus:\n  socket: /tmp/x.sock\nsecrets_file: /s.yaml\nstream:\n  rate: 0\n",
    );
    let files = ConfigFiles::new(vec![p], vec![]);
    assert!(load(&files).is_err());
    assert_eq!(
        led_best_effort(&files),
        Some(LedConfig {
            pin: 60,
            active_low: true
        })
    );
    assert_eq!(socket_best_effort(&files), PathBuf::from("/tmp/x.sock"));
    assert_eq!(secrets_path_best_effort(&files), PathBuf::from("/s.yaml"));
    let bad = f.write("bad.yaml", "gpio: [\n");
    let files = ConfigFiles::new(vec![bad], vec![]);
    assert_eq!(led_best_effort(&files), None);
    assert_eq!(
        socket_best_effort(&files),
        PathBuf::from(crate::status::DEFAULT_SOCKET)
    );
}

#[test]
fn callers_take_their_passwords_from_the_secrets_file() {
    let f = Files::new();
    let main = f.write(
        "agent.yaml",
        &format!(
            "{}identity: {{aor: sip:a@b.example}}\nsip:\n  callers: [collector]\n  transport: udp\n{SIM}",
            f.secrets()
        ),
    );
    let s = f.write("secrets.yaml", "callers: {collector: s3cret-caller}\n");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = f.load(&[&main], &[]).unwrap();
    let [(user, password)] = &c.sip.callers[..] else {
        panic!("{:?}", c.sip.callers)
    };
    assert_eq!(
        (user.as_str(), password.expose()),
        ("collector", "s3cret-caller")
    );
    assert_eq!(c.sip.caller_realm, "a@b.example");
    assert!(!c.sip.callers_allow_md5);
    assert!(
        !format!("{c:?}").contains("s3cret-caller"),
        "Debug leaks it"
    );
    // A caller without a password could never get in: said at start.
    std::fs::write(&s, "password: x\n").unwrap();
    let e = f.load(&[&main], &[]).unwrap_err();
    assert!(
        e.contains("`collector`") && e.contains("no password"),
        "{e}"
    );
}

#[test]
fn from_based_trust_is_gone_and_udp_alone_calls_nobody_in() {
    let f = Files::new();
    let with_sip = |sip: &str| f.with_sip(sip);
    for old in [
        "trusted_callers: [sip:collector@b.example]",
        "trusted_proxies: [203.0.113.10]",
    ] {
        let e = with_sip(&format!("  collector: sip:c@b.example\n  {old}\n")).unwrap_err();
        // An old config says what replaces the key.
        let key = old.split(':').next().unwrap();
        assert!(
            e.contains("unknown field")
                && e.contains(&format!("`sip.{key}` was removed"))
                && e.contains("`sip.callers`"),
            "{old}: {e}"
        );
    }
    // Over UDP the registrar's address proves nothing: nobody may call.
    let e = with_sip("  registrar: sip:b.example\n  transport: udp\n").unwrap_err();
    assert!(e.contains("nobody to stream to"), "{e}");
    // Over TCP the agent's own connection to it is the way in.
    let c = with_sip("  registrar: sip:b.example\n  transport: tcp\n").unwrap();
    assert!(c.sip.trust_proxy_flow);
}

#[test]
fn not_listening_needs_a_tcp_flow_to_a_registrar() {
    let f = Files::new();
    let with_sip = |sip: &str| f.with_sip(&format!("  listen: false\n{sip}"));
    let e = with_sip("  registrar: sip:b.example\n  transport: udp\n").unwrap_err();
    assert!(
        e.contains("sip.listen") && e.contains("transport: tcp"),
        "{e}"
    );
    let e = with_sip("  transport: tcp\n  collector: sip:c@b.example\n").unwrap_err();
    assert!(e.contains("sip.listen"), "{e}");
    let c = with_sip("  transport: tcp\n  registrar: sip:b.example\n").unwrap();
    assert!(!c.sip.listen);
}

#[test]
fn media_srtp_follows_the_signalling_unless_configured() {
    use sipsensor_protocol::SrtpPolicy;
    let f = Files::new();
    let c = f.load(&[&f.base(SIM)], &[]).unwrap();
    assert_eq!(c.media.srtp, None);
    assert_eq!(c.media.srtp_policy(true), SrtpPolicy::Required);
    assert_eq!(c.media.srtp_policy(false), SrtpPolicy::Optional);
    let c = f
        .load(&[&f.base(&format!("{SIM}media:\n  srtp: off\n"))], &[])
        .unwrap();
    assert_eq!(c.media.srtp_policy(true), SrtpPolicy::Off);
    let e = f
        .load(&[&f.base(&format!("{SIM}media:\n  srtp: maybe\n"))], &[])
        .unwrap_err();
    assert!(e.contains("media.srtp") || e.contains("maybe"), "{e}");
}

#[test]
fn the_peer_timeout_is_3_s_unless_set_and_not_under_a_second() {
    let f = Files::new();
    let c = f.load(&[&f.base(SIM)], &[]).unwrap();
    assert_eq!(c.media.peer_timeout, Duration::from_secs(3));
    let c = f
        .load(
            &[&f.base(&format!("{SIM}media:\n  peer_timeout_ms: 2500\n"))],
            &[],
        )
        .unwrap();
    assert_eq!(c.media.peer_timeout, Duration::from_millis(2500));
    // Below a second a collector reporting every second would be dead at
    // its first late report.
    let e = f
        .load(
            &[&f.base(&format!("{SIM}media:\n  peer_timeout_ms: 500\n"))],
            &[],
        )
        .unwrap_err();
    assert!(
        e.contains("peer_timeout_ms") && e.contains("1000 to 60000"),
        "{e}"
    );
}

#[test]
fn tls_reads_its_ca_file_and_takes_calls_on_its_flow() {
    let f = Files::new();
    let ca_file = f.test_ca();
    let tls = |extra: &str| {
        f.with_sip(&format!(
            "  listen: false\n  transport: tls\n  registrar: sip:b.example\n{extra}"
        ))
    };
    // The default CA file is not there on a build machine: check-config
    // says so instead of the agent failing to register later.
    let e = tls("").unwrap_err();
    assert!(e.contains("/etc/sipsensor/ca.pem"), "{e}");
    let c = tls(&format!("  ca_file: {}\n", ca_file.display())).unwrap();
    assert_eq!(c.sip.transport, Transport::Tls);
    assert!(!c.sip.listen && c.sip.trust_proxy_flow);
    assert_eq!(c.sip.tls.as_ref().map(|t| &t.ca_file), Some(&ca_file));
    // Not a CA: refused at load.
    let junk = f.write("junk.pem", "not a certificate\n");
    let e = tls(&format!("  ca_file: {}\n", junk.display())).unwrap_err();
    assert!(e.contains("junk.pem"), "{e}");
    // A client certificate needs its key.
    let e = tls(&format!(
        "  ca_file: {}\n  certificate: {}\n",
        ca_file.display(),
        ca_file.display()
    ))
    .unwrap_err();
    assert!(
        e.contains("sip.certificate") && e.contains("private_key"),
        "{e}"
    );
    // Over UDP or TCP the TLS files mean nothing: no CA is read.
    let c = f
        .with_sip("  transport: tcp\n  registrar: sip:b.example\n")
        .unwrap();
    assert!(c.sip.tls.is_none());
}

#[test]
fn a_config_naming_no_transport_is_tls_with_srtp_and_the_default_ca() {
    let f = Files::new();
    let main = |sip: &str| {
        f.write(
            "agent.yaml",
            &format!(
                "{}identity: {{aor: sip:a@b.example}}\nsip:\n  collector: sip:c@b.example\n{sip}{SIM}",
                f.secrets()
            ),
        )
    };
    // The default CA file is absent on a build machine: the error names
    // the key to set and the path it looked at.
    let e = f.load(&[&main("")], &[]).unwrap_err();
    assert!(
        e.contains("`sip.ca_file`") && e.contains(raw::DEFAULT_CA_FILE),
        "{e}"
    );
    let ca_file = f.test_ca();
    let c = f
        .load(
            &[&main(&format!("  ca_file: {}\n", ca_file.display()))],
            &[],
        )
        .unwrap();
    assert_eq!(c.sip.transport, Transport::Tls);
    assert_eq!(c.sip.tls.as_ref().map(|t| &t.ca_file), Some(&ca_file));
    assert_eq!(
        c.media.srtp_policy(true),
        sipsensor_protocol::SrtpPolicy::Required
    );
    assert_eq!(c.clear_text(), None);
    // An unreadable CA file is named with its key too.
    std::fs::set_permissions(&ca_file, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&ca_file).is_err() {
        // (root reads it anyway)
        let e = f
            .load(
                &[&main(&format!("  ca_file: {}\n", ca_file.display()))],
                &[],
            )
            .unwrap_err();
        assert!(e.contains("`sip.ca_file`") && e.contains("ca.pem"), "{e}");
    }
}

#[test]
fn clear_text_is_told_for_udp_tcp_and_srtp_off_or_optional_over_tls() {
    let f = Files::new();
    let ca_file = f.test_ca();
    let clear = |sip: &str, media: &str| {
        f.with_sip(&format!("  collector: sip:c@b.example\n{sip}{media}"))
            .unwrap()
            .clear_text()
    };
    assert_eq!(
        clear("  transport: tcp\n", ""),
        Some(ClearText::Signalling(Transport::Tcp))
    );
    // Over UDP even `srtp: required` cannot help: no keys go in clear SDP.
    assert_eq!(
        clear("  transport: udp\n", "media:\n  srtp: required\n"),
        Some(ClearText::Signalling(Transport::Udp))
    );
    let tls = format!("  ca_file: {}\n", ca_file.display());
    assert_eq!(clear(&tls, ""), None);
    assert_eq!(clear(&tls, "media:\n  srtp: required\n"), None);
    assert_eq!(
        clear(&tls, "media:\n  srtp: off\n"),
        Some(ClearText::SamplesSrtpOff)
    );
    assert_eq!(
        clear(&tls, "media:\n  srtp: optional\n"),
        Some(ClearText::SamplesSrtpOptional)
    );
}

#[test]
fn called_directly_over_tls_is_refused_not_taken_in_clear_text() {
    let f = Files::new();
    let secrets = f.write("secrets.yaml", "callers: {collector: s3cret-caller}\n");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with_sip = |sip: &str| f.with_tls_sip(&format!("  callers: [collector]\n{sip}"));
    // No registrar nor proxy: the callers would have to reach the agent
    // directly, which TLS (the default) cannot take.
    let e = with_sip("").unwrap_err();
    assert!(
        e.contains("sip.callers") && e.contains("`registrar`") && e.contains("`transport: udp`"),
        "{e}"
    );
    // Through a registrar they come over the agent's own TLS connection.
    let c = with_sip("  registrar: sip:b.example\n").unwrap();
    assert_eq!(c.sip.transport, Transport::Tls);
    assert_eq!(c.sip.callers.len(), 1);
    // In clear text on purpose: allowed, and warned about at start.
    let c = with_sip("  transport: udp\n").unwrap();
    assert_eq!(c.clear_text(), Some(ClearText::Signalling(Transport::Udp)));
}

#[test]
fn over_tls_nothing_listens_and_a_plain_listener_is_refused() {
    let f = Files::new();
    let with_sip = |sip: &str| f.with_tls_sip(&format!("  collector: sip:c@b.example\n{sip}"));
    // TLS by default: no UDP/TCP port, calls come on its own connections.
    let c = with_sip("").unwrap();
    assert!(!c.sip.listen);
    // A plain listener beside TLS would take calls, and give SDES keys,
    // in clear text.
    let e = with_sip("  listen: true\n").unwrap_err();
    assert!(
        e.contains("sip.listen") && e.contains("`transport: udp`"),
        "{e}"
    );
    // Clear text on purpose listens as before.
    let c = with_sip("  transport: udp\n").unwrap();
    assert!(c.sip.listen);
}
