//! Every example config under agent/examples/ passes `check-config`, and
//! every sensor type has an example.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// The examples name the appliance's CA file, which a build machine does
/// not have: each is checked as a copy that names a throw-away CA instead.
struct Copies {
    dir: tempfile::TempDir,
}

impl Copies {
    fn new() -> Copies {
        let dir = tempfile::tempdir().unwrap();
        let ca = sipsensor_testkit::pki::TestCa::new("examples test CA");
        std::fs::write(dir.path().join("ca.pem"), ca.certificate_pem()).unwrap();
        Copies { dir }
    }

    fn of(&self, example: &Path) -> PathBuf {
        let text = std::fs::read_to_string(example).unwrap();
        let ca = self.dir.path().join("ca.pem");
        let copy = self.dir.path().join(example.file_name().unwrap());
        std::fs::write(&copy, text.replace(APPLIANCE_CA, ca.to_str().unwrap())).unwrap();
        copy
    }
}

const APPLIANCE_CA: &str = "/etc/sipsensor/ca.pem";

fn check(files: &[&Path]) -> (bool, String, String) {
    let copies = Copies::new();
    let files: Vec<PathBuf> = files.iter().map(|f| copies.of(f)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_sipsensor-agent"))
        .arg("check-config")
        .args(&files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_example_passes_check_config() {
    let all = examples();
    assert!(all.len() >= 7, "{all:?}");
    for p in all.iter().filter(|p| !p.ends_with("boot-override.yaml")) {
        let (ok, out, err) = check(&[p]);
        assert!(ok, "{}:\n{err}", p.display());
        assert!(out.starts_with("config OK: "), "{out}");
        assert!(
            out.contains("security: SIP over TLS") && out.contains("SRTP required"),
            "{out}"
        );
    }
}

/// Examples are copied as they are: each one uses TLS (and so SRTP) with
/// the appliance's CA file, unless it says why not on its `transport` line.
#[test]
fn every_example_is_secure_or_says_why_not() {
    for p in examples()
        .iter()
        .filter(|p| !p.ends_with("boot-override.yaml"))
    {
        let text = std::fs::read_to_string(p).unwrap();
        let transport = text
            .lines()
            .find(|l| l.trim_start().starts_with("transport:"))
            .unwrap_or_else(|| panic!("{}: name the transport", p.display()));
        let value = transport.split(':').nth(1).unwrap_or_default();
        assert!(
            value.trim_start().starts_with("tls") || transport.contains('#'),
            "{}: `{transport}` without a comment saying why",
            p.display()
        );
        if value.trim_start().starts_with("tls") {
            assert!(
                text.contains(&format!("ca_file: {APPLIANCE_CA}")),
                "{}: show the CA file",
                p.display()
            );
            assert!(!text.contains("srtp: off"), "{}", p.display());
        }
    }
}

#[test]
fn boot_override_merges_over_an_example() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (ok, out, err) = check(&[&dir.join("simulated.yaml"), &dir.join("boot-override.yaml")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("identity: sip:sensor-0042@example.net"),
        "{out}"
    );
    assert!(out.contains("stream: 10 Hz, 2 samples per packet"), "{out}");
}

#[test]
fn every_sensor_type_has_an_example() {
    let keys = sipsensor_agent::config::schema::keys();
    let Some(sipsensor_agent::config::schema::KeyKind::OneOf(types)) = keys.get("sensors[].type")
    else {
        panic!("sensors[].type is not an enum");
    };
    let texts: Vec<String> = examples()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for t in *types {
        assert!(
            texts.iter().any(|x| x.contains(&format!("type: {t}\n"))),
            "no example for sensor type {t}"
        );
    }
    assert!(
        texts.iter().any(|x| x.contains("inputs:")),
        "no GPIO input example"
    );
}
