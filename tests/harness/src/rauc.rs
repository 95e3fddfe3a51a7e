//! Signed RAUC bundles for fleet-update tests: throw-away keys from
//! `images/scripts/mk-dev-keys` and `rauc bundle` of a small random image
//! (RAUC, mksquashfs and openssl must be installed: [`available`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether `rauc`, `mksquashfs` and `openssl` are all on the PATH.
pub fn available() -> bool {
    ["rauc", "mksquashfs", "openssl"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn run(command: &mut Command) {
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(status.success(), "{command:?}: {status}");
}

/// Keys `name` in `dir/name` (a CA, `ca.cert.pem`, and a signing
/// certificate it issued, `signing.cert.pem` and `signing.key.pem`).
pub fn keys(dir: &Path, name: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/scripts/mk-dev-keys");
    let out = dir.join(name);
    run(Command::new(script)
        .arg(&out)
        .env("SIPSENSOR_DEV_KEY_SUBJECT", format!("/CN={name}")));
    out
}

/// A bundle of `version` (compatible `sipsensor-test`) in `dir`, of a
/// small random image, `format` `verity` or `plain`, signed with `keys`.
pub fn bundle(dir: &Path, keys: &Path, version: &str, format: &str) -> PathBuf {
    let content = dir.join(format!("content-{version}-{format}"));
    std::fs::create_dir_all(&content).expect("bundle content directory");
    // Incompressible: RAUC refuses a payload squashfs packs into one block.
    let seed = version
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31) ^ u32::from(b));
    let image: Vec<u8> = (0..200_000u32)
        .map(|i| ((i ^ seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(content.join("rootfs.ext4"), image).expect("bundle image");
    let format_line = if format == "plain" {
        String::new()
    } else {
        format!("[bundle]\nformat={format}\n")
    };
    std::fs::write(
        content.join("manifest.raucm"),
        format!(
            "[update]\ncompatible=sipsensor-test\nversion={version}\n{format_line}\
             [image.rootfs]\nfilename=rootfs.ext4\n"
        ),
    )
    .expect("bundle manifest");
    let out = dir.join(format!("{version}-{format}.raucb"));
    run(Command::new("rauc")
        .arg("bundle")
        .arg(format!(
            "--cert={}",
            keys.join("signing.cert.pem").display()
        ))
        .arg(format!("--key={}", keys.join("signing.key.pem").display()))
        .arg(&content)
        .arg(&out));
    out
}
