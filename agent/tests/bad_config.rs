//! Each class of bad config makes `check-config` exit non-zero with
//! `file:line:column: what is wrong`.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    dir: tempfile::TempDir,
}

/// Over UDP, so that no CA file is needed (four lines, as the errors'
/// line numbers expect).
const HEAD: &str = "identity:\n  aor: sip:sensor-1@example.net\n\
    sip: {collector: \"sip:collector@example.net\", transport: udp}\n# clear text: no CA file\n";
const SIM: &str =
    "sensors:\n  - type: simulated\n    name: sim\n    channels:\n      - {name: wave, unit: V}\n";

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        // Secrets next to the config, so the machine's /etc plays no part.
        let secrets = format!(
            "secrets_file: {}\n",
            self.dir.path().join("secrets.yaml").display()
        );
        let text = if name == "agent.yaml" {
            format!("{secrets}{text}")
        } else {
            text.to_owned()
        };
        std::fs::write(&p, text).unwrap();
        p
    }

    fn check_config(files: &[&Path]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_sipsensor-agent"))
            .arg("check-config")
            .args(files)
            .output()
            .unwrap()
    }

    /// Run check-config; it must fail. Returns stderr.
    fn fails(&self, files: &[&Path]) -> String {
        let out = Self::check_config(files);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "check-config accepted it; stderr: {err}"
        );
        assert_eq!(out.status.code(), Some(1));
        err
    }

    /// The first error line is exactly `file:line:col: message`.
    fn expect(&self, text: &str, line: usize, col: usize, message: &str) {
        let p = self.file("agent.yaml", text);
        let err = self.fails(&[&p]);
        let first = err.lines().next().unwrap_or_default();
        // +1 line: the secrets_file line written first.
        let want = format!("{}:{}:{col}: {message}", p.display(), line + 1);
        assert_eq!(first, want, "full stderr:\n{err}");
    }
}

#[test]
fn yaml_syntax_error() {
    Case::new().expect(
        &format!("{HEAD}stream:\n  rate: [1, 2\n"),
        7,
        1,
        "did not find expected ',' or ']', while parsing a flow sequence at line 7 column 9",
    );
}

#[test]
fn unknown_key() {
    Case::new().expect(
        &format!("{HEAD}stream:\n  rat: 5\n{SIM}"),
        6,
        3,
        "stream: unknown field `rat`, expected one of `rate`, `samples_per_packet`, `channels`",
    );
}

#[test]
fn wrong_type() {
    Case::new().expect(
        &format!("{HEAD}stream:\n  rate: fast\n{SIM}"),
        6,
        9,
        "stream.rate: invalid type: string \"fast\", expected u32",
    );
}

#[test]
fn rate_zero() {
    Case::new().expect(
        &format!("{HEAD}stream:\n  rate: 0\n{SIM}"),
        6,
        9,
        "stream.rate: sample rate (Hz) must be 1 to 10000, got 0",
    );
}

#[test]
fn pin_out_of_range() {
    Case::new().expect(
        &format!("{HEAD}gpio:\n  inputs:\n    - name: door\n      pin: 9999\n"),
        8,
        12,
        "gpio.inputs[0].pin: GPIO number must be 0 to 4095, got 9999",
    );
}

#[test]
fn bad_sip_uri() {
    Case::new().expect(
        &format!("identity:\n  aor: sip:sensor 1@example.net\nsip:\n  collector: sip:c@example.net\n  transport: udp\n{SIM}"),
        2,
        8,
        "identity.aor: `sip:sensor 1@example.net` is not a SIP URI: user part `sensor 1` contains ` `, which must be %-escaped",
    );
}

#[test]
fn bad_i2c_address() {
    Case::new().expect(
        &format!(
            "{HEAD}sensors:\n  - type: bme280\n    name: env\n    bus: 1\n    address: 0x48\n"
        ),
        9,
        14,
        "sensors[0].address: bad I2C address 0x48: a bme280 answers only at 0x76 or 0x77",
    );
    Case::new().expect(
        &format!("{HEAD}sensors:\n  - type: sht3x\n    name: rh\n    bus: 1\n    address: 0x80\n"),
        9,
        14,
        "sensors[0].address: bad I2C address 0x80: 7-bit I2C addresses are 0x08 to 0x77",
    );
}

