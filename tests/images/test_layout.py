"""The SD-card layout: genimage output, the documented table, every reference.

images/scripts/mk-sdcard (the genimage run every build uses) is fed dummy
inputs for each board; the partition table read back with `sfdisk --json`
must equal the table in docs/building-images.md, whose sizes must equal
images/layout.env. The boot partition must hold the board's files under the
documented label, the data partition its ext4 label, slot A the root
filesystem. Every other place that names a partition (fstab, systemd
mounts, fw_env.config, RAUC's system.conf, the boot script) must agree.
"""

import json
import re
import shutil
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, ROOT, layout, partuuid, require, run, size_bytes

DOC = ROOT / "docs" / "building-images.md"
MIB = 1 << 20
SECTOR = 512
BOARDS = ["beaglebone", "raspberrypi4-64", "qemu"]
SCRIPT_BOARDS = ["beaglebone", "raspberrypi4-64", "qemu-arm-virt"]
# sfdisk's type codes of the documented MBR types.
TYPE_CODES = {"0x0c": "c", "0x83": "83", "0x0f": "f", "0xda": "da"}


def documented_table():
    """Rows of the layout table in docs/building-images.md."""
    text = DOC.read_text()
    start = text.index("<!-- layout-table -->")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not cells[0].isdigit():
            continue
        number, name, first, size, ptype = cells[:5]
        rows.append({
            "number": int(number),
            "name": name,
            "start": int(first.split()[0]) * MIB,
            "size": int(size.split()[0]) * MIB,
            "type": ptype.split()[0],
            "bootable": "bootable" in ptype,
        })
    return rows


