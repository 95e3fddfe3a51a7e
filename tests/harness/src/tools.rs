//! Finding external programs, and the skip-or-fail rule for missing ones.

use std::path::{Path, PathBuf};

/// `SIPSENSOR_CI=1`: a missing tool is a failure, never a skip.
pub fn in_ci() -> bool {
    std::env::var("SIPSENSOR_CI").is_ok_and(|v| v == "1")
}

/// Where `name` is installed: `PATH`, then the sbin directories Debian puts
/// daemons in (kamailio is `/usr/sbin/kamailio`), which a user's PATH may lack.
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `true` if `name` is installed. If not: with `SIPSENSOR_CI=1` this panics
/// (the test fails); otherwise it prints why the test is skipped and
/// returns `false`, and the test returns early.
pub fn require_tool(name: &str) -> bool {
    if tool_path(name).is_some() {
        return true;
    }
    let package = debian_package(name);
    if in_ci() {
        panic!(
            "`{name}` is required but not installed (SIPSENSOR_CI=1; apt-get install {package})"
        );
    }
    eprintln!(
        "SKIPPED: `{name}` is not installed (apt-get install {package}); \
         with SIPSENSOR_CI=1 this is a failure"
    );
    false
}

/// `true` if tshark is installed and this user may capture on `lo`: root,
/// or a member of the `wireshark` group (Debian's setuid dumpcap, chosen
/// with `dpkg-reconfigure wireshark-common`). Skips or fails like
/// [`require_tool`] otherwise.
pub fn require_capture() -> bool {
    if !require_tool("tshark") {
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let in_group = std::process::Command::new("id")
        .arg("-Gn")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|g| g == "wireshark")
        });
    if root || in_group {
        return true;
    }
    let how = "run as root, or `dpkg-reconfigure wireshark-common` (allow non-root capture) \
               and `usermod -aG wireshark $USER`";
    if in_ci() {
        panic!("capturing on lo is not permitted (SIPSENSOR_CI=1): {how}");
    }
    eprintln!(
        "SKIPPED: capturing on lo is not permitted: {how}; with SIPSENSOR_CI=1 this is a failure"
    );
    false
}

fn debian_package(tool: &str) -> &str {
    match tool {
        "sipp" => "sip-tester",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(tool_path("sh").is_some());
        assert!(tool_path("sipsensor-no-such-tool").is_none());
    }

    #[test]
    fn missing_tool_skips_or_fails_by_env() {
        // The process environment is shared by tests; read, don't set it.
        let outcome = std::panic::catch_unwind(|| require_tool("sipsensor-no-such-tool"));
        if in_ci() {
            assert!(outcome.is_err(), "must fail in CI");
        } else {
            assert!(matches!(outcome, Ok(false)));
        }
        assert!(require_tool("sh"));
    }
}