#[test]
fn unit_not_a_senml_symbol() {
    Case::new().expect(
        &format!("{HEAD}sensors:\n  - type: simulated\n    name: sim\n    channels:\n      - {{name: t, unit: degC}}\n"),
        9,
        25,
        "sensors[0].channels[0].unit: `degC` is not a SenML unit symbol (RFC 8428 section 12.1), e.g. Cel, Pa, %RH, V, lx, m/s2, count",
    );
}

#[test]
fn missing_required_key() {
    Case::new().expect(
        &format!("{HEAD}sensors:\n  - type: bme280\n    name: env\n"),
        6,
        5,
        "sensors[0].bus: missing: a `bme280` sensor needs `bus`",
    );
}

#[test]
fn duplicate_name() {
    Case::new().expect(
        &format!(
            "{HEAD}{SIM}  - {{type: simulated, name: sim, channels: [{{name: x, unit: V}}]}}\n"
        ),
        10,
        29,
        "sensors[1].name: sensor name `sim` is used twice",
    );
}

#[test]
fn key_of_another_sensor_type() {
    Case::new().expect(
        &format!("{HEAD}sensors:\n  - type: iio\n    name: adc\n    device: ads1115\n    bus: 1\n    channels: [{{attr: in_voltage0, name: a0}}]\n"),
        9,
        5,
        "sensors[0].bus: not a key of a `iio` sensor; it takes: type, name, interval_ms, device, channels",
    );
}

#[test]
fn impossible_combination() {
    Case::new().expect(
        &format!("{HEAD}sensors:\n  - type: bme280\n    name: env\n    bus: 1\n    oversampling: 16\n    interval_ms: 50\n"),
        10,
        18,
        "sensors[0].interval_ms: a forced-mode measurement at this oversampling takes up to 112 ms",
    );
}

#[test]
fn error_in_the_override_file_names_that_file() {
    let c = Case::new();
    let base = c.file("agent.yaml", &format!("{HEAD}{SIM}"));
    let over = c.file("boot.yaml", "sip:\n  registrar: example.net\n");
    let err = c.fails(&[&base, &over]);
    assert_eq!(
        err.trim_end(),
        format!(
            "{}:2:14: sip.registrar: `example.net` is not a SIP URI: must start with `sip:` or `sips:`",
            over.display()
        )
    );
}

#[test]
fn world_readable_secrets_are_refused() {
    let c = Case::new();
    let base = c.file("agent.yaml", &format!("{HEAD}{SIM}"));
    let s = c.file("secrets.yaml", "password: x\n");
    std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = c.fails(&[&base]);
    assert!(
        err.starts_with(&format!(
            "{}: mode 0644 lets every user read or change the password",
            s.display()
        )),
        "{err}"
    );
}

#[test]
fn unreadable_file() {
    let c = Case::new();
    let missing = c.dir.path().join("nope.yaml");
    let err = c.fails(&[&missing]);
    assert!(
        err.starts_with(&format!(
            "{}: cannot read: No such file or directory",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn tls_by_default_names_the_ca_key_and_path_it_cannot_read() {
    let c = Case::new();
    let missing = c.dir.path().join("site-ca.pem");
    let p = c.file(
        "agent.yaml",
        &format!(
            "identity:\n  aor: sip:sensor-1@example.net\nsip:\n  collector: sip:c@example.net\n  \
             ca_file: {}\n{SIM}",
            missing.display()
        ),
    );
    let err = c.fails(&[&p]);
    assert!(
        err.starts_with(&format!(
            "{}: `sip.ca_file`: cannot read",
            missing.display()
        )) && err.contains("`sip.transport: udp`"),
        "{err}"
    );
}

#[test]
fn check_config_says_when_a_config_is_clear_text() {
    let c = Case::new();
    let p = c.file("agent.yaml", &format!("{HEAD}{SIM}"));
    let out = Case::check_config(&[&p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("security: clear text: SIP over UDP"),
        "{stdout}"
    );
}
