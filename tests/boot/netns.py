"""A network namespace with a tap device for a guest, and DHCP on it.

The test's peers (Kamailio, the collector, DHCP) run inside the namespace
on HOST_IP; the guest's network card is the tap device, so the guest sees
only that namespace: no traffic reaches the machine's own network, and
qemu's user-mode network is never used. 198.51.100.0/24 is TEST-NET-2
(RFC 5737), which no interface of these machines uses.
"""

import itertools
import os
from pathlib import Path

from common import Processes, require_tool, run, tail, track, wait_for

SUBNET_PREFIX = "198.51.100"
HOST_IP = f"{SUBNET_PREFIX}.1"
GUEST_IP = f"{SUBNET_PREFIX}.10"
GUEST_MAC = "52:54:00:53:49:50"
TAP = "tap0"

_counter = itertools.count(1)


def _remove_stale():
    """Delete the namespaces of boot-test runs that were killed outright
    (SIGKILL leaves no chance to clean up): named after a process that no
    longer exists, with nothing running in them."""
    listed = run(["ip", "netns", "list"], check=False).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        parts = name.split("-")
        if not name.startswith("sipsensor-boot-") or len(parts) != 4 or not parts[2].isdigit():
            continue
        if Path(f"/proc/{parts[2]}").exists():
            continue
        if run(["ip", "netns", "pids", name], check=False).stdout.strip():
            continue
        run(["ip", "netns", "delete", name], check=False)


class Netns:
    """`ip netns` namespace NAME with TAP at ADDRESS (HOST_IP/24) and
    dnsmasq serving GUEST_IP to GUEST_MAC; `address=None`: no tap device
    (the peers' side of a NAT, nat.SensorLan). Call `close()` (tests
    register it as a cleanup): it stops every process started here and
    deletes the namespace, which removes the tap device with it."""

    def __init__(self, directory, procs: Processes, address=f"{HOST_IP}/24"):
        require_tool("ip", "iproute2")
        self.dir = Path(directory)
        self.procs = procs
        _remove_stale()
        self.name = f"sipsensor-boot-{os.getpid()}-{next(_counter)}"
        self.created = False
        run(["ip", "netns", "add", self.name])
        self.created = True
        track(self)
        self.run(["ip", "link", "set", "lo", "up"])
        if address is not None:
            self.run(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"])
            self.run(["ip", "addr", "add", address, "dev", TAP])
            self.run(["ip", "link", "set", TAP, "up"])

    def prefix(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, cmd, **kwargs):
        return run(self.prefix() + list(cmd), **kwargs)

    def start(self, name, cmd, env=None):
        """Start a process inside the namespace (`ip netns exec` execs the
        command, so the PID is the program's own)."""
        return self.procs.start(name, self.prefix() + list(cmd), env=env)

    def start_dhcp(self, mac=GUEST_MAC, ip=GUEST_IP):
        dnsmasq = require_tool("dnsmasq", "dnsmasq-base")
        leases = self.dir / "dnsmasq.leases"
        proc = self.start("dnsmasq", [
            dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            f"--interface={TAP}", "--bind-interfaces", "--user=root",
            f"--dhcp-range={ip},{ip},255.255.255.0,1h", f"--dhcp-host={mac},{ip}",
            f"--dhcp-leasefile={leases}", "--dhcp-authoritative", "--log-dhcp",
            "--log-facility=-", "--pid-file=",
        ])
        wait_for("dnsmasq to listen", lambda: "DHCP, IP range" in tail(proc.log)
                 or not proc.running(), 10)
        if not proc.running():
            raise AssertionError(f"dnsmasq exited:\n{proc.log_tail()}")
        return proc

    def close(self):
        self.procs.stop_all()
        if self.created:
            run(["ip", "netns", "delete", self.name], check=False)
            self.created = False
