//! The board configuration docs/quick-start.md tells a newcomer to write
//! passes `check-config`, together with its secrets file.

#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[path = "../../tests/docs/markdown.rs"]
mod markdown;

fn yaml_after(marker: &str) -> String {
    markdown::yaml_after(&markdown::page("quick-start.md"), marker)
}

#[test]
fn the_board_config_of_the_quick_start_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(&secrets, yaml_after("`secrets.yaml`, the password")).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let board = yaml_after("`sipsensor.yaml`, who the sensor is");
    assert!(board.contains("type: iio"), "{board}");
    let config = dir.path().join("sipsensor.yaml");
    // Where the image would find the secrets: here, the temporary copy.
    std::fs::write(
        &config,
        format!("{board}secrets_file: {}\n", secrets.display()),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipsensor-agent"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("config OK: "), "{stdout}");
    assert!(stdout.contains("sip:sensor-0001@198.51.100.10"), "{stdout}");
    // The password the collector's credentials file gives sensor-0001.
    let creds = yaml_after("`/etc/sipsensor/credentials.yaml`");
    let secret = yaml_after("`secrets.yaml`, the password");
    let pw = secret.trim().strip_prefix("password: ").unwrap();
    assert!(creds.contains(&format!("sensor-0001: {pw}")), "{creds}");
}
