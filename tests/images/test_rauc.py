"""RAUC: a verity bundle made by images/scripts/mk-bundle with Debian's rauc.

Keys are made at test time by images/scripts/mk-dev-keys (none is in the
repository). The bundle must verify against the keyring of the CA that
issued its signing certificate and be refused with any other keyring;
mk-bundle itself must refuse to sign with a certificate the devices' keyring
does not trust. The rendered system.conf must load in rauc (which rejects
unknown keys and bootloaders).
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, ROOT, layout, make_release_keys, require, run, size_bytes

SCRIPTS = IMAGES / "scripts"


class Bundle(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("rauc", "rauc")
        require("mksquashfs", "squashfs-tools")
        require("mke2fs", "e2fsprogs")
        require("openssl", "openssl")
        cls.tmp = Path(tempfile.mkdtemp())
        for name in ("ca-a", "ca-b"):
            run([SCRIPTS / "mk-dev-keys", cls.tmp / name])
        # A root filesystem with some incompressible content (a verity
        # bundle needs a payload larger than one squashfs block).
        tree = cls.tmp / "tree"
        (tree / "etc").mkdir(parents=True)
        with open("/dev/urandom", "rb") as rnd:
            (tree / "etc" / "payload").write_bytes(rnd.read(256 * 1024))
        cls.rootfs = cls.tmp / "rootfs.ext4"
        run(["mke2fs", "-q", "-t", "ext4", "-d", tree, cls.rootfs, "8M"])
        cls.bundle = cls.tmp / "update.raucb"
        cls.make(cls.bundle, "ca-a", keyring="ca-a")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    @classmethod
    def make(cls, out, signer, keyring=None, check=True):
        keys = cls.tmp / signer
        cmd = [SCRIPTS / "mk-bundle", cls.rootfs, "sipsensor-test", "1.2.3",
               keys / "signing.cert.pem", keys / "signing.key.pem", out]
        if keyring:
            cmd.append(cls.tmp / keyring / "ca.cert.pem")
        return run(cmd, timeout=120, check=check)

    def info(self, keyring, *extra):
        return run(["rauc", *extra, "info", f"--keyring={self.tmp / keyring / 'ca.cert.pem'}",
                    self.bundle], check=False)

    def test_verifies_against_its_keyring(self):
        result = self.info("ca-a")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Compatible: \t'sipsensor-test'", result.stdout)
        self.assertIn("Version:    \t'1.2.3'", result.stdout)
        self.assertRegex(result.stdout, r"Bundle Format: \tverity")
        self.assertIn("[rootfs]", result.stdout)
        self.assertIn("Filename:  rootfs.ext4", result.stdout)

    def test_refused_with_another_keyring(self):
        result = self.info("ca-b")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("signature verification failed", result.stderr)

    def extract(self, bundle, out):
        return run(["rauc", "extract", f"--keyring={self.tmp / 'ca-a' / 'ca.cert.pem'}",
                    bundle, out], check=False, timeout=120)

    def test_payload_is_the_root_filesystem(self):
        out = self.tmp / "extracted"
        result = self.extract(self.bundle, out)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual((out / "rootfs.ext4").read_bytes(), self.rootfs.read_bytes())

    def test_payload_tampering_is_detected(self):
        # "rauc info" checks only the signed manifest; the verity hash tree
        # catches a changed payload block (userspace check in extract,
        # dm-verity on the device).
        tampered = self.tmp / "tampered.raucb"
        data = bytearray(self.bundle.read_bytes())
        data[100] ^= 0xFF
        tampered.write_bytes(bytes(data))
        result = self.extract(tampered, self.tmp / "tampered-out")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("payload is corrupted", result.stderr)

    def test_mk_bundle_refuses_a_signer_the_keyring_does_not_trust(self):
        result = self.make(self.tmp / "wrong.raucb", "ca-b", keyring="ca-a", check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("signature verification failed", result.stderr)

    def test_boot_partition_rides_after_the_root_filesystem_with_the_hook(self):
        boot = self.tmp / "boot.vfat"
        run(["mkfs.vfat", "-C", "-n", "SIPSENSOR", boot, "4096"])
        out = self.tmp / "with-boot.raucb"
        run([SCRIPTS / "mk-bundle", "--boot", boot, self.rootfs, "sipsensor-test", "1.2.4",
             self.tmp / "ca-a" / "signing.cert.pem", self.tmp / "ca-a" / "signing.key.pem", out,
             self.tmp / "ca-a" / "ca.cert.pem"], timeout=120)
        info = json.loads(run(["rauc", "info", "--output-format=json",
                               f"--keyring={self.tmp / 'ca-a' / 'ca.cert.pem'}", out]).stdout)
        images = [next(iter(entry.items())) for entry in info["images"]]
        # The root filesystem first: an installation cut short while it is
        # written has not touched the boot partition yet.
        self.assertEqual([name for name, _ in images], ["rootfs", "boot"])
        boot_image = dict(images)["boot"]
        self.assertEqual(boot_image["filename"], "boot.vfat")
        self.assertEqual(boot_image["hooks"], ["post-install"])
        self.assertEqual(boot_image["checksum"], hashlib.sha256(boot.read_bytes()).hexdigest())
        extracted = self.tmp / "with-boot"
        result = self.extract(out, extracted)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual((extracted / "hook").read_bytes(),
                         (IMAGES / "rauc" / "boot-slot-hook").read_bytes())
        self.assertTrue(os.access(extracted / "hook", os.X_OK))
        self.assertIn("[hooks]\nfilename=hook\n", (extracted / "manifest.raucm").read_text())

    def test_mk_bundle_refuses_a_boot_image_larger_than_the_partition(self):
        boot = self.tmp / "huge.vfat"
        with boot.open("wb") as f:
            f.truncate(size_bytes(layout()["SIPSENSOR_BOOT_SIZE"]) + 512)
        result = run([SCRIPTS / "mk-bundle", "--boot", boot, self.rootfs, "sipsensor-test", "1",
                      self.tmp / "ca-a" / "signing.cert.pem", self.tmp / "ca-a" / "signing.key.pem",
                      self.tmp / "huge.raucb"], check=False)
        self.assertEqual(result.returncode, 65, result.stderr)
        self.assertIn("larger than the boot partition", result.stderr)
        self.assertFalse((self.tmp / "huge.raucb").exists())

    def test_rendered_system_conf_loads(self):
        conf = self.tmp / "system.conf"
        run([SCRIPTS / "render-system-conf", "sipsensor-beaglebone", conf])
        text = conf.read_text()
        self.assertIn("compatible=sipsensor-beaglebone\n", text)
        self.assertNotIn("@", text)
        result = self.info("ca-a", f"--conf={conf}")
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_render_rejects_unsafe_compatible(self):
        result = run([SCRIPTS / "render-system-conf", "a/b", self.tmp / "x.conf"], check=False)
        self.assertEqual(result.returncode, 64)

    def test_no_private_key_in_the_repository(self):
        pattern = "-----BEGIN [A-Z ]*PRIVATE KEY-----"
        tracked = subprocess.run(["git", "-C", ROOT, "grep", "-l", "-I", "-E", pattern],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(tracked.stdout.strip(), "", "private keys are tracked")


class ReleaseKeys(unittest.TestCase):
    """images/rauc/check-release-keys: what a release build accepts."""

    @classmethod
    def setUpClass(cls):
        require("openssl", "openssl")
        cls.tmp = Path(tempfile.mkdtemp())
        run([SCRIPTS / "mk-dev-keys", cls.tmp / "dev"])
        # tests/boot names its development keys differently: still refused.
        run([SCRIPTS / "mk-dev-keys", cls.tmp / "named"],
            env=dict(os.environ, SIPSENSOR_DEV_KEY_SUBJECT="/O=sipsensor test/CN=x"))
        cls.release = make_release_keys(cls.tmp / "release")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def check(self, *args):
        return run([IMAGES / "rauc" / "check-release-keys", *args], check=False)

    def test_accepts_the_release_ca_and_its_signer(self):
        result = self.check(self.release / "ca.cert.pem", self.release / "signing.cert.pem")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.check(self.release / "ca.cert.pem", "pkcs11:token=hsm").returncode, 0)

    def test_refuses_development_keys(self):
        mixed = self.tmp / "mixed.pem"
        mixed.write_text((self.release / "ca.cert.pem").read_text() +
                         (self.tmp / "dev" / "ca.cert.pem").read_text())
        for args in ([self.tmp / "dev" / "ca.cert.pem"], [self.tmp / "named" / "ca.cert.pem"],
                     [mixed], [self.release / "ca.cert.pem", self.tmp / "dev" / "signing.cert.pem"]):
            with self.subTest(args=args):
                result = self.check(*args)
                self.assertEqual(result.returncode, 1)
                self.assertIn("development certificate", result.stderr)

    def test_refuses_a_missing_keyring_or_a_non_ca(self):
        self.assertEqual(self.check(self.tmp / "absent.pem").returncode, 1)
        self.assertEqual(self.check("").returncode, 64)
        result = self.check(self.release / "signing.cert.pem")
        self.assertEqual(result.returncode, 1)
        self.assertIn("not a CA certificate", result.stderr)


if __name__ == "__main__":
    unittest.main()
