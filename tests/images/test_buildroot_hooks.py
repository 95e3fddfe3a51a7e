"""Buildroot's post-build and post-image scripts, run outside Buildroot.

The scripts get what Buildroot gives them (the target and images
directories, BR2_CONFIG, BASE_DIR, BUILD_DIR, BR2_EXTERNAL_SIPSENSOR_PATH)
with dummy boot loaders and a small root filesystem, and Debian's genimage,
mkimage and rauc in place of the host packages. Checked: the RAUC
configuration and keyring in the target, fstab (also when the script runs
twice), device trees under /boot/dtbs, and in the images directory a card
with the documented layout and a bundle the target's keyring accepts.
"""

import hashlib
import json
import re
import shutil
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, ROOT, make_release_keys, partuuid, require, run

BOARD = ROOT / "buildroot-external" / "board"
SKELETON_FSTAB = """# <file system>	<mount pt>	<type>	<options>	<dump>	<pass>
/dev/root	/	ext2	rw,noauto	0	1
proc	/proc	proc	defaults	0	0
"""
# Board -> (files Buildroot leaves in the images directory, kernel, dtbs).
BOARDS = {
    "beaglebone": (["MLO", "u-boot.img"], "zImage", ["am335x-boneblack.dtb", "am335x-bonegreen.dtb"]),
    "raspberrypi4-64": (["u-boot.bin", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb",
                         "bcm2711-rpi-cm4.dtb", "rpi-firmware/start4.elf",
                         "rpi-firmware/fixup4.dat", "rpi-firmware/config.txt",
                         "rpi-firmware/cmdline.txt", "rpi-firmware/overlays/disable-bt.dtbo"],
                        "Image", ["bcm2711-rpi-4-b.dtb"]),
    "qemu-arm-virt": ([], "zImage", []),
}