def boot_files(board):
    """Names listed in images/genimage/boot-<board>.cfg."""
    cfg = (IMAGES / "genimage" / f"boot-{board}.cfg").read_text()
    block = re.search(r"files = \{(.*?)\}", cfg, re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


class Table(unittest.TestCase):
    def test_documented_sizes_are_the_layout(self):
        lay = layout()
        rows = {r["name"]: r for r in documented_table()}
        self.assertEqual([r["number"] for r in documented_table()], [1, 2, 3, 4, 5, 6])
        self.assertEqual(rows["boot"]["start"], size_bytes(lay["SIPSENSOR_BOOT_OFFSET"]))
        self.assertEqual(rows["boot"]["size"], size_bytes(lay["SIPSENSOR_BOOT_SIZE"]))
        self.assertEqual(rows["rootfs-a"]["size"], size_bytes(lay["SIPSENSOR_ROOTFS_SIZE"]))
        self.assertEqual(rows["rootfs-b"]["size"], size_bytes(lay["SIPSENSOR_ROOTFS_SIZE"]))
        self.assertEqual(rows["bootstate"]["size"], size_bytes(lay["SIPSENSOR_BOOTSTATE_SIZE"]))
        self.assertEqual(rows["data"]["size"], size_bytes(lay["SIPSENSOR_DATA_SIZE"]))
        self.assertIn(f"0x{int(lay['SIPSENSOR_DISK_SIGNATURE'], 16):08x}", DOC.read_text())

    def test_boot_region_holds_two_boot_partitions_before_slot_a(self):
        """RAUC's boot-mbr-switch slot takes each half of the region as
        region-size / 2 and refuses a region another partition overlaps:
        p1 is the first half, nothing else starts before the region ends."""
        lay = layout()
        rows = {r["name"]: r for r in documented_table()}
        region = size_bytes(lay["SIPSENSOR_BOOT_REGION_SIZE"])
        self.assertEqual(region, 2 * size_bytes(lay["SIPSENSOR_BOOT_SIZE"]))
        region_end = size_bytes(lay["SIPSENSOR_BOOT_OFFSET"]) + region
        self.assertEqual(rows["rootfs-a"]["start"], region_end)
        for name, row in rows.items():
            if name != "boot":
                self.assertGreaterEqual(row["start"], region_end, name)


class Genimage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool, package in [("genimage", "genimage"), ("sfdisk", "fdisk"),
                              ("mkfs.vfat", "dosfstools"), ("mcopy", "mtools"),
                              ("mke2fs", "e2fsprogs"), ("dumpe2fs", "e2fsprogs")]:
            require(tool, package)
        cls.tmp = Path(tempfile.mkdtemp())
        tree = cls.tmp / "tree"
        (tree / "etc").mkdir(parents=True)
        (tree / "etc" / "sipsensor-release").write_text("SIPSENSOR_BOARD=test\n")
        cls.rootfs = cls.tmp / "rootfs.ext4"
        run(["mke2fs", "-q", "-t", "ext4", "-L", "rootfs", "-d", tree, cls.rootfs, "16M"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def build(self, board):
        inputs = self.tmp / f"in-{board}"
        inputs.mkdir()
        for name in boot_files(board):
            if name == "overlays":
                (inputs / name).mkdir()
                (inputs / name / "sipsensor-bme280.dtbo").write_bytes(b"dtbo")
            else:
                (inputs / name).write_text(f"dummy {name}\n")
        shutil.copy(self.rootfs, inputs / "rootfs.ext4")
        out = self.tmp / f"out-{board}"
        run([IMAGES / "scripts" / "mk-sdcard", board, inputs, out, self.tmp / f"gi-{board}"],
            timeout=300)
        return out / "sipsensor-sdcard.img"

    def partition(self, image, part):
        with image.open("rb") as f:
            f.seek(part["start"] * SECTOR)
            return f.read(part["size"] * SECTOR)

    def test_each_board_gives_the_documented_layout(self):
        lay = layout()
        for board in BOARDS:
            with self.subTest(board=board):
                image = self.build(board)
                table = json.loads(run(["sfdisk", "--json", image]).stdout)["partitiontable"]
                self.assertEqual(table["label"], "dos")
                self.assertEqual(int(table["id"], 16), int(lay["SIPSENSOR_DISK_SIGNATURE"], 16))
                parts = table["partitions"]
                rows = documented_table()
                self.assertEqual(len(parts), len(rows))
                for part, row in zip(parts, rows):
                    self.assertTrue(part["node"].endswith(str(row["number"])), row)
                    self.assertEqual(part["start"] * SECTOR, row["start"], row["name"])
                    self.assertEqual(part["size"] * SECTOR, row["size"], row["name"])
                    self.assertEqual(part["type"], TYPE_CODES[row["type"]], row["name"])
                    self.assertEqual(part.get("bootable", False), row["bootable"], row["name"])
                self.check_contents(board, image, parts)

    def check_contents(self, board, image, parts):
        lay = layout()
        boot = self.tmp / f"{board}-boot.vfat"
        boot.write_bytes(self.partition(image, parts[0]))
        listing = run(["mdir", "-i", boot, "-b", "::"]).stdout.split()
        self.assertEqual(sorted(p.rstrip("/").split("/")[-1] for p in listing),
                         sorted(boot_files(board)))
        if "overlays" in boot_files(board):
            inner = run(["mdir", "-i", boot, "-b", "::/overlays"]).stdout.split()
            self.assertEqual([p.split("/")[-1] for p in inner], ["sipsensor-bme280.dtbo"])
        label = run(["mlabel", "-i", boot, "-s", "::"]).stdout
        self.assertIn(lay["SIPSENSOR_BOOT_LABEL"], label)
        # FAT32 boot sector: file system type string at offset 82.
        self.assertEqual(boot.read_bytes()[82:90], b"FAT32   ")
        slot_a = self.partition(image, parts[1])
        self.assertEqual(slot_a[:self.rootfs.stat().st_size], self.rootfs.read_bytes())
        data = self.tmp / f"{board}-data.ext4"
        data.write_bytes(self.partition(image, parts[5]))
        header = run(["dumpe2fs", "-h", data]).stdout
        self.assertRegex(header, rf"Filesystem volume name:\s+{lay['SIPSENSOR_DATA_LABEL']}")


class References(unittest.TestCase):
    """Every file that names a partition names the right one."""

    def test_fstab_and_systemd_mounts(self):
        fstab = (IMAGES / "fstab.append").read_text()
        self.assertRegex(fstab, rf"/dev/disk/by-partuuid/{partuuid(1)}\s+/boot/firmware\s+vfat\s+ro,")
        self.assertRegex(fstab, rf"/dev/disk/by-partuuid/{partuuid(6)}\s+/data\s+ext4\s+rw,")
        boot = (IMAGES / "systemd" / "boot-firmware.mount").read_text()
        self.assertIn(f"What=/dev/disk/by-partuuid/{partuuid(1)}", boot)
        self.assertIn("Where=/boot/firmware", boot)
        data = (IMAGES / "systemd" / "data.mount").read_text()
        self.assertIn(f"What=/dev/disk/by-partuuid/{partuuid(6)}", data)
        escaped = partuuid(6).replace("-", "\\x2d")
        self.assertIn(f"systemd-fsck@dev-disk-by\\x2dpartuuid-{escaped}.service", data)

    def test_fw_env_config_is_the_bootstate_partition(self):
        lines = [l.split() for l in (IMAGES / "rootfs-overlay/etc/fw_env.config").read_text().splitlines()
                 if l.strip() and not l.startswith("#")]
        self.assertEqual(lines, [[f"/dev/disk/by-partuuid/{partuuid(5)}", "0x0",
                                  layout()["SIPSENSOR_BOOTSTATE_ENV_SIZE"]]])

    def test_rauc_slots(self):
        conf = (IMAGES / "rauc" / "system.conf.in").read_text()
        slots = re.findall(r"\[slot\.rootfs\.(\d)\]\ndevice=(\S+)\ntype=(\S+)\nbootname=(\S+)", conf)
        self.assertEqual(slots, [
            ("0", f"/dev/disk/by-partuuid/{partuuid(2)}", "ext4", "A"),
            ("1", f"/dev/disk/by-partuuid/{partuuid(3)}", "ext4", "B"),
        ])

    def test_rauc_boot_slot_is_the_boot_region(self):
        conf = (IMAGES / "rauc" / "system.conf.in").read_text()
        slot = re.search(r"\[slot\.boot\.0\]\n((?:\w[\w-]*=\S+\n)+)", conf)
        self.assertIsNotNone(slot, "system.conf.in has no [slot.boot.0]")
        keys = dict(line.split("=", 1) for line in slot.group(1).splitlines())
        self.assertEqual(keys, {"device": "/dev/disk/sipsensor-card", "type": "boot-mbr-switch",
                                "region-start": "@BOOT_REGION_START@",
                                "region-size": "@BOOT_REGION_SIZE@"})
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "system.conf"
            run([IMAGES / "scripts" / "render-system-conf", "sipsensor-test", out])
            text = out.read_text()
        lay = layout()
        self.assertIn(f"region-start={lay['SIPSENSOR_BOOT_OFFSET']}\n", text)
        self.assertIn(f"region-size={lay['SIPSENSOR_BOOT_REGION_SIZE']}\n", text)
        # The device the slot names is the card the udev rule finds by the
        # layout's disk signature (blkid's ID_PART_TABLE_UUID of an MBR).
        rules = (IMAGES / "rootfs-overlay/etc/udev/rules.d/61-sipsensor-card.rules").read_text()
        signature = f"{int(lay['SIPSENSOR_DISK_SIGNATURE'], 16):08x}"
        rule = [l for l in rules.splitlines() if l.strip() and not l.startswith("#")]
        self.assertEqual(len(rule), 1, rules)
        self.assertIn(f'ENV{{ID_PART_TABLE_UUID}}=="{signature}"', rule[0])
        self.assertIn('ENV{DEVTYPE}=="disk"', rule[0])
        self.assertIn('SYMLINK+="disk/sipsensor-card"', rule[0])

    def test_boot_script_builds_for_every_board(self):
        require("mkimage", "u-boot-tools")
        lay = layout()
        common = (IMAGES / "uboot" / "boot-ab.cmd").read_text()
        # The state partition and the slot partitions of the layout.
        self.assertIn("part start ${devtype} ${devnum} 5 sipsensor_state_start", common)
        self.assertIn(f"0x{int(lay['SIPSENSOR_BOOTSTATE_ENV_SIZE'], 16):x}", common)
        self.assertIn("setenv sipsensor_part 2", common)
        self.assertIn("setenv sipsensor_part 3", common)
        with tempfile.TemporaryDirectory() as tmp:
            for board in SCRIPT_BOARDS:
                scr = Path(tmp) / f"{board}.scr"
                run([IMAGES / "scripts" / "mk-boot-script", board, scr])
                header = run(["mkimage", "-l", scr]).stdout
                self.assertIn("Script", header)
                text = scr.with_suffix(".cmd").read_text()
                self.assertIn(f"setenv sipsensor_disk {partuuid(1)[:8]}\n", text)
                self.assertIn(f"setenv sipsensor_attempts {lay['SIPSENSOR_BOOT_ATTEMPTS']}\n", text)
                for var in ("sipsensor_kernel", "sipsensor_boot", "sipsensor_fdt",
                            "sipsensor_console"):
                    self.assertRegex(text, rf"\nsetenv {var} \S", f"{board} sets {var}")

    def test_boot_script_rejects_unknown_board(self):
        with tempfile.TemporaryDirectory() as tmp:
            result = run([IMAGES / "scripts" / "mk-boot-script", "nosuchboard",
                          Path(tmp) / "x.scr"], check=False)
        self.assertEqual(result.returncode, 64)
        self.assertIn("unknown board", result.stderr)


if __name__ == "__main__":
    unittest.main()
