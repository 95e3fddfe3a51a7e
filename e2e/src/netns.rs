//! A network namespace for one sensor, joined to the host by a veth pair
//! on a documentation prefix (RFC 5737), so a test can cut the sensor's
//! link (down in its namespace) and restore it, as a pulled cable would.
//!
//! ```text
//!  host: Kamailio, collector ── <host_if> 198.51.100.1 ══ 198.51.100.2 <ns_if> ── agent
//!                                                          (namespace)
//! ```

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// A namespace and its veth pair; both deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    pub name: String,
    /// The host's end (tshark captures here).
    pub host_if: String,
    /// The sensor's end, inside the namespace.
    pub ns_if: String,
    pub host_ip: IpAddr,
    pub ns_ip: IpAddr,
}

/// Whether namespaces can be made here (root and `ip`): `false` skips the
/// test, or fails it with `SIPSENSOR_CI=1`, like a missing tool.
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && sipsensor_testkit::tool_path("ip").is_some() {
        return true;
    }
    let why = "network namespaces need root and `ip` (iproute2)";
    if std::env::var("SIPSENSOR_CI").is_ok_and(|v| v == "1") {
        panic!("{why} (SIPSENSOR_CI=1)");
    }
    eprintln!("SKIPPED: {why}; with SIPSENSOR_CI=1 this is a failure");
    false
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl NetNs {
    /// A namespace with the host at `prefix.1` and the sensor at
    /// `prefix.2` (/24), both links up. `prefix`: 198.51.100 or 203.0.113,
    /// one per test that runs at the same time.
    pub fn create(prefix: [u8; 3]) -> Result<Self, String> {
        // Interface names are at most 15 bytes; the PID keeps parallel
        // test processes apart.
        let tag = std::process::id() % 100_000;
        let [a, b, c] = prefix;
        let ns = Self {
            name: format!("sipsensor-e2e-{tag}"),
            host_if: format!("sse{tag}h"),
            ns_if: format!("sse{tag}n"),
            host_ip: IpAddr::V4(Ipv4Addr::new(a, b, c, 1)),
            ns_ip: IpAddr::V4(Ipv4Addr::new(a, b, c, 2)),
        };
        // Leftovers of a run that was killed before its drop.
        let _ = ip(&["netns", "del", &ns.name]);
        let _ = ip(&["link", "del", &ns.host_if]);
        ip(&["netns", "add", &ns.name])?;
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ])?;
        ip(&["link", "set", &ns.ns_if, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", ns.host_ip),
            "dev",
            &ns.host_if,
        ])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{}/24", ns.ns_ip),
            "dev",
            &ns.ns_if,
        ])?;
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        ns.link_up()?;
        Ok(ns)
    }

    /// The sensor's link down: nothing in or out of the namespace.
    pub fn link_down(&self) -> Result<(), String> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "down"])
    }

    /// The link up again (the kernel restores its connected route).
    pub fn link_up(&self) -> Result<(), String> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "up"])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and so both.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
