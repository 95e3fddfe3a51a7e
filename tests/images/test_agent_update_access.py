"""What the agent's updater may do on its own board, in all three builds:
talk to RAUC's service (install a bundle, read the slots) but not mark
slots, and have the board rebooted without a capability to reboot.

Read from the trees: the D-Bus policy that narrows RAUC's (which lets every
local user control it) to root and the agent's group, and installs it in
each build; the reboot request (the agent's update.reboot_command creates a
file; root's sipsensor-reboot.path or S97sipsensor-reboot reboots) wired up
in each build. reboot-watch runs here with fakes. The boot test
(tests/boot/test_armhf.py, test 9) checks the running Debian image.
"""

import os
import re
import subprocess
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

from common import IMAGES, ROOT, fake_commands

OVERLAY = IMAGES / "rootfs-overlay"
POLICY = OVERLAY / "etc/dbus-1/system.d/sipsensor-rauc.conf"
RAUC = "de.pengutronix.rauc"
INSTALLER = "de.pengutronix.rauc.Installer"
SYSTEMD = IMAGES / "systemd"
SYSTEM_RECIPE = ROOT / "meta-sipsensor/recipes-sipsensor/sipsensor-system/sipsensor-system_git.bb"
AGENT_CONFIGS = [
    OVERLAY / "etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/beagleboard/beaglebone/rootfs-overlay/etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/raspberrypi/raspberrypi4-64/rootfs-overlay/etc/sipsensor/agent.yaml",
]
REQUEST = "/run/sipsensor/reboot"


def policies():
    """{(attribute, value): [(allow|deny, {attributes})]} of the policy file."""
    found = {}
    for policy in ET.parse(POLICY).getroot().iter("policy"):
        (key, value), = policy.attrib.items()
        found[(key, value)] = [(rule.tag, dict(rule.attrib)) for rule in policy]
    return found


class RaucPolicy(unittest.TestCase):
    def test_only_root_and_the_agents_group_may_call_rauc(self):
        p = policies()
        self.assertEqual(set(p), {("context", "default"), ("user", "root"), ("group", "sipsensor")})
        # RAUC's own policy allows everyone in the default context: this
        # file (read later) takes that back.
        self.assertEqual(p[("context", "default")], [("deny", {"send_destination": RAUC})])
        self.assertEqual(p[("user", "root")], [("allow", {"send_destination": RAUC})])

    def test_the_agent_may_install_and_read_but_not_mark(self):
        rules = policies()[("group", "sipsensor")]
        self.assertTrue(all(kind == "allow" and attrs.get("send_destination") == RAUC
                            for kind, attrs in rules), rules)
        installer = {attrs.get("send_member") for _, attrs in rules
                     if attrs.get("send_interface") == INSTALLER}
        self.assertIn("InstallBundle", installer)
        self.assertIn("GetSlotStatus", installer)
        self.assertNotIn("Mark", installer)
        self.assertNotIn(None, installer, "the whole Installer interface is open")
        # Every rule names an interface: nothing else of RAUC's is reachable.
        self.assertTrue(all("send_interface" in attrs for _, attrs in rules), rules)
        properties = {attrs.get("send_member") for _, attrs in rules
                      if attrs.get("send_interface") == "org.freedesktop.DBus.Properties"}
        self.assertEqual(properties, {"Get", "GetAll"}, "Set is not the agent's")

    def test_every_build_installs_it(self):
        # Buildroot and the Debian image take the overlay whole (the Debian
        # image without init.d); Yocto names each file.
        for defconfig in sorted((ROOT / "buildroot-external/configs").glob("*_defconfig")):
            self.assertIn('BR2_ROOTFS_OVERLAY="$(BR2_EXTERNAL_SIPSENSOR_PATH)/../images/rootfs-overlay',
                          defconfig.read_text(), defconfig.name)
        build = (IMAGES / "debian/build-image").read_text()
        self.assertIn("""tar -C "$images/rootfs-overlay" --exclude='./etc/init.d' -cf - .""", build)
        self.assertIn("$overlay/etc/dbus-1/system.d/sipsensor-rauc.conf "
                      "${D}${sysconfdir}/dbus-1/system.d/", SYSTEM_RECIPE.read_text())


