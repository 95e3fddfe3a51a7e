"""Boot tests of the Debian-based armhf image (`make image`, images/debian/)
under `qemu-system-arm -M virt` (TCG), started by Debian's U-Boot through
the A/B boot script of images/uboot/:

1. first boot on slot A: the agent starts from systemd with the
   technician's files from the boot partition (the site CA among them, as
   ca.pem), registers with Kamailio over TLS, verifying its certificate
   against that CA, and streams its simulated sensor over SRTP to the
   collector, which stores it;
2. OTA over SIP (issue #16, docs/protocol.md 12): the collector publishes
   a signed verity bundle and rolls it out; the agent, subscribed to by the
   collector through Kamailio on its own flow, downloads it over HTTPS,
   installs it, reboots into slot B, which is marked good once the agent
   has registered and streamed, and the collector shows it good;
3. rollback: a bundle signed by another CA is refused by the collector and
   by `rauc install` and changes nothing; a bundle whose agent cannot
   register, rolled out over SIP, fails its trial boots until U-Boot
   returns to slot A, where the agent streams again, reports the rollback,
   and the rollout halts;
4. power cut in the middle of `rauc install`: the next boot is slot A and
   the data partition is intact;
5. a hung system (a real-time busy loop that starves everything else,
   systemd included) is reset by the watchdog systemd feeds (the kernel's
   softdog: QEMU's armhf virt has no watchdog Debian's kernel drives), and
   U-Boot counts the attempt;
6. power cut mid-stream (issue #15, test 6): the collector stops, the
   agent samples into its spool alone, QEMU is killed; powered on again,
   the agent backfills, and of what it sampled before the cut at most the
   spool's fsync interval is lost, the time the board was off is stored
   as not sampled, and everything else exactly once;
7. power cut during an update's download (issue #16): slot A boots, the
   agent resumes the download where it stopped and goes on;
9. boot files in a bundle (issue #16): a power cut while RAUC writes the
   boot slot leaves the old boot partition; installed by the agent's
   user, the next boot runs the new boot script with the technician's
   files carried across; the agent's user may install and read slots
   over D-Bus but not mark them.

Nothing is open: the console takes root's password only because the
technician's console-password file (a hash) is on the card, SSH takes the
key from the card, and the agent runs as its own user with two
capabilities (test 1).

The guest's only network is a tap device in a namespace the test creates,
the sensor's LAN (private addresses, DHCP), behind a masquerading NAT
with no port forwarded (nat.py) to the peers' namespace, where Kamailio
(deploy/kamailio/kamailio.cfg, with its TLS) and the collector run; the
agent registers on its own TLS flow and is called back over it (RFC
5626), and Kamailio records the NAT's address for it. A throw-away site
CA signs the peers' certificates.
Each test starts from a fresh copy of the card and runs alone.
"""

import json
import os
import re
import time
import unittest

import boot_slot
import bundles
import history
import waveform
from common import (IMAGE_DIR, ROOT, copy_sparse, cost, drop_images, Processes, require_file,
                    require_root, require_tool, run, test_dir, wait_for)
from guest import Qemu, qemu_arm_virt
from nat import LAN_GUEST_IP, NAT_PUBLIC_IP, SensorLan, can_connect, routed_to_lan
from netns import GUEST_MAC, HOST_IP, Netns
from peers import Collector, Kamailio, SiteCa, capture_rtp

BOARD = "qemu-arm-virt"
SENSOR = "sensor-0001"
SENSOR_PASSWORD = "board-secret-0001"
# root's console password, given to the image as a hash on the boot
# partition (console-password); without it the console is locked.
CONSOLE_PASSWORD = "technician-0001"
# The agent's user (images/systemd/sipsensor.sysusers) and its capability
# set: CAP_IPC_LOCK (bit 14) and CAP_SYS_NICE (bit 23).
AGENT_UID = 950
AGENT_CAPS = (1 << 14) | (1 << 23)
# images/systemd/watchdog.conf
RUNTIME_WATCHDOG_S = 30
AOR = f"sip:{SENSOR}@{HOST_IP}"
# U-Boot to the login prompt: about 60 s on a quiet 2-core machine, 150 s
# and more while others load it (a bound for a hung boot, not a target).
BOOT_TIMEOUT = 600
# `rauc install` of the ~100 MB bundle, verity-checked under emulation.
INSTALL_TIMEOUT = 900
# Test 6: how long the agent samples into its spool alone before the
# power cut, and how long the collector may take to get it all after.
SPOOLED_ONLY_S = 10
BACKFILL_TIMEOUT_S = 120
# Boot partition offset (images/layout.env SIPSENSOR_BOOT_OFFSET).
BOOT_OFFSET = 4 * 1024 * 1024
# Each half of the boot region (SIPSENSOR_BOOT_SIZE): RAUC's boot slot.
BOOT_HALF = 64 * 1024 * 1024
# Test 7: a kernel argument from the technician's bootenv.txt.
KEPT_BOOTARG = "sipsensor.kept=1"
# The agent's user and groups, as its service runs it.
AS_AGENT = "setpriv --reuid=sipsensor --regid=sipsensor --init-groups"
# The bus refusing a call by policy (dbus-daemon's words).
DBUS_DENIED = r"AccessDenied|[Rr]ejected send message"

# The simulated sensor of the technician's config, as waveform.py takes it.
RATE = 10
WAVE = dict(seed=7, channel=0, sample_period_ns=1_000_000_000 // RATE, offset=21.5,
            amplitude=2.0, period_ns=60_000_000_000)

TECHNICIAN_CONFIG = f"""\
# Written by tests/boot/test_armhf.py onto the card's boot partition, as a
# technician would.
identity:
  aor: {AOR}
  display_name: Boot test sensor
sip:
  transport: tls
  registrar: sip:{HOST_IP}
  collector: sip:collector@{HOST_IP}
  listen: false
  expires: 120
stream:
  rate: {RATE}
  samples_per_packet: 1
sensors:
  - type: simulated
    name: sim
    seed: {WAVE["seed"]}
    interval_ms: {1000 // RATE}
    channels:
      - {{name: temperature, unit: Cel, scale: 0.01, offset: {WAVE["offset"]}, amplitude: {WAVE["amplitude"]}, period_ms: {WAVE["period_ns"] // 1000000}}}
logging:
  level: info
"""

