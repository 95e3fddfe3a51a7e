//! Names the build in `sipsensor-agent --version`: "0.1.0 (abcdef123456
//! 2026-12-06)", the commit and its date.
//!
//! Where the commit comes from, first found wins:
//! 1. `SIPSENSOR_AGENT_BUILD`, set by the image builds (Buildroot, Yocto)
//!    from the stamp in the `make dist` archive;
//! 2. that stamp itself, `SIPSENSOR_BUILD` at the workspace root, for a
//!    plain `cargo build` in an unpacked archive;
//! 3. git, when the workspace root is the top of a git work tree (not a
//!    checkout that merely contains the sources, such as a build directory
//!    under someone else's repository);
//! 4. nothing: the bare package version.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const BUILD_VAR: &str = "SIPSENSOR_AGENT_BUILD";
const STAMP: &str = "SIPSENSOR_BUILD";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={BUILD_VAR}");
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_path_buf();

    let build = from_env()
        .or_else(|| from_stamp(&root))
        .or_else(|| from_git(&root));
    let package = env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match build {
        Some(build) => format!("{package} ({build})"),
        None => package,
    };
    println!("cargo:rustc-env=SIPSENSOR_AGENT_VERSION={version}");
}

fn from_env() -> Option<String> {
    let value = env::var(BUILD_VAR).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn from_stamp(root: &Path) -> Option<String> {
    let path = root.join(STAMP);
    // Watched only where it exists: cargo reruns a build script on every
    // build for a missing path.
    let text = std::fs::read_to_string(&path).ok()?;
    println!("cargo:rerun-if-changed={}", path.display());
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| line.to_owned())
}

fn from_git(root: &Path) -> Option<String> {
    let toplevel = git(root, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(toplevel).ok()? != std::fs::canonicalize(root).ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, and
    // packed-refs (where a branch lives after `git gc`).
    let mut watched = vec![git(root, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(root, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(root, &["rev-parse", "--git-path", &branch])?);
    }
    watched.push(git(root, &["rev-parse", "--git-path", "packed-refs"])?);
    for path in watched {
        let path = root.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = git(root, &["rev-parse", "HEAD"])?;
    let date = git(
        root,
        &[
            "log",
            "-1",
            "--format=%cd",
            "--date=format-local:%Y-%m-%d",
            "HEAD",
        ],
    )?;
    Some(format!("{} {date}", commit.get(..12)?))
}

/// One line of git's output, or None when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (!line.is_empty()).then(|| line.to_owned())
}
