"""The A/B boot script on a real U-Boot: Debian's qemu_arm build in QEMU.

A card laid out by mk-sdcard for the QEMU board boots with `-no-reboot`,
so every `reset` of the script ends one QEMU run and each run is one boot
attempt. Slot A holds a stand-in kernel that `bootz` rejects, so each boot
ends in a reset after the script has chosen a slot and stored the state.
Between boots the test reads and writes that state with fw_printenv /
fw_setenv (libubootenv, what RAUC's "uboot" backend runs) through a
fw_env.config pointing into the image file: the counting, the fallback to
the other slot, the reset of both counters when neither boots, an update
that RAUC switched to slot B, and the kernel command line. No network.
"""

import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, missing, partuuid, require, run

UBOOT = Path("/usr/lib/u-boot/qemu_arm/u-boot.bin")
SECTOR = 512


class BootScript(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool, package in [("qemu-system-arm", "qemu-system-arm"),
                              ("fw_printenv", "libubootenv-tool"), ("fw_setenv", "libubootenv-tool"),
                              ("mkimage", "u-boot-tools"), ("genimage", "genimage"),
                              ("sfdisk", "fdisk"), ("mke2fs", "e2fsprogs")]:
            require(tool, package)
        if not UBOOT.exists():
            missing(f"{UBOOT} is missing (Debian package u-boot-qemu)")
        cls.tmp = Path(tempfile.mkdtemp())
        inputs = cls.tmp / "in"
        (cls.tmp / "tree" / "boot").mkdir(parents=True)
        inputs.mkdir()
        (cls.tmp / "tree" / "boot" / "zImage").write_bytes(b"not a kernel\n")
        run(["mke2fs", "-q", "-t", "ext4", "-d", cls.tmp / "tree", inputs / "rootfs.ext4", "8M"])
        run([IMAGES / "scripts" / "mk-boot-script", "qemu-arm-virt", inputs / "boot.scr"])
        shutil.copy(IMAGES / "boot" / "sipsensor.yaml", inputs)
        (inputs / "bootenv.txt").write_text(
            (IMAGES / "boot" / "bootenv.txt").read_text().replace(
                "\nextra_bootargs=\n", "\r\nextra_bootargs=sipsensor.test=1\r\n"))
        run([IMAGES / "scripts" / "mk-sdcard", "qemu", inputs, cls.tmp / "out", cls.tmp / "gi"],
            timeout=300)
        cls.image = cls.tmp / "out" / "sipsensor-sdcard.img"
        table = run(["sfdisk", "--json", cls.image]).stdout
        cls.starts = {int(n): int(s) for n, s in re.findall(r'sdcard\.img(\d)",\s*"start": (\d+)', table)}
        cls.fw_config = cls.tmp / "fw_env.config"
        cls.fw_config.write_text(f"{cls.image} {cls.starts[5] * SECTOR:#x} 0x4000\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def boot(self):
        """One boot attempt; the script's own lines of the serial console."""
        result = subprocess.run(
            ["qemu-system-arm", "-M", "virt", "-cpu", "cortex-a15", "-m", "256",
             "-nographic", "-no-reboot", "-net", "none", "-bios", str(UBOOT),
             "-drive", f"file={self.image},if=none,format=raw,id=hd0",
             "-device", "virtio-blk-device,drive=hd0"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return [l.strip() for l in result.stdout.splitlines() if l.startswith("sipsensor:")]

    def state(self):
        out = run(["fw_printenv", "-c", self.fw_config]).stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    def setenv(self, **values):
        for name, value in values.items():
            run(["fw_setenv", "-c", self.fw_config, name, value])

    def test_counting_fallback_and_update(self):
        # A new card: defaults, slot A, one attempt used and stored.
        lines = self.boot()
        self.assertIn("sipsensor: no valid boot state yet, starting from defaults", lines)
        self.assertIn("sipsensor: trying slot A (2 attempts left after this one)", lines)
        booting = [l for l in lines if l.startswith("sipsensor: booting slot A:")]
        self.assertEqual(len(booting), 1, lines)
        self.assertIn(f"root=PARTUUID={partuuid(2)} ", booting[0])
        self.assertIn("rauc.slot=A", booting[0])
        self.assertIn("panic=5", booting[0])
        self.assertIn("sipsensor.test=1", booting[0])  # bootenv.txt, CRLF line ends
        self.assertEqual(self.state(), {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"})

        # Two more failed boots of A use up its attempts.
        self.boot()
        self.assertIn("sipsensor: boot state: order A B, A 1 left, B 3 left", self.boot())
        self.assertEqual(self.state()["BOOT_A_LEFT"], "0")

        # A is skipped; B has no kernel; neither boots: both get 3 again.
        lines = self.boot()
        self.assertIn("sipsensor: trying slot B (2 attempts left after this one)", lines)
        self.assertIn("sipsensor: no /boot/zImage in slot B", lines)
        self.assertIn("sipsensor: no slot left to boot; giving both slots 3 attempts again", lines)
        self.assertEqual(self.state(), {"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"})

        # An update: slot B written, then made primary the way RAUC does.
        with self.image.open("r+b") as f, (self.tmp / "in" / "rootfs.ext4").open("rb") as rootfs:
            f.seek(self.starts[3] * SECTOR)
            f.write(rootfs.read())
        self.setenv(BOOT_ORDER="B A", BOOT_B_LEFT="3")
        lines = self.boot()
        self.assertIn("sipsensor: trying slot B (2 attempts left after this one)", lines)
        booting = [l for l in lines if l.startswith("sipsensor: booting slot B:")]
        self.assertEqual(len(booting), 1, lines)
        self.assertIn(f"root=PARTUUID={partuuid(3)} ", booting[0])
        self.assertIn("rauc.slot=B", booting[0])
        self.assertEqual(self.state(), {"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2"})


if __name__ == "__main__":
    unittest.main()
