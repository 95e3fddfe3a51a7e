"""The guest's peers inside the test's network namespace: Kamailio with the
repository's deploy/kamailio/kamailio.cfg (the same flags and db_text
database as tests/harness/src/kamailio.rs), and a UDP listener that counts
the RTP packets arriving for the collector."""

import json
import shutil
import time
from pathlib import Path

from common import ROOT, require_tool, run, wait_for
from netns import HOST_IP

SIP_PORT = 5060


def db_text_escape(value):
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"db_text cannot hold {value!r}")
    return value.replace("\\", "\\\\").replace(":", "\\:")


class Kamailio:
    """Kamailio as registrar and proxy on HOST_IP:5060 (UDP and TCP) in the
    namespace, with the given (user, password) subscribers."""

    def __init__(self, netns, directory, subscribers, domain=None):
        self.binary = require_tool("kamailio", "kamailio")
        self.kamcmd = require_tool("kamcmd", "kamailio")
        self.netns = netns
        self.dir = Path(directory) / "kamailio"
        db = self.dir / "db"
        db.mkdir(parents=True)
        template = ROOT / "deploy" / "kamailio" / "db"
        shutil.copy(template / "version", db / "version")
        table = (template / "subscriber").read_text()
        for i, (user, password) in enumerate(subscribers, start=1):
            table += f"{i}:{db_text_escape(user)}::{db_text_escape(password)}::\n"
        (db / "subscriber").write_text(table)
        self.ctl = self.dir / "ctl"
        listen = f"{HOST_IP}:{SIP_PORT}"
        cmd = [
            self.binary, "-DD", "-E", "-f", ROOT / "deploy" / "kamailio" / "kamailio.cfg",
            "-n", "2", "-m", "32", "-M", "4", "-Y", self.dir,
            "-l", f"udp:{listen}", "-l", f"tcp:{listen}",
            "-A", f'DBURL="text://{db}"',
            "-A", f'CTL_SOCKET="unix:{self.ctl}"',
            "-A", f'RPC_FIFO="{self.dir / "rpc.fifo"}"',
        ]
        if domain:
            cmd += ["-A", f'SIP_DOMAIN="{domain}"']
        self.proc = netns.start("kamailio", cmd)
        wait_for("Kamailio's control socket", self._ready, 20)

    def _ready(self):
        if not self.proc.running():
            raise AssertionError(f"kamailio exited:\n{self.proc.log_tail()}")
        return self.rpc("core.uptime", check=False).returncode == 0

    def rpc(self, *args, check=True):
        return run([self.kamcmd, "-s", f"unix:{self.ctl}", *args], timeout=10, check=check)

    def contacts(self, user):
        """The Contact URIs registered for USER@domain (usrloc)."""
        result = self.rpc("ul.dump", check=False)
        if result.returncode != 0:
            return []
        contacts = []
        current = None
        for line in result.stdout.splitlines():
            line = line.strip()
            if line.startswith("AOR:"):
                current = line.split(":", 1)[1].strip()
            elif line.startswith("Address:") and current is not None:
                aor_user = current.split("@", 1)[0]
                if aor_user == user:
                    contacts.append(line.split(":", 1)[1].strip())
        return contacts

    def wait_registered(self, user, timeout):
        return wait_for(f"{user} to be registered with Kamailio", lambda: self.contacts(user),
                        timeout, 1.0)


class UdpCounter:
    """Counts the UDP datagrams arriving at HOST_IP:PORT in the namespace
    (the collector's RTP port until the collector answers calls itself)."""

    SCRIPT = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
count, first, last, end = 0, None, None, time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    try:
        data, peer = s.recvfrom(65535)
    except socket.timeout:
        continue
    count += 1
    first = first or time.time()
    last = time.time()
    with open(sys.argv[4], "w") as f:
        json.dump({"count": count, "first": first, "last": last, "peer": peer[0]}, f)
"""

    def __init__(self, netns, directory, port, lifetime=600):
        self.state = Path(directory) / f"udp-{port}.json"
        script = Path(directory) / "udp_counter.py"
        script.write_text(self.SCRIPT)
        self.proc = netns.start(f"udp-{port}", ["python3", script, HOST_IP, str(port),
                                                str(lifetime), self.state])

    def read(self):
        try:
            return json.loads(self.state.read_text())
        except (OSError, ValueError):
            return {"count": 0}

    def wait_packets(self, n, timeout):
        return wait_for(f"{n} UDP packets", lambda: self.read()["count"] >= n and self.read(),
                        timeout, 0.5)


def sleep_bounded(seconds):
    time.sleep(seconds)
