"""Boot tests with Debian's amd64 kernel in `qemu-system-x86_64` (TCG) and
the amd64 agent (tests/boot/mk-amd64-system): what needs kernel drivers
that Debian's armhf kernel lacks.

5. Plug and play: a BME280 emulated by i2c-stub at 0x76 (chip ID 0x60, the
   datasheet's calibration example and raw readings written with i2cset),
   bound to the kernel's bmp280 driver; `sipsensor-agent probe` finds it,
   the agent runs with the snippet probe printed, streams the IIO readings,
   and the collector stores the datasheet's 25.08 °C. Unplugged (the
   device deleted) the agent reports it; plugged in again it resumes.
6. Loss inside the guest: `/sbin/tc qdisc ... netem loss 10% delay 50ms`
   on the guest's network card; the session survives, the collector's
   loss figure is 10 % within 3 percentage points, and its count of lost
   packets agrees with netem's count of dropped ones (within 5 packets).

The guest's network card is a tap device in the test's namespace, where
Kamailio and the collector run (as in test_armhf.py); in 5 the agent
registers over TLS, with the site CA in /etc/sipsensor/ca.pem, and streams
SRTP; 6 runs over plain UDP (see there why).
"""

import json
import re
import struct
import time
import unittest

from common import (AMD64_DIR, cost, drop_images, Processes, require_file, require_root,
                    require_tool, test_dir, wait_for)
from guest import Qemu
from netns import GUEST_IP, GUEST_MAC, HOST_IP, Netns
from peers import Collector, Kamailio, SiteCa

SENSOR = "sensor-0002"
SENSOR_PASSWORD = "board-secret-0002"
AOR = f"sip:{SENSOR}@{HOST_IP}"
I2C_ADDRESS = 0x76

# The Bosch datasheets' compensation example (BMP280 DS section 3.12; the
# BME280 trims temperature and pressure the same way): dig_T1..dig_P9,
# and adc_T = 519888 gives 25.08 °C. Humidity trimming of a real BME280.
CALIB_TP = struct.pack("<H2hH8h", 27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7,
                       15500, -14600, 6000)
H1, H2, H3, H4, H5, H6 = 75, 362, 0, 313, 50, 30
ADC_T, ADC_P, ADC_H = 519888, 415148, 30000


def bme280_registers():
    """{register: byte} of a BME280 holding the example (datasheet
    section 5.4: chip ID 0xD0, trimming 0x88..0xA1 and 0xE1..0xE7, raw
    data 0xF7..0xFE, 20-bit pressure and temperature, 16-bit humidity)."""
    regs = {0xD0: 0x60}
    for i, b in enumerate(CALIB_TP):
        regs[0x88 + i] = b
    regs[0xA1] = H1
    regs[0xE1], regs[0xE2] = struct.pack("<h", H2)
    regs[0xE3] = H3
    regs[0xE4] = (H4 >> 4) & 0xFF
    regs[0xE5] = (H4 & 0x0F) | ((H5 & 0x0F) << 4)
    regs[0xE6] = (H5 >> 4) & 0xFF
    regs[0xE7] = struct.pack("<b", H6)[0]
    regs[0xF7], regs[0xF8], regs[0xF9] = ADC_P >> 12, (ADC_P >> 4) & 0xFF, (ADC_P & 0x0F) << 4
    regs[0xFA], regs[0xFB], regs[0xFC] = ADC_T >> 12, (ADC_T >> 4) & 0xFF, (ADC_T & 0x0F) << 4
    regs[0xFD], regs[0xFE] = ADC_H >> 8, ADC_H & 0xFF
    return regs


def plain_udp(test):
    """Marks a test whose agent and collector speak plain SIP and RTP."""
    test.plain_udp = True
    return test


