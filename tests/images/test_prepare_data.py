"""prepare-data and the links into /data: what reaches the data partition
from the technician's boot partition, in every build.

prepare-data runs against a temporary boot and data directory, with fakes
of mount, chown, id and logger (no root, no device, a user sipsensor). The site CA
(ca.pem) is copied, never moved, and only a file of PEM certificates
replaces the copy the agent reads; the credentials are moved.
"""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, ROOT, fake_commands, require, run

OVERLAY = IMAGES / "rootfs-overlay"
PREPARE = OVERLAY / "usr" / "libexec" / "sipsensor" / "prepare-data"
YOCTO_RECIPES = [
    ROOT / "meta-sipsensor/recipes-sipsensor/sipsensor-agent/sipsensor-agent_git.bb",
    ROOT / "meta-sipsensor/recipes-sipsensor/sipsensor-system/sipsensor-system_git.bb",
]
# The agent's configuration in each image.
AGENT_CONFIGS = [
    OVERLAY / "etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/beagleboard/beaglebone/rootfs-overlay/etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/raspberrypi/raspberrypi4-64/rootfs-overlay/etc/sipsensor/agent.yaml",
]
# Where the agent reads the site CA by default (sip.ca_file).
AGENT_CA = "/etc/sipsensor/ca.pem"