# A release of the image whose agent cannot register: its own config is
# invalid (an unknown key), and its health check gives up after 5 s
# instead of 300 so that three failed trial boots fit in the test.
BAD_AGENT_CONFIG = """\
# Broken on purpose by tests/boot/test_armhf.py.
identity:
  aor: sip:broken@example.invalid
no_such_key: true
"""
BAD_DEFAULTS = """\
SIPSENSOR_AGENT_CONFIG=/etc/sipsensor/agent.yaml
SIPSENSOR_AGENT_OVERRIDE=/boot/firmware/sipsensor.yaml
SIPSENSOR_HEALTH_TIMEOUT=5
SIPSENSOR_DATA_DIR=/data/sipsensor
"""


def log(msg):
    print(f"[boot-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class ArmhfImage(unittest.TestCase):
    def setUp(self):
        require_root()
        require_tool("qemu-system-arm", "qemu-system-arm")
        require_tool("mcopy", "mtools")
        self.card_src = require_file(IMAGE_DIR / BOARD / "sipsensor-sdcard.img",
                                     "run `make image` (as root) first")
        self.uboot = require_file(IMAGE_DIR / BOARD / "u-boot.bin", "run `make image` first")
        self.env = bundles.image_env()
        self.dir = test_dir(self)
        self.procs = Processes(self.dir)
        self.addCleanup(self.procs.stop_all)
        # The peers' network and, behind a NAT, the sensor's LAN (nat.py).
        self.netns = Netns(self.dir, self.procs, address=None)
        self.addCleanup(self.netns.close)
        self.lan = SensorLan(self.netns)
        self.addCleanup(self.lan.close)
        self.lan.start_dhcp()
        self.site_ca = SiteCa(self.dir)
        self.kamailio = Kamailio(self.netns, self.dir, [(SENSOR, SENSOR_PASSWORD),
                                                        ("collector", "collector-secret")],
                                 self.site_ca)
        # Fleet updates on: the image's development CA is the sensors'
        # RAUC keyring (images/debian/build-image).
        self.collector = Collector(self.netns, self.dir, ("collector", "collector-secret"),
                                   self.kamailio, self.site_ca,
                                   keyring=IMAGE_DIR / "keys" / "ca.cert.pem")
        self.card = self.dir / "card.img"
        copy_sparse(self.card_src, self.card)
        # The technician's files, the way they reach a real card: the
        # agent's settings and the password on the FAT boot partition.
        self.write_boot_file("sipsensor.yaml", TECHNICIAN_CONFIG)
        self.write_boot_file("secrets.yaml", f"password: {SENSOR_PASSWORD}\n")
        self.write_boot_file("ca.pem", self.site_ca.pem())
        run([require_tool("ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "",
             "-f", self.dir / "id_ed25519"])
        self.write_boot_file("authorized_keys", (self.dir / "id_ed25519.pub").read_text())
        console_hash = run(["openssl", "passwd", "-6", CONSOLE_PASSWORD]).stdout.strip()
        self.write_boot_file("console-password", console_hash + "\n")
        self.qemu = None
        self.runs = 0
        self.started = time.monotonic()

    def tearDown(self):
        drop_images(self.dir)
        log(f"{self.id()}: {time.monotonic() - self.started:.0f} s; logs in {self.dir}")

    # ---- helpers ----------------------------------------------------------

    def write_boot_file(self, name, text):
        local = self.dir / name
        local.write_text(text)
        run(["mcopy", "-o", "-i", f"{self.card}@@{BOOT_OFFSET}", local, f"::{name}"],
            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))

    def power_on(self, sticks=()):
        """Start QEMU on the card (a new process: the board is switched on)."""
        if self.qemu is not None:
            self.qemu.close()
        self.runs += 1
        self.qemu = Qemu(f"qemu-{self.runs}",
                         qemu_arm_virt(self.card, self.uboot, sticks, GUEST_MAC),
                         self.dir, netns=self.lan)
        self.addCleanup(self.qemu.close)
        return self.qemu.console

    def expect_slot(self, slot, attempts_left=None):
        """U-Boot's boot script chooses SLOT (and counts its attempt)."""
        c = self.qemu.console
        m = c.expect(r"sipsensor: trying slot (\w) \((\d+) attempts left", BOOT_TIMEOUT,
                     "the A/B boot script's choice of slot")
        self.assertEqual(m.group(1).decode(), slot, "slot chosen by U-Boot")
        if attempts_left is not None:
            self.assertEqual(int(m.group(2)), attempts_left, "attempts left")
        m = c.expect(r"sipsensor: booting slot (\w):", 60, "the boot of the chosen slot")
        self.assertEqual(m.group(1).decode(), slot)

    def boot(self, slot, attempts_left=None):
        """Wait for U-Boot to take SLOT, then log in on the console."""
        t0 = time.monotonic()
        self.expect_slot(slot, attempts_left)
        self.qemu.console.login(BOOT_TIMEOUT, CONSOLE_PASSWORD)
        log(f"slot {slot} booted to a shell in {time.monotonic() - t0:.0f} s")
        _, cmdline = self.sh("cat /proc/cmdline")
        self.assertIn(f"rauc.slot={slot}", cmdline.split())
        self.assertIn(f"root=PARTUUID=53495053-0{2 if slot == 'A' else 3}", cmdline.split())

    def sh(self, command, timeout=120, check=True):
        return self.qemu.console.sh(command, timeout=timeout, check=check)

    def reboot(self):
        self.qemu.console.send("systemctl reboot\n")

    def slot_states(self):
        """{bootname: boot status} from `rauc status` in the guest."""
        _, out = self.sh("rauc status --detailed --output-format=json", timeout=120)
        status = json.loads(out[out.index("{"):])
        states = {}
        for entry in status["slots"]:
            for _, slot in entry.items():
                states[slot["bootname"]] = slot.get("boot_status")
        return status, states

    def boot_env(self):
        _, out = self.sh("fw_printenv")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_health(self, timeout=240):
        """Wait for the health check of this boot to have finished."""
        def done():
            status, out = self.sh("systemctl is-active sipsensor-health.service", check=False)
            return out.strip() in ("inactive", "failed") and out.strip()
        return wait_for("the health check to finish", done, timeout, 2)

    def wait_registered(self, timeout=120):
        """The agent in the guest is registered, as it and Kamailio say."""
        status, out = self.sh(f"sipsensor-agent status --wait-registered {timeout}",
                              timeout=timeout + 30, check=False)
        if status != 0:
            _, state = self.sh("sipsensor-agent status --json; journalctl -u sipsensor-agent "
                               "--no-pager -n 30", check=False)
            self.fail(f"the agent did not register within {timeout} s (exit {status}):\n"
                      f"{out}\n{state}\nKamailio:\n{self.kamailio.proc.log_tail(20)}")
        contacts = self.kamailio.wait_registered(SENSOR, 30)
        # Kamailio saw the registration come from the NAT's public
        # address, and reaches the sensor there (on its TLS flow), not at
        # the private address the agent knows itself by.
        received = self.kamailio.contact_received(SENSOR)
        self.assertTrue(received and all(r and NAT_PUBLIC_IP in r and LAN_GUEST_IP not in r
                                         for r in received),
                        f"contacts {contacts}, received from {received}: not through the NAT")
        sockets = self.kamailio.contact_sockets(SENSOR)
        self.assertTrue(sockets, "Kamailio names no socket for the sensor's contact")
        self.assertTrue(all(s.startswith("tls:") for s in sockets),
                        f"registered over {sockets}, not TLS")
        return contacts

    def assert_behind_nat(self):
        """Nothing on the NAT's outside opens a connection to the guest:
        not to its private address (routed there through the NAT, as an
        attacker next to it could) nor to the NAT's public one, while the
        same port answers on the LAN (dropbear's SSH, port 22)."""
        self.assertTrue(can_connect(self.lan, LAN_GUEST_IP, 22), "SSH from the sensor's LAN")
        routed_to_lan(self.netns)
        self.assertFalse(can_connect(self.netns, LAN_GUEST_IP, 22),
                         "a connection from the peers' side reached the guest through the NAT")
        self.assertFalse(can_connect(self.netns, NAT_PUBLIC_IP, 22),
                         "the NAT forwards a port to the guest")
        log(f"the guest ({LAN_GUEST_IP}, behind {NAT_PUBLIC_IP}) is unreachable from the "
            "peers' side")

    def assert_site_ca_taken(self):
        """The site CA went from the card's ca.pem to the data partition,
        where the agent's /etc/sipsensor/ca.pem points, and stays on the
        card (it is public)."""
        _, link = self.sh("readlink /etc/sipsensor/ca.pem")
        self.assertEqual(link.strip(), "/data/sipsensor/ca.pem")
        _, mode = self.sh("stat -c '%a %U' /data/sipsensor/ca.pem")
        self.assertEqual(mode.strip(), "644 root")
        _, taken = self.sh("cat /etc/sipsensor/ca.pem")
        self.assertEqual(taken.split(), self.site_ca.pem().split())
        self.sh("cmp /boot/firmware/ca.pem /data/sipsensor/ca.pem")

    def assert_srtp(self):
        """The samples cross the network as SRTP (RFC 3711): no RTP packet
        to the collector shows the payload header in the clear (VER 1,
        KIND 0, one channel, one instant: docs/protocol.md 5), and each is
        longer than the plain packet by at least an 80-bit tag."""
        packets = capture_rtp(self.lan, 10, 30, guest_ip=LAN_GUEST_IP)
        self.assertEqual(len(packets), 10, "RTP packets to the collector")
        for packet in packets:
            self.assertEqual(packet[0] >> 6, 2, "an RTP header in the clear")
            # The payload starts after the CSRCs and the header extension
            # (RFC 3550 5.3.1; the sample instant, docs/protocol.md 11.2).
            at = 12 + 4 * (packet[0] & 0x0F)
            if packet[0] & 0x10:
                at += 4 + 4 * int.from_bytes(packet[at + 2:at + 4], "big")
            plain = at + 4 + 4
            self.assertGreaterEqual(len(packet), plain + 10, packet.hex())
            self.assertNotEqual((packet[at], packet[at + 2], packet[at + 3]), (0x10, 1, 1),
                                f"the payload header in the clear: {packet.hex()}")
        log(f"{len(packets)} RTP packets to the collector, {len(packets[0])} bytes each "
            f"(plain: {plain}), payload encrypted")

    def assert_streaming(self, seconds=5):
        """Fresh samples of the simulated sensor arrive in the collector's
        store: at the configured rate, one sample period apart, with
        wall-clock times of now, and every value exactly the agent's
        waveform (recomputed by waveform.py) at consecutive reads."""
        since = time.time_ns()
        rows = self.collector.wait_samples(AOR, seconds * RATE, seconds * 8, since_ns=since)
        rows = [r for r in rows if r["name"] == "sim.temperature"]
        self.assertGreaterEqual(len(rows), seconds * RATE)
        self.assertEqual({r["unit"] for r in rows}, {"Cel"})
        times = [r["ts_ns"] for r in rows]
        spacing = [round((b - a) / 1e6) for a, b in zip(times, times[1:])]
        period = 1000 // RATE
        # Timed by sender reports, a sample may land 1 ms off where a new
        # report re-anchors the timeline of a starved TCG guest (its report
        # is read late); never more, and rarely.
        self.assertLessEqual(set(spacing), {period - 1, period, period + 1},
                             f"sample spacing in ms: {sorted(set(spacing))}")
        self.assertGreaterEqual(spacing.count(period), 0.9 * len(spacing),
                                f"sample spacing in ms: {spacing}")
        self.assertLess(abs(times[-1] - time.time_ns()) / 1e9, 30,
                        "the newest sample's wall-clock time is not now")
        indices = waveform.check_stored([r["raw"] for r in rows], 0.01, **WAVE)
        steps = [b - a for a, b in zip(indices, indices[1:])]
        log(f"{len(rows)} samples stored, each exactly the waveform's value, at indices "
            f"{indices[0]}..{indices[-1]} ({steps.count(0)} repeated, {steps.count(2)} "
            f"skipped reads)")
        # Sample and hold may repeat or skip a read now and then when the
        # guest is starved (in pairs: the two clocks run at one rate), but
        # most samples are the next read, not a stale one sent again.
        self.assertGreaterEqual(steps.count(1), 0.5 * len(steps), f"index steps {steps}")
        return rows

    def spool_prefixes(self, sizes):
        """md5 of the first SIZE bytes of each spool segment named in
        `sizes` (lines of `stat -c '%s %n'`), as {name: md5}."""
        prefixes = {}
        for line in sizes.splitlines():
            if not line.strip():
                continue
            size, name = line.split(maxsplit=1)
            _, digest = self.sh(f"cd /data && head -c {int(size)} {name} | md5sum")
            prefixes[name] = digest.split()[0]
        return prefixes

    def assert_agent_unprivileged(self):
        """The running agent: its own uid and groups, CapEff the two."""
        _, pid = self.sh("systemctl show -p MainPID --value sipsensor-agent.service")
        _, status = self.sh(f"cat /proc/{pid.strip()}/status")
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        self.assertEqual(fields["Name"].strip(), "sipsensor-agent")
        self.assertEqual({int(u) for u in fields["Uid"].split()}, {AGENT_UID}, "uid")
        self.assertEqual(int(fields["CapEff"], 16), AGENT_CAPS, "CapEff")
        self.assertEqual(int(fields["CapBnd"], 16), AGENT_CAPS, "CapBnd")
        _, gids = self.sh("getent group i2c gpio iio | cut -d: -f3")
        self.assertLessEqual(set(gids.split()), set(fields["Groups"].split()), "device groups")
        log(f"agent pid {pid.strip()}: uid {AGENT_UID}, CapEff {fields['CapEff'].strip()}, "
            f"groups {fields['Groups'].strip()}")

    def assert_nothing_open(self):
        """root's password came from the card, the image itself has none,
        and the root file system carries no private key (host keys are
        made on the device, on the data partition)."""
        status, _ = self.sh("test -e /boot/firmware/console-password", check=False)
        self.assertNotEqual(status, 0, "console-password is still on the boot partition")
        self.sh("mkdir -p /run/image-root && mount -o ro,bind / /run/image-root")
        _, root = self.sh("grep '^root:' /run/image-root/etc/shadow")
        self.assertEqual(root.split(":")[1], "*", "the image's own root password")
        _, keys = self.sh("find /run/image-root -xdev -type f \\( -name '*host_key*' "
                          "-o -name '*.key' -o -name '*.key.pem' \\) -print; "
                          "(cd /run/image-root && grep -rlI -- '-----BEGIN .*PRIVATE KEY' "
                          "etc root var/lib 2>/dev/null); true")
        self.sh("umount /run/image-root")
        self.assertEqual(keys.strip(), "", "private keys in the image")


    # ---- fleet updates over SIP (docs/protocol.md 12) ------------------

    def fleet(self):
        """The guest's latest fleet report as the collector shows it."""
        return self.collector.fleet_sensor(AOR)

    def wait_fleet(self, what, predicate, timeout):
        """Wait for a fleet report of the guest that PREDICATE accepts;
        each new state on the way is logged."""
        seen = []

        def check():
            report = self.fleet()
            if report is not None:
                state = (report["version"], report["update"], report.get("progress"))
                if not seen or seen[-1] != state:
                    seen.append(state)
                    log(f"fleet: {report['version']} slot {report['slot']} {report['update']} "
                        f"{report.get('target') or ''} {report.get('progress') or ''} "
                        f"{report.get('reason') or ''}")
            return report if report is not None and predicate(report) else None
        try:
            return wait_for(what, check, timeout, 2)
        except AssertionError as e:
            raise AssertionError(f"{e}; the guest reported {seen}\ncollector log:\n"
                                 f"{self.collector.proc.log_tail(20)}") from None

    def roll_out(self, bundle):
        """Publish BUNDLE and roll it out to the guest alone (one canary,
        no failure allowed); returns its version."""
        version = self.collector.publish(bundle)
        out = self.collector.update("rollout", version, "--sensors", SENSOR, "--canary", "1",
                                    "--max-failures", "0").stdout
        log(f"rollout of {version}: {out.strip()}")
        return version

    def wait_rebooting(self, target, timeout=INSTALL_TIMEOUT):
        """Follow the guest's update until it reboots into the new slot:
        the console shows U-Boot again (the fleet report `rebooting` may
        be missed between two polls)."""
        c = self.qemu.console
        start = c.mark()

        def rebooted():
            report = self.fleet()
            if report and report["update"] in ("failed", "rolled-back"):
                self.fail(f"the update failed: {report}")
            return re.search(r"U-Boot \d{4}\.\d{2}", c.text_since(start))
        self.wait_fleet(f"the guest to take up {target}",
                        lambda r: r.get("target") == target and r["update"] != "idle", 120)
        wait_for("the guest to download, install and reboot", rebooted, timeout, 2)
        c.pos = start

    def rollout_status(self):
        return self.collector.update("status", "1").stdout

    def part_file_size(self):
        """Bytes of the bundle being downloaded (update.dir), 0 without one."""
        _, out = self.sh("stat -c %s /data/sipsensor/update/*.raucb.part 2>/dev/null; true")
        sizes = [int(x) for x in out.split()]
        return max(sizes, default=0)

    # ---- the tests --------------------------------------------------------

    @cost(70)
    def test_1_first_boot_registers_and_streams(self):
        self.power_on()
        self.boot("A", attempts_left=2)
        # The agent runs under systemd, with the technician's file.
        _, active = self.sh("systemctl is-active sipsensor-agent.service")
        self.assertEqual(active.strip(), "active")
        # The agent is this tree's: its version names the commit built.
        _, version = self.sh("sipsensor-agent --version")
        head = run(["git", "-C", ROOT, "rev-parse", "HEAD"]).stdout.strip()
        self.assertRegex(version.strip(), rf"^sipsensor-agent \S+ \({head[:12]} \d{{4}}-\d\d-\d\d\)$")
        _, out = self.sh("sipsensor-agent status --json")
        self.assertIn("/boot/firmware/sipsensor.yaml", out)
        # The password moved off the public boot partition, readable by
        # root and the agent's group only.
        _, mode = self.sh("stat -c '%a %U %G' /data/sipsensor/secrets.yaml")
        self.assertEqual(mode.strip(), "640 root sipsensor")
        status, _ = self.sh("test -e /boot/firmware/secrets.yaml", check=False)
        self.assertNotEqual(status, 0, "secrets.yaml is still on the boot partition")
        self.assert_site_ca_taken()
        self.assert_agent_unprivileged()
        self.assert_nothing_open()
        # SSH with the key the technician put on the card (dropbear; the
        # host keys are made on the data partition at this first login).
        ssh = require_tool("ssh", "openssh-client")
        result = self.lan.run(
            [ssh, "-i", self.dir / "id_ed25519", "-o", "StrictHostKeyChecking=no",
             "-o", f"UserKnownHostsFile={self.dir / 'known_hosts'}", "-o", "BatchMode=yes",
             "-o", "ConnectTimeout=60", f"root@{LAN_GUEST_IP}", "cat /etc/sipsensor-release"],
            timeout=180, check=False)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("SIPSENSOR_IMAGE=debian", result.stdout)
        status, _ = self.sh("test -e /boot/firmware/authorized_keys", check=False)
        self.assertNotEqual(status, 0, "authorized_keys is still on the boot partition")
        self.sh("ls /data/sipsensor/dropbear/dropbear_ed25519_host_key")
        self.assert_behind_nat()
        # Keys only: a password never opens SSH (dropbear -s).
        result = self.lan.run(
            [ssh, "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={self.dir / 'known_hosts'}",
             "-o", "PreferredAuthentications=password,keyboard-interactive",
             "-o", "ConnectTimeout=60", f"root@{LAN_GUEST_IP}", "true"],
            timeout=180, check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertRegex(result.stderr, r"Permission denied \(publickey\)")
        # A normal boot marks the slot good at once.
        self.wait_health()
        _, states = self.slot_states()
        self.assertEqual(states.get("A"), "good")
        self.assertEqual(self.boot_env().get("BOOT_A_LEFT"), "3")
        self.wait_registered()
        self.assert_streaming()
        self.assert_srtp()

    @cost(510)
    def test_2_ota_update_to_slot_b(self):
        """Over SIP, behind the NAT: the collector publishes bundle v2 and
        rolls it out; the guest downloads it over HTTPS from the
        collector, installs it, reboots into B, passes its health check,
        and the collector shows v2 good and the rollout finished."""
        name = "ota"
        bundle = bundles.bundle(name, bundles.release_files(name, "ota"))
        self.power_on()
        self.boot("A")
        self.wait_registered()
        self.wait_health()
        before = self.wait_fleet("the guest's first fleet report",
                                 lambda r: r["slot"] == "A" and r["update"] == "idle", 120)
        t0 = time.monotonic()
        version = self.roll_out(bundle)
        self.assertNotEqual(before["version"], version)
        self.wait_rebooting(version)
        log(f"downloaded, installed and rebooting {time.monotonic() - t0:.0f} s after publish")

        # The trial boot of B: kept once the agent has registered and
        # streamed for SIPSENSOR_HEALTH_STREAM_SECONDS (60).
        self.boot("B", attempts_left=2)
        _, release = self.sh("cat /etc/sipsensor-release")
        self.assertIn("SIPSENSOR_TEST_VARIANT=ota", release)
        self.wait_registered()
        report = self.wait_fleet(f"{version} good",
                                 lambda r: r["update"] == "good" and r["version"] == version,
                                 BOOT_TIMEOUT)
        log(f"one qemu update over SIP, publish to good: {time.monotonic() - t0:.0f} s")
        self.assertEqual(report["slot"], "B")
        status = self.rollout_status()
        self.assertRegex(status, r"finished", status)
        self.wait_health()
        _, history = self.sh("cat /data/sipsensor/ota/history")
        self.assertIn("good B: the agent registered and streamed", history)
        status, _ = self.sh("test -e /data/sipsensor/ota/pending", check=False)
        self.assertNotEqual(status, 0)
        _, states = self.slot_states()
        self.assertEqual(states.get("B"), "good")
        env = self.boot_env()
        # The next boot stays on B.
        self.assertEqual(env.get("BOOT_ORDER", "").split()[:1], ["B"])
        self.assertEqual(env.get("BOOT_B_LEFT"), "3")
        self.assert_streaming()

    @cost(700)
    def test_3_bad_update_rolls_back_and_foreign_bundle_is_refused(self):
        """A bundle signed by a CA the device does not trust: the collector
        will not publish it, and `rauc install` on the console refuses it.
        A properly signed bundle whose agent cannot register, rolled out
        over SIP: its trial boots fail until U-Boot returns to A, the
        guest reports the rollback and the rollout halts, saying why."""
        bad_name = "bad-config"
        bad = bundles.bundle(bad_name, {"/etc/sipsensor/agent.yaml": BAD_AGENT_CONFIG,
                                        "/etc/default/sipsensor": BAD_DEFAULTS,
                                        **bundles.release_files(bad_name, "bad")})
        foreign = bundles.bundle("foreign-key", {"/etc/sipsensor-release":
                                                 bundles.release_file("foreign")},
                                 keys="other", tiny=True)
        stick = bundles.stick({"foreign.raucb": foreign}, self.dir / "stick.img")
        self.power_on(sticks=[stick])
        self.boot("A")
        self.wait_registered()
        self.wait_health()

        # Signed by a CA the device does not trust: refused, nothing changes.
        refused = self.collector.update("publish", foreign, check=False)
        self.assertNotEqual(refused.returncode, 0, refused.stdout)
        self.assertIn("rauc refused it", refused.stderr)
        self.sh(f"mount -o ro LABEL={bundles.STICK_LABEL} /mnt")
        env_before = self.boot_env()
        status, out = self.sh("rauc install /mnt/foreign.raucb", timeout=INSTALL_TIMEOUT,
                              check=False)
        self.assertNotEqual(status, 0, out)
        self.assertRegex(out, r"(?i)signature|verif|certificate")
        self.assertEqual(self.boot_env(), env_before)
        status, _ = self.sh("test -e /data/sipsensor/ota/pending", check=False)
        self.assertNotEqual(status, 0, "a refused bundle left a pending update")
        self.sh("umount /mnt")

        # Properly signed, but its agent cannot register.
        self.wait_fleet("the guest's first fleet report", lambda r: r["update"] == "idle", 120)
        version = self.roll_out(bad)
        self.wait_rebooting(version)
        # Three trial boots of B, each failing its health check (the agent
        # never registers; the check reboots) ...
        for left in (2, 1, 0):
            self.expect_slot("B", attempts_left=left)
            log(f"trial boot of B ({left} attempts left after it)")
        # ... then U-Boot returns to A.
        self.boot("A", attempts_left=2)
        self.wait_health()
        _, history = self.sh("cat /data/sipsensor/ota/history")
        self.assertIn("trial-failed B: the agent did not register and stream", history)
        self.assertIn("rolled-back B: slot B is not running", history)
        _, states = self.slot_states()
        self.assertEqual(states.get("A"), "good")
        self.assertEqual(states.get("B"), "bad")
        self.wait_registered()
        report = self.wait_fleet("the rollback reported",
                                 lambda r: r["update"] == "rolled-back", 120)
        self.assertEqual(report["target"], version)
        self.assertEqual(report["slot"], "A")
        self.assertNotEqual(report["version"], version)
        self.assertTrue(report.get("reason"), report)
        status = wait_for("the rollout to halt", lambda: (lambda t: "halted" in t and t)(
            self.rollout_status()), 60, 2)
        log(f"rollout status:\n{status}")
        self.assertRegex(status, r"1 failures? > --max-failures 0")
        self.assertRegex(status, r"rolled back")
        self.assert_streaming()

    @cost(120)
    def test_4_power_cut_during_install(self):
        bundle = bundles.bundle("ota", {"/etc/sipsensor-release": bundles.release_file("ota")})
        stick = bundles.stick({"update.raucb": bundle}, self.dir / "stick.img")
        self.power_on(sticks=[stick])
        self.boot("A")
        self.wait_health()
        marker = f"written before the power cut {time.time()}"
        # The agent appends to its spool all the time, so the spool is
        # compared by the prefix each segment had when `sync` ran: those
        # bytes were on the card before the power cut and must survive it.
        # Sizes are taken before `sync`, so the whole prefix is synced.
        _, spool_sizes = self.sh("cd /data && find ./sipsensor/spool -type f -name '*.seg' "
                                 "-exec stat -c '%s %n' {} + | sort -k2")
        self.sh(f"echo '{marker}' > /data/sipsensor/state/power-cut-marker && sync")
        _, before = self.sh("cd /data && find . -type f ! -path './sipsensor/spool/*' "
                            "| sort | xargs md5sum")
        spool_before = self.spool_prefixes(spool_sizes)
        self.assertTrue(spool_before, "the agent spooled nothing before the power cut")
        self.sh(f"mount -o ro LABEL={bundles.STICK_LABEL} /mnt")
        c = self.qemu.console
        start = c.mark()
        c.send("rauc install /mnt/update.raucb\n")
        # Pull the plug while the slot is being written.
        c.expect(r"Copying image to rootfs\.1$", INSTALL_TIMEOUT, "RAUC writing slot B")
        time.sleep(3)
        self.qemu.kill()
        shown = c.text_since(start)
        self.assertNotIn("Copying image to rootfs.1 done", shown,
                         "the copy ended before the power cut")
        log("power cut while RAUC was writing slot B")

        self.power_on(sticks=[stick])
        self.boot("A")
        self.wait_health()
        _, after = self.sh("cd /data && find . -type f ! -path './sipsensor/ota/*' "
                           "! -path './sipsensor/spool/*' ! -name rauc.status | sort | xargs md5sum")
        self.assertEqual(self.spool_prefixes(spool_sizes), spool_before,
                         "the spool lost bytes that were synced before the power cut")
        before_kept = "\n".join(line for line in before.splitlines()
                                if "/ota/" not in line and "rauc.status" not in line)
        self.assertEqual(after.strip(), before_kept.strip(), "the data partition changed")
        _, text = self.sh("cat /data/sipsensor/state/power-cut-marker")
        self.assertEqual(text.strip(), marker)
        # systemd-fsck checked the data partition at boot and found it clean
        # enough to mount; the journal says so.
        _, fsck = self.sh("journalctl -b -u 'systemd-fsck@*' --no-pager -o cat", check=False)
        self.assertNotRegex(fsck, r"(?i)UNEXPECTED INCONSISTENCY|run fsck MANUALLY")
        _, history = self.sh("cat /data/sipsensor/ota/history")
        self.assertIn("rolled-back B: slot B is not running", history)
        _, states = self.slot_states()
        self.assertEqual(states.get("A"), "good")
        self.assertEqual(states.get("B"), "bad")
        self.assertEqual(self.boot_env().get("BOOT_ORDER", "A B").split()[0], "A")

    @cost(240)
    def test_5_hung_system_is_reset_by_the_watchdog(self):
        self.power_on()
        self.boot("A", attempts_left=2)
        self.wait_health()
        self.assertEqual(self.boot_env().get("BOOT_A_LEFT"), "3")
        # systemd feeds the watchdog. QEMU's armhf virt machine has none
        # that Debian's armmp kernel drives (it lacks i6300esb), so the
        # kernel's softdog stands in for the board's (omap_wdt, loaded
        # from the device tree on a BeagleBone): a hardware-independent
        # timer that resets the machine when systemd stops feeding it.
        self.sh("modprobe softdog")
        def fed():
            _, state = self.sh("cat /sys/class/watchdog/watchdog0/state", check=False)
            return state.strip() == "active"
        wait_for("systemd to open the watchdog", fed, 60, 2)
        _, timeout = self.sh("cat /sys/class/watchdog/watchdog0/timeout")
        self.assertEqual(int(timeout), RUNTIME_WATCHDOG_S)
        # The hang: a SCHED_FIFO busy loop on the only CPU, with the
        # kernel's real-time throttling off, so that no other task runs
        # again (a runaway real-time thread). No panic, no reboot command.
        c = self.qemu.console
        start = c.mark()
        t0 = time.monotonic()
        c.send("echo -1 > /proc/sys/kernel/sched_rt_runtime_us; "
               "chrt -f 99 sh -c 'while :; do :; done' &\n")
        c.expect(r"U-Boot \d{4}\.\d{2}", 4 * RUNTIME_WATCHDOG_S + 120,
                 "U-Boot after the watchdog's reset")
        log(f"the watchdog reset the hung system after {time.monotonic() - t0:.0f} s")
        shown = c.text_since(start)
        self.assertNotRegex(shown, r"reboot: Restarting|Kernel panic|sysrq",
                            "the system rebooted itself rather than being reset")
        # The boot script counted the boot the hang ended.
        self.expect_slot("A", attempts_left=2)

    @cost(240)
    def test_6_power_cut_mid_stream_loses_at_most_the_fsync_interval(self):
        self.power_on()
        self.boot("A")
        self.wait_registered()
        fsync_ns = self.agent_fsync_interval_ms() * 1_000_000
        step = WAVE["sample_period_ns"]
        self.collector.wait_samples(AOR, 2 * RATE, 60)
        # The collector goes away: from here the spool is the only copy.
        collector_stopped = time.time_ns()
        self.collector.stop()
        time.sleep(SPOOLED_ONLY_S)
        offset, offset_error = history.clock_offset([self.guest_clock() for _ in range(3)])
        cut = time.time_ns()
        self.qemu.kill()
        log(f"power cut {(cut - collector_stopped) / 1e9:.1f} s after the collector stopped "
            f"(guest clock {offset / 1e6:+.0f} ± {offset_error / 1e6:.0f} ms)")

        self.collector.start()
        powered = time.time_ns()
        self.power_on()
        self.boot("A")
        self.wait_registered()
        registered = time.monotonic()

        def backfilled():
            gaps = self.collector.gaps(AOR)
            rows = self.samples()
            newest = max((r["ts_ns"] for r in rows if r["source"] == "live"), default=0)
            if newest < powered + offset:
                return None
            fillable = [g for g in gaps if g["cause"] in history.FILLABLE]
            return None if fillable else (rows, gaps)
        try:
            rows, gaps = wait_for("the collector to hold everything the spool had",
                                  backfilled, BACKFILL_TIMEOUT_S, 2)
        except AssertionError as e:
            instants = [r["ts_ns"] for r in self.samples()]
            gaps = self.collector.gaps(AOR)
            off = history.hole_across(instants, cut + offset, step)
            held = off and history.gap_for(off, gaps, history.FILLABLE, step)
            why = (f"the time the board was off is a fillable {held['cause']} gap: the agent "
                   "did not declare it unsampled (docs/protocol.md 11.4), so the collector's "
                   "mark stays before it\n") if held else ""
            _, agent = self.sh("sipsensor-agent status --json | grep -A6 backfill; journalctl "
                               "-b -u sipsensor-agent --no-pager -o cat | grep -i spool", check=False)
            self.fail(f"{e}\n{why}cut at {cut + offset}; holes {history.holes(instants, step)}\n"
                      f"gaps {gaps}\nagent:\n{agent}\n"
                      f"collector log:\n{self.collector.proc.log_tail(20)}")
        took = time.monotonic() - registered
        outage = history.Outage(collector_stopped_ns=collector_stopped + offset,
                                cut_ns=cut + offset, powered_ns=powered + offset,
                                clock_error_ns=offset_error)
        figures = history.check_power_cut(
            rows, gaps, outage, step, fsync_ns,
            lambda raws: waveform.check_stored(raws, 0.01, **WAVE))
        log(f"lost {figures.lost_ns / 1e6:.0f} ms before the power cut (fsync interval "
            f"{fsync_ns // 1_000_000} ms); board off "
            f"{(figures.off.before_ns - figures.off.after_ns) / 1e9:.1f} s; "
            f"{figures.backfilled} samples backfilled ({figures.spooled_only} spooled while the "
            f"collector was away), complete {took:.0f} s after the agent registered; "
            f"{figures.stored} stored")

    @cost(400)
    def test_7_power_cut_during_the_download_resumes_it(self):
        """Over SIP, behind the NAT: the power is cut while the guest
        downloads the rolled-out bundle. The old slot boots, the agent
        resumes the download where its part file ends (`Range`, RFC 9110
        14.2: far less than the bundle crosses the NAT again) and goes on
        with the update."""
        name = "ota"
        bundle = bundles.bundle(name, bundles.release_files(name, "ota"))
        size = bundle.stat().st_size
        self.power_on()
        self.boot("A")
        self.wait_registered()
        self.wait_health()
        self.wait_fleet("the guest's first fleet report", lambda r: r["update"] == "idle", 120)
        version = self.roll_out(bundle)
        # Cut once a good part of the bundle is on the card (the agent
        # makes it durable every MiB), well before the end.
        cut_at = size // 3
        before = wait_for("a third of the bundle downloaded",
                          lambda: (lambda n: n >= cut_at and n)(self.part_file_size()),
                          INSTALL_TIMEOUT, 1)
        self.qemu.kill()
        log(f"power cut with {before} of {size} bytes downloaded")
        self.assertLess(before, size, "the download ended before the power cut")

        self.lan.tcp_bytes_in(reset=True)
        self.power_on()
        self.boot("A")
        _, states = self.slot_states()
        self.assertEqual(states.get("A"), "good")
        kept = self.part_file_size()
        log(f"{kept} bytes of the download survived the power cut")
        self.assertGreaterEqual(kept, before - (1 << 20) - (1 << 20) // 2,
                                "the part file lost more than the last MiB")
        report = self.wait_fleet("the download finished after the power cut",
                                 lambda r: r.get("target") == version and r["update"] in (
                                     "downloaded", "installing", "installed", "rebooting",
                                     "trial", "good"),
                                 INSTALL_TIMEOUT)
        fetched = self.lan.tcp_bytes_in()
        # At most the last MiB before the cut was not yet durable.
        missing = size - before + (1 << 20)
        log(f"after the power cut {fetched} bytes crossed the NAT for at most {missing} "
            f"missing ({report['update']})")
        # TLS and TCP/IP headers add a few per cent; a download started
        # again from byte 0 would bring the whole bundle.
        self.assertLess(fetched, missing * 1.1 + (1 << 20),
                        "the download started again instead of resuming")
        self.assertGreater(fetched, size - kept, "the rest of the bundle did not come")

    @cost(660)
    def test_9_boot_files_ride_in_a_bundle_and_survive_a_power_cut(self):
        """Issue #16, boot files too: a bundle carries the boot partition
        (RAUC's boot-mbr-switch slot) with a boot script that announces
        itself. A power cut while RAUC writes it leaves the old boot
        partition (the old script runs, slot A boots, the slot states are
        sane); installed in full, by the agent's own user, the next boot
        runs the new script with the technician's files carried across.
        On the way: what the agent's user may do with RAUC."""
        fix = "sipsensor: boot script with the field fix (test 9)"
        # Named by what they hold: a changed line or hook is a new bundle.
        name = f"boot-fix-{boot_slot.digest(fix)}"
        boot = boot_slot.boot_vfat(fix, bundles.cache_dir() / f"{name}.vfat")
        bundle = bundles.bundle(name, {"/etc/sipsensor-release":
                                       bundles.release_file("boot-fix")}, boot=boot)
        foreign = bundles.bundle("foreign-key", {"/etc/sipsensor-release":
                                                 bundles.release_file("foreign")},
                                 keys="other", tiny=True)
        stick = bundles.stick({"update.raucb": bundle, "foreign.raucb": foreign},
                              self.dir / "stick.img")
        # A technician's U-Boot setting, which the new boot partition must keep.
        self.write_boot_file("bootenv.txt", f"overlays=\nextra_bootargs={KEPT_BOOTARG}\n")
        self.power_on(sticks=[stick])
        self.boot("A")
        self.wait_health()
        _, card = self.sh("readlink -f /dev/disk/sipsensor-card")
        self.assertEqual(card.strip(), "/dev/vda", "udev's link to the card for RAUC's boot slot")
        self.assertEqual(self.boot_partition_half(), 0)
        self.sh(f"mount -o ro LABEL={bundles.STICK_LABEL} /mnt")
        self.assert_agent_may_update_only()

        # Power cut while RAUC writes the boot slot (after the root
        # filesystem: the bundle lists the boot partition last).
        c = self.qemu.console
        start = c.mark()
        c.send("rauc install /mnt/update.raucb\n")
        c.expect(r"Copying image to boot\.0$", INSTALL_TIMEOUT, "RAUC writing the boot slot")
        self.qemu.kill()
        self.assertNotIn("Copying image to boot.0 done", c.text_since(start),
                         "the boot slot was written before the power cut")
        log("power cut while RAUC was writing the boot slot")
        self.power_on(sticks=[stick])
        self.boot("A")
        self.assertNotIn(fix, self.qemu.console.text_since(0),
                         "the new boot script ran after a power cut during its installation")
        self.assertEqual(self.boot_partition_half(), 0)
        self.wait_health()
        _, states = self.slot_states()
        self.assertEqual((states.get("A"), states.get("B")), ("good", "bad"))
        self.assertEqual(self.boot_env().get("BOOT_ORDER", "A B").split()[0], "A")

        # The whole installation, by the agent's user, and its reboot request.
        self.sh(f"mount -o ro LABEL={bundles.STICK_LABEL} /mnt")
        t0 = time.monotonic()
        _, out = self.sh(f"{AS_AGENT} rauc install /mnt/update.raucb", timeout=INSTALL_TIMEOUT)
        log(f"rauc install (root filesystem and boot partition) took {time.monotonic() - t0:.0f} s")
        self.assertIn("succeeded", out)
        _, kept = self.sh("journalctl -b -u rauc --no-pager -o cat | grep 'boot-slot-hook: kept'",
                          check=False)
        for name in ("sipsensor.yaml", "bootenv.txt", "ca.pem"):
            self.assertIn(f"kept {name}", kept)
        self.sh("umount /mnt")
        c = self.qemu.console
        c.send(f"{AS_AGENT} touch /run/sipsensor/reboot\n")
        c.expect(re.escape(fix), BOOT_TIMEOUT, "the new boot script after the agent's reboot")
        self.boot("B", attempts_left=2)
        self.assertEqual(self.boot_partition_half(), 1)
        _, cmdline = self.sh("cat /proc/cmdline")
        self.assertIn(KEPT_BOOTARG, cmdline.split(), "bootenv.txt did not reach the new partition")
        _, config = self.sh("cat /boot/firmware/sipsensor.yaml")
        self.assertEqual(config.strip(), TECHNICIAN_CONFIG.strip())
        self.sh("cmp /boot/firmware/ca.pem /data/sipsensor/ca.pem")
        status, _ = self.sh("rauc status", check=False)
        self.assertEqual(status, 0)
        self.assertEqual(self.boot_env().get("BOOT_ORDER"), "B A")
        self.wait_registered()

    # ---- helpers of test 9 ------------------------------------------------

    def boot_partition_half(self):
        """Which half of the boot region p1 is in, as the kernel read the MBR."""
        _, start = self.sh("cat /sys/class/block/vda1/start")
        return (int(start) * 512 - BOOT_OFFSET) // BOOT_HALF

    def assert_agent_may_update_only(self):
        """The agent's user talks to RAUC over D-Bus (images/rootfs-overlay/
        etc/dbus-1/system.d/sipsensor-rauc.conf): it reads the slots and a
        bundle signed by a CA the board does not trust is refused for its
        signature, not for want of permission; marking a slot is root's, and
        other users get nothing."""
        status, out = self.sh(f"{AS_AGENT} rauc status --output-format=json", check=False)
        self.assertEqual(status, 0, out)
        self.assertIn('"booted":"A"', out.replace(" ", ""))
        status, out = self.sh(f"{AS_AGENT} rauc install /mnt/foreign.raucb",
                              timeout=INSTALL_TIMEOUT, check=False)
        self.assertNotEqual(status, 0, out)
        self.assertRegex(out, r"(?i)signature|verif|certificate")
        self.assertNotRegex(out, DBUS_DENIED)
        for command in (f"{AS_AGENT} rauc status mark-good other",
                        "setpriv --reuid=nobody --regid=nogroup --clear-groups rauc status"):
            status, out = self.sh(command, check=False)
            self.assertNotEqual(status, 0, f"{command}: {out}")
            self.assertRegex(out, DBUS_DENIED, command)
        _, states = self.slot_states()
        self.assertEqual(states.get("A"), "good", "a refused command changed a slot")

    # ---- helpers of test 6 ------------------------------------------------

    def samples(self):
        return sorted((r for r in self.collector.samples(AOR) if r["name"] == "sim.temperature"),
                      key=lambda r: r["ts_ns"])

    def agent_fsync_interval_ms(self):
        """The spool's fsync interval the running agent logged at start."""
        _, journal = self.sh("journalctl -b -u sipsensor-agent --no-pager -o cat "
                             "| grep -m1 'fsync every'")
        m = re.search(r"fsync every (\d+) ms", journal)
        self.assertIsNotNone(m, f"the agent logged no spool: {journal}")
        return int(m.group(1))

    def guest_clock(self):
        """(host before, guest, host after) wall-clock readings in ns."""
        before = time.time_ns()
        _, out = self.sh("date +%s%N")
        return before, int(out.strip()), time.time_ns()


if __name__ == "__main__":
    unittest.main()