def log(msg):
    print(f"[boot-test {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Amd64Guest(unittest.TestCase):
    def setUp(self):
        require_root()
        require_tool("qemu-system-x86_64", "qemu-system-x86")
        how = "run `make boot-amd64` (tests/boot/mk-amd64-system) first"
        self.kernel = require_file(AMD64_DIR / "vmlinuz", how)
        self.initrd = require_file(AMD64_DIR / "initrd.img", how)
        self.dir = test_dir(self)
        self.procs = Processes(self.dir)
        self.addCleanup(self.procs.stop_all)
        self.netns = Netns(self.dir, self.procs)
        self.addCleanup(self.netns.close)
        self.site_ca = SiteCa(self.dir)
        self.kamailio = Kamailio(self.netns, self.dir, [(SENSOR, SENSOR_PASSWORD),
                                                        ("collector", "collector-secret")],
                                 self.site_ca)
        plain = getattr(getattr(self, self._testMethodName), "plain_udp", False)
        self.collector = Collector(self.netns, self.dir, ("collector", "collector-secret"),
                                   self.kamailio, None if plain else self.site_ca)
        self.started = time.monotonic()
        qemu = require_tool("qemu-system-x86_64", "qemu-system-x86")
        argv = [
            qemu, "-M", "q35", "-cpu", "max", "-m", "512", "-smp", "1", "-accel", "tcg",
            "-no-user-config", "-nodefaults", "-no-reboot",
            "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", f"console=ttyS0 panic=-1 sipsensor.ip={GUEST_IP}/24",
            "-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no",
            # romfile=: no iPXE option ROM (not needed with -kernel).
            "-device", f"virtio-net-pci,netdev=net0,mac={GUEST_MAC},romfile=",
        ]
        self.qemu = Qemu("qemu", argv, self.dir, netns=self.netns)
        self.addCleanup(self.qemu.close)
        c = self.qemu.console
        c.expect("sipsensor-amd64: ready", 300, "the amd64 test system's shell")
        c.send("stty -echo; dmesg -n 1\n")
        c.sh("true")
        log(f"amd64 guest up in {time.monotonic() - self.started:.0f} s")
        c.write_file("/etc/sipsensor/secrets.yaml", f"password: {SENSOR_PASSWORD}\n", "0600")
        c.write_file("/etc/sipsensor/ca.pem", self.site_ca.pem())

    def tearDown(self):
        drop_images(self.dir)
        log(f"{self.id()}: {time.monotonic() - self.started:.0f} s; logs in {self.dir}")

    def sh(self, command, timeout=120, check=True):
        return self.qemu.console.sh(command, timeout=timeout, check=check)

    def start_agent(self, config):
        self.qemu.console.write_file("/etc/sipsensor/agent.yaml", config)
        self.sh("sipsensor-agent check-config /etc/sipsensor/agent.yaml")
        # In a subshell: `sh` appends `; echo ...`, which cannot follow `&`.
        self.sh("(sipsensor-agent run --config /etc/sipsensor/agent.yaml --no-override "
                "> /tmp/agent.log 2>&1 &)")
        status, out = self.sh("sipsensor-agent status --wait-registered 90", timeout=150,
                              check=False)
        if status != 0:
            _, agent_log = self.sh("tail -n 30 /tmp/agent.log", check=False)
            self.fail(f"the agent did not register (exit {status}): {out}\n{agent_log}")
        self.kamailio.wait_registered(SENSOR, 30)

    def agent_status(self):
        _, out = self.sh("sipsensor-agent status --json")
        return json.loads(out)

    def header(self, secure=True):
        """The site settings: over TLS (SRTP follows) with no inbound port,
        as the image's template has them, or plain UDP when asked."""
        sip = "  transport: tls\n  listen: false\n" if secure else "  transport: udp\n"
        return (f"identity:\n  aor: {AOR}\n"
                f"sip:\n{sip}  registrar: sip:{HOST_IP}\n"
                f"  collector: sip:collector@{HOST_IP}\n")

    # ---- 5 -------------------------------------------------------------------

    def plug_in(self):
        self.sh(f"echo bme280 0x{I2C_ADDRESS:02x} > /sys/bus/i2c/devices/i2c-0/new_device")
        wait_for("the bme280 IIO device", lambda: self.sh(
            "cat /sys/bus/iio/devices/iio:device*/name", check=False)[1].strip() == "bme280", 30, 1)

    @cost(30)
    def test_5_bme280_plug_and_play(self):
        c = self.qemu.console
        self.sh(f"modprobe i2c-stub chip_addr=0x{I2C_ADDRESS:02x} && modprobe i2c-dev")
        script = "".join(f"/usr/sbin/i2cset -y 0 0x{I2C_ADDRESS:02x} 0x{reg:02x} 0x{val:02x} b\n"
                         for reg, val in sorted(bme280_registers().items()))
        c.write_file("/tmp/bme280.sh", script)
        self.sh("sh -e /tmp/bme280.sh")
        # The technician connects the chip: the kernel's driver binds.
        self.sh("modprobe bmp280-i2c")
        self.plug_in()
        _, temp = self.sh("cat /sys/bus/iio/devices/iio:device*/in_temp_input")
        self.assertEqual(temp.strip(), "25080", "the kernel's reading of the example")

        # probe finds it and prints the snippet the technician pastes.
        _, found = self.sh("sipsensor-agent probe")
        self.assertRegex(found, r"iio:device\d+ `bme280`: .*in_temp")
        snippet = found[found.index("sensors:"):]
        self.assertIn('device: "bme280"', snippet)
        config = self.header() + "stream:\n  rate: 5\n" + snippet.replace(
            "    channels:", "    interval_ms: 200\n    channels:")
        self.start_agent(config)

        def temperatures(since_ns):
            rows = self.collector.wait_samples(AOR, 15, 60, since_ns=since_ns)
            return [r for r in rows if r["name"] == "bme280.temperature"]

        rows = temperatures(time.time_ns())
        self.assertTrue(rows)
        self.assertEqual({r["value"] for r in rows}, {25.08}, "stored temperatures")
        self.assertEqual({r["unit"] for r in rows}, {"Cel"})
        log(f"{len(rows)} temperatures stored, all 25.08 °C")

        # Unplugged: the agent says so and keeps its session.
        pid = self.agent_status()["pid"]
        self.sh(f"echo 0x{I2C_ADDRESS:02x} > /sys/bus/i2c/devices/i2c-0/delete_device")
        failing = wait_for("the agent to report the lost sensor", lambda: [
            s for s in self.agent_status()["sensors"] if s["state"] == "failing"], 30, 1)
        self.assertIn("bme280", failing[0]["name"])
        self.assertTrue(failing[0]["last_error"])
        _, agent_log = self.sh("grep 'sensor bme280' /tmp/agent.log")
        self.assertIn("retrying", agent_log)
        log(f"unplugged: {failing[0]['last_error']}")

        # Plugged in again: readings resume in the same agent.
        self.plug_in()
        wait_for("the sensor to recover", lambda: all(
            s["state"] == "ok" for s in self.agent_status()["sensors"]), 60, 1)
        rows = temperatures(time.time_ns())
        self.assertEqual({r["value"] for r in rows}, {25.08})
        _, agent_log = self.sh("grep 'sensor bme280' /tmp/agent.log")
        self.assertRegex(agent_log, r"after \d+ failures")
        self.assertEqual(self.agent_status()["pid"], pid, "the agent was restarted")

    # ---- 6 -------------------------------------------------------------------

    def stream_figures(self):
        streams = [s for s in self.collector.streams() if s["aor"] == AOR]
        self.assertEqual(len(streams), 1, streams)
        return streams[0]

    def netem(self, params):
        """Change the guest's netem to PARAMS; returns netem's counters
        (packets seen: sent or dropped; dropped) and the agent's count of
        RTP packets sent, read right after the change."""
        _, out = self.sh(f"/sbin/tc qdisc change dev eth0 root netem {params} && "
                         "/sbin/tc -s qdisc show dev eth0 && sipsensor-agent status --json")
        m = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", out)
        self.assertIsNotNone(m, out)
        status = json.loads(out[out.index("{"):])
        return {"seen": int(m.group(1)) + int(m.group(2)), "dropped": int(m.group(2)),
                "rtp_sent": status["packets_sent"]}

    @cost(60)
    @plain_udp
    def test_6_session_survives_netem_loss(self):
        rate = 50
        # Plain SIP and RTP at both ends (@plain_udp), on purpose: through
        # Kamailio over TLS the collector never receives the ACK of its 200
        # (RFC 3261 13.3.1.4), so every call ends after 64*T1 = 32 s and
        # is dialled again; this test needs one call for 45 s. Back to TLS
        # once that is fixed.
        self.start_agent(self.header(secure=False) + f"""\
stream:
  rate: {rate}
  samples_per_packet: 1
sensors:
  - type: simulated
    name: sim
    seed: 3
    interval_ms: {1000 // rate}
    channels:
      - {{name: level, unit: m, scale: 0.001, offset: 1.0, amplitude: 0.5, period_ms: 10000}}
""")
        wait_for("the stream at the collector", lambda: [
            s for s in self.collector.streams() if s["aor"] == AOR and s["packets"] > rate], 60, 1)
        # netem is in place, delaying every packet by 50 ms (the same for
        # all, so none overtakes another), from before the collector's first
        # figures to after its last: every RTP packet in between went
        # through it, and it dropped only during the 40 s of 10 % loss,
        # which end 2 s before the last figures (the next packets have
        # revealed the last losses by then).
        # BusyBox's tc has no netem: Debian's iproute2 /sbin/tc.
        self.sh("/sbin/tc qdisc add dev eth0 root netem loss 0% delay 50ms")
        time.sleep(1)
        before = self.stream_figures()
        start = self.netem("loss 10% delay 50ms")
        seconds = 40
        time.sleep(seconds)
        end = self.netem("loss 0% delay 50ms")
        time.sleep(2)
        after = self.stream_figures()
        self.sh("/sbin/tc qdisc del dev eth0 root")

        # One session all along (same stream and session record, started
        # at the same time; /api/streams no longer shows SSRC and Call-ID).
        self.assertEqual((after["id"], after["session"], after["started_ns"]),
                         (before["id"], before["session"], before["started_ns"]))
        received = after["packets"] - before["packets"]
        lost = after["lost"] - before["lost"]
        dropped = end["dropped"] - start["dropped"]
        # What went through netem while it dropped, and how much of it was
        # RTP (the agent's count): the rest is RTCP, SIP and ARP.
        total = end["seen"] - start["seen"]
        rtp = end["rtp_sent"] - start["rtp_sent"]
        other = total - rtp
        fraction = lost / rtp
        log(f"netem loss 10%: {received} RTP packets received, {lost} lost "
            f"({100 * fraction:.1f} %); netem dropped {dropped} of {total} packets, "
            f"of which {rtp} RTP")
        self.assertGreater(rtp, seconds * rate * 0.5)
        # The loss fraction of the RTP packets sent while netem dropped:
        # the binomial spread at ~2000 packets is 0.7 points, so 3 points
        # either side of 10 % is more than 4 sigma.
        self.assertLess(abs(fraction - 0.10), 0.03, f"loss fraction {fraction:.3f}")
        # The collector's count is netem's RTP drops: netem's drops less
        # the share of the other packets, at most all of them. Slack of 5
        # packets either side: the counters are read a moment after each
        # change, with packets in netem's 50 ms queue and on the wire.
        self.assertLessEqual(lost, dropped + 5, f"{dropped} dropped, {lost} RTP lost")
        self.assertGreaterEqual(lost, dropped - max(other, 0) - 5,
                                f"{dropped} dropped, {lost} RTP lost, {other} other packets")
        status = self.agent_status()
        self.assertEqual(status["state"], "streaming", status)


if __name__ == "__main__":
    unittest.main()