def make_ca(directory, name):
    """A throw-away CA certificate (PEM) and its key, made by openssl."""
    d = Path(directory)
    run(["openssl", "req", "-x509", "-new", "-noenc", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", d / f"{name}.key",
         "-out", d / f"{name}.pem", "-days", "30", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE"])
    return (d / f"{name}.pem").read_text(), (d / f"{name}.key").read_text()


class Links(unittest.TestCase):
    def overlay_links(self):
        return {str(p.relative_to(OVERLAY)): os.readlink(p)
                for p in sorted(OVERLAY.rglob("*")) if p.is_symlink()}

    def test_the_agents_ca_file_is_a_link_to_the_data_partition(self):
        links = self.overlay_links()
        self.assertEqual(links.get(AGENT_CA.lstrip("/")), "/data/sipsensor/ca.pem")
        self.assertEqual(links.get("etc/sipsensor/secrets.yaml"), "/data/sipsensor/secrets.yaml")
        raw = (ROOT / "agent/src/config/raw.rs").read_text()
        self.assertIn(f'DEFAULT_CA_FILE: &str = "{AGENT_CA}"', raw)

    def test_buildroot_and_debian_take_the_overlay_with_its_links(self):
        for defconfig in sorted((ROOT / "buildroot-external/configs").glob("*_defconfig")):
            with self.subTest(defconfig=defconfig.name):
                self.assertIn("/../images/rootfs-overlay", defconfig.read_text())
        build = (IMAGES / "debian/build-image").read_text()
        self.assertIn('tar -C "$images/rootfs-overlay"', build)

    def test_yocto_makes_every_link_of_the_overlay(self):
        recipes = "".join(p.read_text() for p in YOCTO_RECIPES)
        prefixes = {"etc/": "${D}${sysconfdir}/", "var/": "${D}${localstatedir}/"}
        for path, target in self.overlay_links().items():
            with self.subTest(path=path):
                top = path[:path.index("/") + 1]
                self.assertIn(f"ln -sf {target} {prefixes[top]}{path[len(top):]}", recipes)


class PrepareData(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("openssl", "openssl")
        cls.keys = Path(tempfile.mkdtemp())
        cls.site_ca, cls.site_key = make_ca(cls.keys, "site CA")
        cls.new_ca, _ = make_ca(cls.keys, "new site CA")

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["rm", "-rf", str(cls.keys)], check=False)

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        self.boot = self.dir / "boot"
        self.data = self.dir / "data" / "sipsensor"
        self.bin = self.dir / "bin"
        for d in (self.boot, self.data, self.bin):
            d.mkdir(parents=True)
        self.mounts = self.dir / "mounts"
        self.mounts.write_text(f"/dev/vda1 {self.boot} vfat ro 0 0\n/dev/vda6 /data ext4 rw 0 0\n")
        self.log = self.dir / "log"
        fake_commands(self.bin, {
            "mount": 'echo "mount $*" >> "$LOG"',
            "logger": 'shift 2; echo "logger $*" >> "$LOG"',
            "chown": 'echo "chown $*" >> "$LOG"',
            "id": ':',
        })

    def tearDown(self):
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    def boot_with(self, **files):
        """Put FILES on the boot partition and run prepare-data, as at a boot."""
        for name, text in files.items():
            (self.boot / name.replace("_", ".")).write_text(text)
        self.log.write_text("")
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LOG": str(self.log),
               "SIPSENSOR_DEFAULTS": str(self.dir / "no-defaults"),
               "SIPSENSOR_DATA_DIR": str(self.data), "SIPSENSOR_BOOT_DIR": str(self.boot),
               "SIPSENSOR_MOUNTS": str(self.mounts), "SIPSENSOR_FSTAB": str(self.dir / "fstab"),
               "SIPSENSOR_UNLOCK_CONSOLE": "true"}
        result = run([PREPARE], env=env, check=False, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stderr

    def installed_ca(self):
        path = self.data / "ca.pem"
        return path.read_bytes().decode() if path.exists() else None

    def test_a_ca_certificate_is_copied_and_stays_on_the_card(self):
        said = self.boot_with(ca_pem=self.site_ca)
        self.assertEqual(self.installed_ca(), self.site_ca)
        self.assertEqual((self.data / "ca.pem").stat().st_mode & 0o777, 0o644)
        self.assertEqual((self.boot / "ca.pem").read_text(), self.site_ca)
        self.assertIn("installed the site CA", said)
        self.assertNotIn("remount", self.log.read_text(), "the boot partition was written")
        # The next boot finds the same file: nothing to do, nothing said.
        self.assertEqual(self.boot_with(), "")
        # A new CA (a bundle of the new and the old one while rotating, in
        # the line endings a Windows editor leaves) replaces it.
        bundle = (self.new_ca + "explanatory text between blocks\n" + self.site_ca)
        self.boot_with(ca_pem=bundle.replace("\n", "\r\n"))
        self.assertEqual(self.installed_ca(), bundle.replace("\n", "\r\n"))

    def test_anything_but_pem_certificates_is_refused_and_the_good_one_kept(self):
        self.boot_with(ca_pem=self.site_ca)
        lines = self.site_ca.splitlines(keepends=True)
        body = lines[1:-1]
        refused = {
            "empty": "",
            "not PEM": "the CA is on the intranet\n",
            "a private key": self.site_key,
            "a certificate with its key": self.site_ca + self.site_key,
            "DER read as text": "0\x82\x01\x0b0\x81\xb2\xa0\x03\x02\x01\x02\n",
            "truncated": "".join(lines[:-2]),
            "a line lost": "".join([lines[0], *body[1:], lines[-1]]),
            "a character changed": self.site_ca.replace(body[0][5], "#", 1),
            "no BEGIN line": "".join(lines[1:]),
            "too large": self.site_ca + "x" * 300_000 + "\n",
        }
        for what, text in refused.items():
            with self.subTest(what=what):
                said = self.boot_with(ca_pem=text)
                self.assertIn("refused ca.pem on the boot partition", said)
                self.assertIn(f"keeping the previous {self.data / 'ca.pem'}", said)
                self.assertEqual(self.installed_ca(), self.site_ca)
                self.assertFalse((self.data / "ca.pem.new").exists())
        key_line = self.site_key.splitlines()[1]
        self.assertNotIn(key_line, self.boot_with(ca_pem=self.site_key),
                         "the refusal quotes only the block's header, never a key")

    def test_a_refused_first_ca_installs_nothing(self):
        said = self.boot_with(ca_pem=self.site_key)
        self.assertIn("refused ca.pem on the boot partition: it holds something other than "
                      "certificates (-----BEGIN PRIVATE KEY-----); no site CA installed", said)
        self.assertIsNone(self.installed_ca())

    def test_the_password_is_moved_off_the_card(self):
        said = self.boot_with(secrets_yaml="password: board-secret\n")
        self.assertFalse((self.boot / "secrets.yaml").exists())
        moved = self.data / "secrets.yaml"
        self.assertEqual(moved.read_text(), "password: board-secret\n")
        # Readable by the agent's group (chown faked here).
        self.assertEqual(moved.stat().st_mode & 0o777, 0o640)
        self.assertIn("moved secrets.yaml from the boot partition", said)
        self.assertIn(f"mount -o remount,rw {self.boot}", self.log.read_text())

    def test_the_agent_owns_its_update_directory(self):
        """update.dir of the image's agent.yaml: made on the data
        partition, the agent's (it downloads bundles there as its own
        user), closed to others; ota/ stays root's."""
        self.boot_with()
        update = self.data / "update"
        self.assertTrue(update.is_dir())
        self.assertEqual(update.stat().st_mode & 0o777, 0o750)
        chowns = [l for l in self.log.read_text().splitlines() if l.startswith("chown")]
        self.assertIn(f"chown -R sipsensor:sipsensor {update}", chowns)
        self.assertFalse(any(str(self.data / "ota") in l for l in chowns), chowns)
        for config in AGENT_CONFIGS:
            with self.subTest(config=config.relative_to(ROOT)):
                self.assertRegex(config.read_text(),
                                 r"\nupdate:\n(  .*\n)*  dir: /data/sipsensor/update\n")


if __name__ == "__main__":
    unittest.main()
