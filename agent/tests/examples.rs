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

fn check(files: &[&Path]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipsensor-agent"))
        .arg("check-config")
        .args(files)
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
