"""The guest's peers inside the test's network namespace: Kamailio with the
repository's deploy/kamailio/kamailio.cfg (the same flags and db_text
database as tests/harness/src/kamailio.rs) as registrar and proxy, and the
collector, registered with Kamailio as `collector`, storing into SQLite."""

import json
import os
import shutil
from pathlib import Path

from common import ROOT, require_file, require_tool, run, wait_for
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
        self.ctl = netns.procs.socket_dir("kamailio") / "ctl"
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
        # kamcmd's text form: "AoR: user" (the domain is not kept without
        # use_domain), then "Address: sip:..." per contact.
        for line in result.stdout.splitlines():
            line = line.strip()
            if line.lower().startswith("aor:"):
                current = line.split(":", 1)[1].strip()
            elif line.startswith("Address:") and current is not None:
                aor_user = current.split("@", 1)[0]
                if aor_user == user:
                    contacts.append(line.split(":", 1)[1].strip())
        return contacts

    def wait_registered(self, user, timeout):
        return wait_for(f"{user} to be registered with Kamailio", lambda: self.contacts(user),
                        timeout, 1.0)



COLLECTOR_SIP_PORT = 5070
COLLECTOR_RTP_PORT = 16384
COLLECTOR_HTTP_PORT = 8080


class Collector:
    """sipsensor-collector in the namespace: SIP on HOST_IP:5070, registered
    with Kamailio as sip:collector@HOST_IP (sensors reach it by location
    lookup), trusting Kamailio's authentication, storing into SQLite in the
    test's directory. Stored samples are read with `sipsensor-collector
    export`, the live reception figures from its /api/streams."""

    def __init__(self, netns, directory, register, kamailio):
        default = ROOT / "target" / "debug" / "sipsensor-collector"
        self.binary = require_file(os.environ.get("SIPSENSOR_COLLECTOR", default),
                                   "build it: cargo build --locked -p sipsensor-collector")
        self.netns = netns
        self.dir = Path(directory) / "collector"
        self.dir.mkdir(parents=True)
        self.db = self.dir / "collector.db"
        user, password = register
        creds = self.dir / "credentials.yaml"
        creds.write_text(f'users:\n  {user}: "{password}"\n')
        os.chmod(creds, 0o600)
        # HTTP beyond loopback needs a token.
        self.http_token = os.urandom(16).hex()
        token = self.dir / "http-token"
        token.write_text(self.http_token + "\n")
        os.chmod(token, 0o600)
        config = self.dir / "collector.yaml"
        config.write_text(f"""\
storage:
  url: sqlite://{self.db}
  flush_interval_ms: 100
http:
  bind: {HOST_IP}:{COLLECTOR_HTTP_PORT}
  token_file: {token}
sip:
  bind: {HOST_IP}:{COLLECTOR_SIP_PORT}
  advertise: {HOST_IP}
  domain: {HOST_IP}
  identity: sip:{user}@{HOST_IP}
  registrar: false
  credentials_file: {creds}
  trusted_peers: [{HOST_IP}/32]
  register:
    registrar: sip:{HOST_IP}:5060
    aor: sip:{user}@{HOST_IP}
    expires: 600
  control_socket: {netns.procs.socket_dir("collector") / "control.sock"}
media:
  rtp_bind: {HOST_IP}:{COLLECTOR_RTP_PORT}
""")
        self.proc = netns.start("collector", [self.binary, "run", "--config", config],
                                env=dict(os.environ, RUST_LOG="info"))
        try:
            kamailio.wait_registered(user, 30)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncollector log:\n{self.proc.log_tail()}") from None

    def samples(self, aor):
        """Every stored sample of the sensor, oldest first."""
        result = run([self.binary, "export", "--storage", f"sqlite://{self.db}",
                      "--sensor", aor, "--format", "json", "--kind", "samples"],
                     timeout=60, check=False)
        if result.returncode != 0:
            if "no sensor" in result.stderr:
                return []
            raise AssertionError(f"export failed: {result.stderr}")
        return json.loads(result.stdout)

    def wait_samples(self, aor, count, timeout, since_ns=0):
        def enough():
            rows = [r for r in self.samples(aor) if r["ts_ns"] >= since_ns]
            return rows if len(rows) >= count else None
        try:
            return wait_for(f"{count} stored samples of {aor}", enough, timeout, 1.0)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncollector log:\n{self.proc.log_tail()}") from None

    def streams(self):
        """The collector's live streams (/api/streams), read in the namespace."""
        result = self.netns.run(["python3", "-c",
                                 "import sys, urllib.request as u; sys.stdout.write(u.urlopen("
                                 f"u.Request('http://{HOST_IP}:{COLLECTOR_HTTP_PORT}/api/streams',"
                                 f" headers={{'Authorization': 'Bearer {self.http_token}'}}),"
                                 " timeout=10).read().decode())"], timeout=30)
        return json.loads(result.stdout)
