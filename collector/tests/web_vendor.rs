//! The vendored chart library is exactly the version package.json pins
//! (and, when `npm ci` has run, byte for byte what npm installed after
//! checking its integrity hash).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn is_exact_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn vendored_uplot_matches_the_pinned_version() {
    let pkg = json(&web().join("package.json"));
    let lock = json(&web().join("package-lock.json"));
    for (name, section) in [
        ("uplot", "dependencies"),
        ("playwright-core", "devDependencies"),
    ] {
        let pinned = pkg[section][name].as_str().unwrap();
        assert!(
            is_exact_version(pinned),
            "{name} must be pinned exactly, not {pinned:?}"
        );
        assert_eq!(
            lock["packages"][format!("node_modules/{name}")]["version"],
            pinned,
            "package-lock.json disagrees with package.json about {name}"
        );
    }
    let pinned = pkg["dependencies"]["uplot"].as_str().unwrap();
    let vendored = std::fs::read(web().join("vendor/uPlot.iife.min.js")).unwrap();
    let header = format!("/*! https://github.com/leeoniya/uPlot (v{pinned}) */");
    assert!(
        vendored.starts_with(header.as_bytes()),
        "vendor/uPlot.iife.min.js is not uPlot {pinned}: run `make collector-web-vendor`"
    );
    let licence = std::fs::read_to_string(web().join("vendor/uPlot.LICENSE")).unwrap();
    assert!(licence.contains("The MIT License"));

    let installed = web().join("node_modules/uplot");
    if !installed.is_dir() {
        common::skip_or_fail(&format!(
            "byte comparison with npm's uplot: run `npm ci` in {}",
            web().display()
        ));
        return;
    }
    assert_eq!(json(&installed.join("package.json"))["version"], pinned);
    for (vendor, dist) in [
        ("uPlot.iife.min.js", "dist/uPlot.iife.min.js"),
        ("uPlot.min.css", "dist/uPlot.min.css"),
        ("uPlot.LICENSE", "LICENSE"),
    ] {
        assert!(
            std::fs::read(web().join("vendor").join(vendor)).unwrap()
                == std::fs::read(installed.join(dist)).unwrap(),
            "vendor/{vendor} differs from npm's uplot {pinned}: run `make collector-web-vendor`"
        );
    }
}

#[test]
fn exact_versions() {
    assert!(is_exact_version("1.6.32"));
    assert!(!is_exact_version("^1.6.32"));
    assert!(!is_exact_version("1.6"));
    assert!(!is_exact_version("1.6.x"));
}