class RebootRequest(unittest.TestCase):
    def test_the_agent_asks_through_a_file_only_it_and_root_may_write(self):
        for config in AGENT_CONFIGS:
            with self.subTest(config=config.relative_to(ROOT)):
                self.assertRegex(config.read_text(),
                                 rf"\nupdate:\n(  .*\n)*  reboot_command: touch {REQUEST}\n")
        # The agent's runtime directory: its own (systemd), or made so by
        # its init script (BusyBox).
        agent_unit = (SYSTEMD / "sipsensor-agent.service").read_text()
        self.assertIn("RuntimeDirectory=sipsensor\n", agent_unit)
        self.assertIn("User=sipsensor\n", agent_unit)
        self.assertNotIn("CAP_SYS_BOOT", agent_unit)
        init = (OVERLAY / "etc/init.d/S95sipsensor-agent").read_text()
        self.assertIn('chown "$AGENT_USER:$AGENT_USER" /var/run/sipsensor', init)
        self.assertIn("chmod 0755 /var/run/sipsensor", init)

    def test_systemd_images_reboot_through_a_path_unit(self):
        path = (SYSTEMD / "sipsensor-reboot.path").read_text()
        self.assertIn(f"\nPathExists={REQUEST}\n", path)
        service = (SYSTEMD / "sipsensor-reboot.service").read_text()
        self.assertIn("\nExecStart=/bin/systemctl --no-block reboot\n", service)
        self.assertNotIn("User=", service)
        build = (IMAGES / "debian/build-image").read_text()
        self.assertRegex(build, r"systemctl --root=\"\$rootfs\" --quiet enable \\\n(\t.*\\\n)*"
                                r"\t.*sipsensor-reboot\.path")
        self.assertIn('"$images"/systemd/*.path', build)
        recipe = SYSTEM_RECIPE.read_text()
        self.assertRegex(recipe, r'SYSTEMD_SERVICE:\$\{PN\} = "[^"]*sipsensor-reboot\.path')
        self.assertIn("for u in ${SYSTEMD_SERVICE:${PN}} sipsensor-reboot.service; do", recipe)


class RebootWatch(unittest.TestCase):
    """BusyBox init's reboot-watch against a fake reboot."""

    def test_reboots_once_the_request_appears_and_removes_it(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            fakes = tmp / "bin"
            fakes.mkdir()
            fake_commands(fakes, {"reboot": f'echo rebooted > "{tmp}/rebooted"', "logger": ":"})
            request = tmp / "run" / "reboot"
            request.parent.mkdir()
            # SIPSENSOR_REBOOT names the fake itself: never the host's reboot.
            env = dict(os.environ, PATH=f"{fakes}:{os.environ['PATH']}",
                       SIPSENSOR_REBOOT=str(fakes / "reboot"),
                       SIPSENSOR_REBOOT_REQUEST=str(request), SIPSENSOR_REBOOT_POLL="0.1")
            watch = subprocess.Popen([OVERLAY / "usr/libexec/sipsensor/reboot-watch"], env=env)
            try:
                time.sleep(0.5)
                self.assertIsNone(watch.poll(), "reboot-watch ended without a request")
                self.assertFalse((tmp / "rebooted").exists(), "rebooted without a request")
                request.touch()
                self.assertEqual(watch.wait(timeout=10), 0)
            finally:
                if watch.poll() is None:
                    watch.kill()
                    watch.wait()
            self.assertEqual((tmp / "rebooted").read_text(), "rebooted\n")
            self.assertFalse(request.exists(), "the request outlives the reboot it asked for")


if __name__ == "__main__":
    unittest.main()