class Hooks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool, package in [("genimage", "genimage"), ("mkimage", "u-boot-tools"),
                              ("rauc", "rauc"), ("mksquashfs", "squashfs-tools"),
                              ("mke2fs", "e2fsprogs"), ("sfdisk", "fdisk"), ("mcopy", "mtools")]:
            require(tool, package)
        cls.tmp = Path(tempfile.mkdtemp())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def run_board(self, board, settings="BR2_SIPSENSOR_RAUC_KEYRING=\"\"\n", name=None):
        base = self.tmp / (name or board)
        target, binaries, build = base / "target", base / "images", base / "build"
        files, kernel, dtbs = BOARDS[board]
        (target / "etc").mkdir(parents=True)
        (target / "boot").mkdir()
        (target / "etc" / "fstab").write_text(SKELETON_FSTAB)
        (target / "boot" / kernel).write_bytes(b"kernel")
        for dtb in dtbs:
            (target / "boot" / dtb).write_bytes(b"dtb")
        for name in files:
            (binaries / name).parent.mkdir(parents=True, exist_ok=True)
            (binaries / name).write_text(f"dummy {name}\n")
        (binaries / "sipsensor-overlays").mkdir(parents=True)
        (binaries / "sipsensor-overlays" / "sipsensor-gpio.dtbo").write_bytes(b"dtbo")
        build.mkdir()
        config = base / ".config"
        config.write_text("BR2_SIPSENSOR_SYSTEM=y\n"
                          f'BR2_SIPSENSOR_RAUC_COMPATIBLE="sipsensor-{board}"\n' + settings)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "BR2_CONFIG": str(config),
               "BASE_DIR": str(base), "BUILD_DIR": str(build), "TARGET_DIR": str(target),
               "BR2_EXTERNAL_SIPSENSOR_PATH": str(ROOT / "buildroot-external")}
        script = BOARD / "common"
        for _ in range(2):  # Buildroot runs post-build again on every `make`
            run([script / "post-build.sh", target, board], env=env)
        # Buildroot makes rootfs.ext4 from the target directory.
        (target / "etc" / "payload").write_bytes(bytes(range(256)) * 1024)
        run(["mke2fs", "-q", "-t", "ext4", "-d", target, binaries / "rootfs.ext4", "16M"])
        run([script / "post-image.sh", binaries, board], env=env, timeout=300)
        return target, binaries

    def test_each_board(self):
        for board in BOARDS:
            with self.subTest(board=board):
                target, binaries = self.run_board(board)
                conf = (target / "etc/rauc/system.conf").read_text()
                self.assertIn(f"compatible=sipsensor-{board}\n", conf)
                keyring = target / "etc/rauc/keyring.pem"
                self.assertIn("BEGIN CERTIFICATE", keyring.read_text())
                fstab = (target / "etc/fstab").read_text()
                self.assertEqual(fstab.count(partuuid(6)), 1, fstab)
                self.assertTrue(fstab.startswith(SKELETON_FSTAB))
                self.assertTrue((target / "boot/firmware").is_dir())
                self.assertTrue((target / "data").is_dir())
                dtbs = BOARDS[board][2]
                self.assertEqual(sorted(p.name for p in (target / "boot/dtbs").iterdir()), sorted(dtbs))
                self.assertEqual(list((target / "boot").glob("*.dtb")), [])
                self.assertEqual(str((target / "root/.ssh").readlink()), "/data/sipsensor/ssh")
                self.assertEqual(str((target / "etc/dropbear").readlink()), "/data/sipsensor/dropbear")
                release = (target / "etc/sipsensor-release").read_text()
                self.assertIn(f"SIPSENSOR_BOARD={board}\n", release)
                # The fleet's version (docs/protocol.md 12.3) is the bundle's.
                version = re.search(r"^SIPSENSOR_VERSION=(.+)$", release, re.M).group(1)
                os_release = (target / "etc/os-release")
                self.assertFalse(os_release.is_symlink())
                self.assertIn(f'VERSION_ID="{version}"\n', os_release.read_text())

                table = json.loads(run(["sfdisk", "--json", binaries / "sipsensor-sdcard.img"])
                                   .stdout)["partitiontable"]
                self.assertEqual(len(table["partitions"]), 6)
                self.assertEqual(table["id"], "0x" + partuuid(1)[:8])
                bundles = list(binaries.glob(f"sipsensor-{board}-*.raucb"))
                self.assertEqual(len(bundles), 1)
                info = run(["rauc", "info", f"--keyring={keyring}", bundles[0]], check=False)
                self.assertEqual(info.returncode, 0, info.stderr)
                self.assertIn(f"Compatible: \t'sipsensor-{board}'", info.stdout)
                self.assertIn(f"Version:    \t'{version}'", info.stdout)
                # The bundle carries the card's boot partition for the boot
                # slot, with the hook that keeps the technician's files.
                images = json.loads(run(["rauc", "info", "--output-format=json",
                                         f"--keyring={keyring}", bundles[0]]).stdout)["images"]
                images = dict(next(iter(entry.items())) for entry in images)
                self.assertEqual(sorted(images), ["boot", "rootfs"])
                self.assertEqual(images["boot"]["hooks"], ["post-install"])
                self.assertEqual(images["boot"]["checksum"],
                                 hashlib.sha256((binaries / "boot.vfat").read_bytes()).hexdigest())
                # The boot partition's files were gathered for genimage.
                stage = binaries / "sipsensor-boot"
                self.assertTrue((stage / "boot.scr").exists())
                if board != "qemu-arm-virt":
                    self.assertTrue((stage / "overlays" / "sipsensor-gpio.dtbo").exists())
                if board == "raspberrypi4-64":
                    self.assertTrue((stage / "overlays" / "disable-bt.dtbo").exists())

    def test_release_build_trusts_only_the_release_keyring(self):
        release = make_release_keys(self.tmp / "release-keys")
        dev = self.tmp / "dev-keys"
        run([IMAGES / "scripts" / "mk-dev-keys", dev])
        board = "qemu-arm-virt"

        # The release keyring is required, and a development one refused.
        for keyring, message in (("", "a release build needs the release keyring"),
                                 (dev / "ca.cert.pem", "development certificate")):
            with self.subTest(keyring=keyring):
                with self.assertRaises(AssertionError) as failed:
                    self.run_board(board, "BR2_SIPSENSOR_RAUC_RELEASE=y\n"
                                   f'BR2_SIPSENSOR_RAUC_KEYRING="{keyring}"\n', name="refused")
                self.assertIn(message, str(failed.exception))
                shutil.rmtree(self.tmp / "refused")

        target, binaries = self.run_board(
            board, "BR2_SIPSENSOR_RAUC_RELEASE=y\n"
            f'BR2_SIPSENSOR_RAUC_KEYRING="{release / "ca.cert.pem"}"\n'
            f'BR2_SIPSENSOR_RAUC_CERT="{release / "signing.cert.pem"}"\n'
            f'BR2_SIPSENSOR_RAUC_KEY="{release / "signing.key.pem"}"\n', name="release")
        (signed,) = binaries.glob(f"sipsensor-{board}-*.raucb")
        dev_signed = binaries / "dev-signed.raucb"
        run([IMAGES / "scripts" / "mk-bundle", binaries / "rootfs.ext4", f"sipsensor-{board}",
             "1.0", dev / "signing.cert.pem", dev / "signing.key.pem", dev_signed], timeout=120)

        # The device's own system.conf and keyring, as the build installed them.
        def info(bundle):
            return run(["rauc", f"--conf={target / 'etc/rauc/system.conf'}", "info",
                        f"--keyring={target / 'etc/rauc/keyring.pem'}", bundle], check=False)

        self.assertEqual(info(signed).returncode, 0, info(signed).stderr)
        refused = info(dev_signed)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("signature verification failed", refused.stderr)

    def test_release_build_without_a_key_leaves_the_bundle_to_offline_signing(self):
        release = make_release_keys(self.tmp / "release-keys-nokey")
        _, binaries = self.run_board(
            "qemu-arm-virt", "BR2_SIPSENSOR_RAUC_RELEASE=y\n"
            f'BR2_SIPSENSOR_RAUC_KEYRING="{release / "ca.cert.pem"}"\n', name="unsigned")
        self.assertEqual(list(binaries.glob("*.raucb")), [])
        self.assertTrue((binaries / "sipsensor-sdcard.img").exists())


if __name__ == "__main__":
    unittest.main()
