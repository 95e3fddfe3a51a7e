"""The guest's peers inside the test's network namespace: Kamailio with the
repository's deploy/kamailio/kamailio.cfg (the same flags and db_text
database as tests/harness/src/kamailio.rs) as registrar and proxy, and the
collector, registered with Kamailio as `collector`, storing into SQLite.

Both speak SIP over TLS (RFC 3261 26) with certificates of a throw-away
site CA (SiteCa), as the appliance does by default: the guest's agent
registers with Kamailio over TLS, Kamailio relays its INVITE over TLS to
the collector, and the collector answers with SRTP keys (RFC 4568), which
it only does for an INVITE that came over TLS."""

import json
import os
import shutil
from pathlib import Path

from common import ROOT, require_file, require_tool, run, wait_for
from netns import GUEST_IP, HOST_IP, TAP

SIP_PORT = 5060
SIP_TLS_PORT = 5061


class SiteCa:
    """A throw-away site CA made with openssl, and certificates it signs
    for the peers' address (an IP subjectAltName: the agent checks the
    address of an IP URI, RFC 5922 does not allow less)."""

    def __init__(self, directory):
        self.openssl = require_tool("openssl", "openssl")
        self.dir = Path(directory) / "pki"
        self.dir.mkdir(parents=True)
        self.certificate = self.dir / "ca.pem"
        self.key = self.dir / "ca.key"
        run([self.openssl, "req", "-x509", "-new", "-noenc", *self._ec(), "-keyout", self.key,
             "-out", self.certificate, "-days", "2", "-subj", "/CN=boot test site CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    @staticmethod
    def _ec():
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]

    def pem(self):
        return self.certificate.read_text()

    def issue(self, name, ip):
        """(certificate, private key) paths of a server and client
        certificate for IP, the key readable by its owner only."""
        cert, key, csr = (self.dir / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
        run([self.openssl, "req", "-new", "-noenc", *self._ec(), "-keyout", key, "-out", csr,
             "-subj", f"/CN={name}"])
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth,clientAuth\n")
        run([self.openssl, "x509", "-req", "-in", csr, "-CA", self.certificate,
             "-CAkey", self.key, "-CAcreateserial", "-out", cert, "-days", "2",
             "-extfile", ext])
        os.chmod(key, 0o600)
        return cert, key


def db_text_escape(value):
    if any(c in value for c in "\n\r\0"):
        raise ValueError(f"db_text cannot hold {value!r}")
    return value.replace("\\", "\\\\").replace(":", "\\:")


class Kamailio:
    """Kamailio as registrar and proxy on HOST_IP:5060 (UDP and TCP) and
    HOST_IP:5061 (TLS, WITH_TLS) in the namespace, with the given (user,
    password) subscribers and a certificate of SITE_CA."""

    def __init__(self, netns, directory, subscribers, site_ca, domain=None):
        tls_module = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so")
        require_file(tls_module, "install kamailio-tls-modules")
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
        # The tls module's profiles, as tests/harness/src/kamailio.rs
        # writes them: as a server no client certificate (digest
        # authenticates users); as a client the collector's is verified.
        cert, key = site_ca.issue("kamailio", HOST_IP)
        tls_config = self.dir / "tls.cfg"
        tls_config.write_text(
            f"[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n"
            f"require_certificate = no\ncertificate = {cert}\nprivate_key = {key}\n"
            f"ca_list = {site_ca.certificate}\n\n"
            f"[client:default]\nmethod = TLSv1.2+\nverify_certificate = yes\n"
            f"require_certificate = yes\nca_list = {site_ca.certificate}\n")
        cmd = [
            self.binary, "-DD", "-E", "-f", ROOT / "deploy" / "kamailio" / "kamailio.cfg",
            "-n", "2", "-m", "32", "-M", "4", "-Y", self.dir,
            "-l", f"udp:{listen}", "-l", f"tcp:{listen}",
            "-l", f"tls:{HOST_IP}:{SIP_TLS_PORT}",
            "-A", "WITH_TLS", "-A", f'TLS_CONFIG="{tls_config}"',
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

    def usrloc(self, user):
        """USER's registered contacts as usrloc keeps them, one dict of
        kamcmd's fields ("Address", "Socket", "Received", ...) each."""
        result = self.rpc("ul.dump", check=False)
        if result.returncode != 0:
            return []
        contacts, current = [], None
        # kamcmd's text form: "AoR: user" (the domain is not kept without
        # use_domain), then "Address: sip:..." and its fields per contact.
        for line in result.stdout.splitlines():
            name, _, value = line.strip().partition(":")
            if name.lower() == "aor":
                current = value.strip().split("@", 1)[0]
            elif current == user and name == "Address":
                contacts.append({name: value.strip()})
            elif current == user and contacts and name not in contacts[-1]:
                contacts[-1][name] = value.strip()
        return contacts

    def contacts(self, user):
        """The Contact URIs registered for USER@domain (usrloc)."""
        return [c["Address"] for c in self.usrloc(user)]

    def contact_sockets(self, user):
        """Kamailio's sockets (`proto:address:port`) that received the
        registrations of USER's contacts: `tls:...` for one over TLS."""
        return [c["Socket"] for c in self.usrloc(user) if "Socket" in c]

    def contact_received(self, user):
        """Where USER's registrations really came from (usrloc's
        `Received`, set by fix_nated_register for a UA behind a NAT: RFC
        3581 source address and port), one per contact, None for a
        contact registered from the address it names."""
        return [None if c.get("Received", "[not set]") in ("", "[not set]") else c["Received"]
                for c in self.usrloc(user)]

    def wait_registered(self, user, timeout):
        return wait_for(f"{user} to be registered with Kamailio", lambda: self.contacts(user),
                        timeout, 1.0)



COLLECTOR_SIP_PORT = 5070
COLLECTOR_TLS_PORT = 5071
COLLECTOR_RTP_PORT = 16384
COLLECTOR_HTTP_PORT = 8080
COLLECTOR_BUNDLE_PORT = 8443


class Collector:
    """sipsensor-collector in the namespace: SIP on HOST_IP:5070 and TLS on
    HOST_IP:5071 with a certificate of SITE_CA, registered with Kamailio
    over TLS as sip:collector@HOST_IP (sensors reach it by location
    lookup, Kamailio over TLS), trusting Kamailio's authentication,
    storing into SQLite in the test's directory. Stored samples are read
    with `sipsensor-collector export`, the live reception figures from its
    /api/streams."""

    def __init__(self, netns, directory, register, kamailio, site_ca=None, keyring=None):
        """Without SITE_CA: plain SIP and RTP only (registered over UDP),
        as a site that opted out of TLS. With KEYRING (the sensors' RAUC
        keyring, a PEM file) and SITE_CA: fleet updates (docs/protocol.md
        12), bundles served over HTTPS on HOST_IP:8443 under the SIP
        certificate, whose subjectAltName is the URL's host."""
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
        tls, registrar = "", f"sip:{HOST_IP}:{SIP_PORT}"
        if site_ca is not None:
            cert, key = site_ca.issue("collector", HOST_IP)
            tls = (f"  tls:\n    bind: {HOST_IP}:{COLLECTOR_TLS_PORT}\n"
                   f"    certificate: {cert}\n    private_key: {key}\n"
                   f"    ca_file: {site_ca.certificate}\n")
            registrar = f"sip:{HOST_IP}:{SIP_TLS_PORT};transport=tls"
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
{tls}  register:
    registrar: {registrar}
    aor: sip:{user}@{HOST_IP}
    expires: 600
  control_socket: {netns.procs.socket_dir("collector") / "control.sock"}
media:
  rtp_bind: {HOST_IP}:{COLLECTOR_RTP_PORT}
""")
        if keyring is not None and site_ca is not None:
            with open(config, "a") as f:
                f.write(f"update:\n  listen: {HOST_IP}:{COLLECTOR_BUNDLE_PORT}\n"
                        f"  url: https://{HOST_IP}:{COLLECTOR_BUNDLE_PORT}\n"
                        f"  bundle_dir: {self.dir / 'bundles'}\n  keyring: {keyring}\n")
        self.config = config
        self.kamailio, self.user = kamailio, user
        self.start()

    def start(self):
        """Start the collector on its config and storage (again, after
        `stop`: a collector restarted, its history kept) and wait until it
        is registered with Kamailio, where sensors find it."""
        self.proc = self.netns.start("collector", [self.binary, "run", "--config", self.config],
                                     env=dict(os.environ, RUST_LOG="info"))
        try:
            self.kamailio.wait_registered(self.user, 30)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncollector log:\n{self.proc.log_tail()}") from None

    def stop(self):
        """Stop it (SIGTERM: it unregisters); sensors lose their collector
        until `start`."""
        self.proc.stop()

    def _export(self, aor, kind):
        result = run([self.binary, "export", "--storage", f"sqlite://{self.db}",
                      "--sensor", aor, "--format", "json", "--kind", kind],
                     timeout=60, check=False)
        if result.returncode != 0:
            if "no sensor" in result.stderr:
                return []
            raise AssertionError(f"export failed: {result.stderr}")
        return json.loads(result.stdout)

    def samples(self, aor):
        """Every stored sample of the sensor, oldest first."""
        return self._export(aor, "samples")

    def gaps(self, aor):
        """Every stored gap of the sensor (`from_ns`, `to_ns`, `cause`, ...)."""
        return self._export(aor, "gaps")

    def wait_samples(self, aor, count, timeout, since_ns=0):
        def enough():
            rows = [r for r in self.samples(aor) if r["ts_ns"] >= since_ns]
            return rows if len(rows) >= count else None
        try:
            return wait_for(f"{count} stored samples of {aor}", enough, timeout, 1.0)
        except AssertionError as e:
            raise AssertionError(f"{e}\ncollector log:\n{self.proc.log_tail()}") from None

    def api(self, path):
        """GET PATH of the collector's HTTP API, read in the namespace."""
        result = self.netns.run(["python3", "-c",
                                 "import sys, urllib.request as u; sys.stdout.write(u.urlopen("
                                 f"u.Request('http://{HOST_IP}:{COLLECTOR_HTTP_PORT}{path}',"
                                 f" headers={{'Authorization': 'Bearer {self.http_token}'}}),"
                                 " timeout=10).read().decode())"], timeout=30)
        return json.loads(result.stdout)

    def streams(self):
        """The collector's live streams (/api/streams)."""
        return self.api("/api/streams")

    def fleet_sensor(self, aor):
        """AOR's latest fleet report in /api/fleet (`version`, `slot`,
        `update`, `target`, `progress`, `reason`, ...), None before one."""
        for sensor in self.api("/api/fleet").get("sensors", []):
            if aor in (sensor.get("aor"), sensor.get("sensor")):
                return sensor
        return None

    def update(self, *args, check=True):
        """`sipsensor-collector update ARGS` on this collector's config
        (`publish` reads its store; rollouts go to its control socket)."""
        command = args[0]
        flags = ["--config", self.config]
        return run([self.binary, "update", command, *flags, *args[1:]], timeout=300,
                   check=check)

    def publish(self, bundle):
        """Publish BUNDLE; returns its version as the collector read it."""
        out = self.update("publish", bundle).stdout
        # "published COMPATIBLE VERSION (SHA256, SIZE bytes) as URL"
        words = out.split()
        if len(words) < 3 or words[0] != "published":
            raise AssertionError(f"update publish said: {out}")
        return words[2]


# Reads the UDP payloads that the guest sends to PORT from the frames on
# the tap device (AF_PACKET: Python alone, no capture tool), as hex.
_CAPTURE = r"""
import json, socket, struct, sys, time
iface, src, port, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((iface, 0))
s.settimeout(1)
payloads, deadline = [], time.monotonic() + timeout
while len(payloads) < count and time.monotonic() < deadline:
    try:
        ip = s.recv(65535)[14:]
    except socket.timeout:
        continue
    if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != src:
        continue
    udp = ip[(ip[0] & 15) * 4:]
    if struct.unpack("!H", udp[2:4])[0] == port:
        payloads.append(udp[8:].hex())
print(json.dumps(payloads))
"""


def capture_rtp(netns, count, timeout, guest_ip=GUEST_IP):
    """The next COUNT RTP packets (bytes) from the guest (at GUEST_IP on
    NETNS's tap) to the collector."""
    result = netns.run(["python3", "-c", _CAPTURE, TAP, guest_ip, str(COLLECTOR_RTP_PORT),
                        str(count), str(timeout)], timeout=timeout + 30)
    return [bytes.fromhex(p) for p in json.loads(result.stdout)]
