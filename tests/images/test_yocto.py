"""meta-sipsensor: lint, kas files, crates include, kickstart, fragments.

oelint-adv runs with the layer's lint context (the layers it builds on and
the Raspberry Pi machine, which oelint's data does not know: see
meta-sipsensor/README.md). kas files must validate against the schema that
the kas package ships. The deep check (tests/images/deep-check) parses the
layer with bitbake against real wrynose layers.
"""

import json
import re
import shlex
import unittest
from pathlib import Path

from common import ROOT, layout, missing, partuuid, require, run, size_bytes

LAYER = ROOT / "meta-sipsensor"
OELINT_ARGS = ["--quiet", "--release", "wrynose", "--extra-layer", "yoctobsp", "rauc",
               "--constantmods", "+.oelint-constants.json",
               "--suppress", "oelint.var.bbclassextend", "--suppress", "oelint.vars.homepageping"]


def recipes():
    return sorted(str(p.relative_to(LAYER)) for p in LAYER.rglob("*")
                  if p.suffix in (".bb", ".bbappend"))


def fragment_options(*paths):
    options = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.startswith("CONFIG_"):
                name, _, value = line.partition("=")
                options[name] = value
    return options


class Lint(unittest.TestCase):
    def test_oelint_adv_wrynose_is_clean(self):
        oelint = require("oelint-adv", "oelint-adv from PyPI (make images-venv)")
        result = run([oelint, *OELINT_ARGS, "--", *recipes()], cwd=LAYER, check=False,
                     timeout=300)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))

    def test_readme_shows_the_lint_command(self):
        readme = (LAYER / "README.md").read_text()
        self.assertIn(" ".join(shlex.quote(a) for a in OELINT_ARGS), readme)


class Kas(unittest.TestCase):
    def test_files_validate_against_kas_schema(self):
        try:
            import jsonschema
            import kas
            import yaml
        except ImportError:
            missing("kas (with jsonschema, PyYAML) is not installed (make images-venv)")
        schema = json.loads((Path(kas.__file__).parent / "schema-kas.json").read_text())
        files = sorted((LAYER / "kas").glob("*.yml"))
        self.assertEqual([f.name for f in files],
                         ["beaglebone.yml", "common.yml", "raspberrypi4-64.yml"])
        for path in files:
            config = yaml.safe_load(path.read_text())
            jsonschema.validate(config, schema)
            for include in config["header"].get("includes", []):
                self.assertTrue((ROOT / include).exists(), f"{path.name}: {include}")
            if path.name != "common.yml":
                self.assertEqual(config["machine"], path.stem.replace("beaglebone", "beaglebone-yocto"))

    def test_pinned_layers_are_wrynose(self):
        text = "".join(p.read_text() for p in (LAYER / "kas").glob("*.yml"))
        branches = re.findall(r"branch: (\S+)", text)
        self.assertTrue(branches)
        self.assertEqual(set(branches), {"wrynose", '"2.18"'})
        self.assertEqual(len(re.findall(r"commit: [0-9a-f]{40}\n", text)), len(branches))


class Layer(unittest.TestCase):
    def test_layer_conf(self):
        conf = (LAYER / "conf" / "layer.conf").read_text()
        self.assertIn('LAYERSERIES_COMPAT_sipsensor = "wrynose"', conf)
        self.assertIn('LAYERDEPENDS_sipsensor = "core rauc"', conf)
        self.assertIn("scarthgap", (LAYER / "README.md").read_text())

    def test_crates_include_lists_only_locked_crates(self):
        # images-refresh --check (test_agent_source) proves the include is
        # the agent's pruned lock; here: each entry is in the repository's
        # Cargo.lock with its checksum, and the collector's crates are not.
        import tomllib
        lock = tomllib.loads((ROOT / "Cargo.lock").read_text())
        locked = {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}
        inc = (LAYER / "recipes-sipsensor/sipsensor-agent/sipsensor-agent-crates.inc").read_text()
        entries = re.findall(r"crate://crates.io/([^/]+)/(\S+) \\", inc)
        self.assertTrue(entries)
        for name, version in entries:
            self.assertIn(f'SRC_URI[{name}-{version}.sha256sum] = "{locked[(name, version)]}"', inc)
        self.assertLess(len(entries), sum(1 for p in lock["package"] if "source" in p))
        self.assertNotIn(("axum", ), {(n, ) for n, _ in entries})

    def test_bundle_recipe(self):
        bundle = (LAYER / "recipes-core/bundles/sipsensor-bundle_0.1.0.bb").read_text()
        self.assertIn('RAUC_SLOT_rootfs[fstype] = "ext4"', bundle)
        self.assertIn('RAUC_BUNDLE_FORMAT = "verity"', bundle)
        self.assertIn('RAUC_SLOT_rootfs = "sipsensor-image"', bundle)
        # The boot slot: the image's boot partition, with the hook that
        # keeps the technician's files, which is images/rauc's own.
        for line in ('RAUC_BUNDLE_SLOTS += "boot"', 'RAUC_SLOT_boot = "sipsensor-image"',
                     'RAUC_SLOT_boot[fstype] = "boot.vfat"', 'RAUC_SLOT_boot[rename] = "boot.vfat"',
                     'RAUC_SLOT_boot[hooks] = "post-install"',
                     'RAUC_BUNDLE_HOOKS[file] = "boot-slot-hook"'):
            self.assertIn(line + "\n", bundle)
        self.assertIn('SRC_URI = "file://boot-slot-hook"', bundle)
        hook = LAYER / "recipes-core/bundles/files/boot-slot-hook"
        self.assertEqual(hook.resolve(), (ROOT / "images/rauc/boot-slot-hook").resolve())
        image = (LAYER / "recipes-core/images/sipsensor-image.bb").read_text()
        self.assertIn('IMAGE_POSTPROCESS_COMMAND += "sipsensor_boot_vfat"', image)
        self.assertIn("d.getVar('IMAGE_LINK_NAME') + '.boot.vfat'", image)
        self.assertRegex(image, r'IMAGE_FSTYPES = "[^"]*\bwic\b ')

    def test_agent_unit_allows_real_time(self):
        unit = (ROOT / "images/systemd/sipsensor-agent.service").read_text()
        self.assertIn("LimitRTPRIO=99", unit)
        self.assertIn("LimitMEMLOCK=infinity", unit)
        self.assertRegex(unit, r"CapabilityBoundingSet=.*CAP_SYS_NICE")
        self.assertRegex(unit, r"CapabilityBoundingSet=.*CAP_IPC_LOCK")
        recipe = (LAYER / "recipes-sipsensor/sipsensor-agent/sipsensor-agent_git.bb").read_text()
        self.assertIn('SYSTEMD_SERVICE:${PN} = "sipsensor-agent.service"', recipe)
        self.assertIn("images/systemd/sipsensor-agent.service", recipe)

    def test_kernel_fragments_match_buildroot(self):
        br = ROOT / "buildroot-external/board"
        buildroot = fragment_options(br / "common/linux.fragment",
                                     br / "beagleboard/beaglebone/linux.fragment",
                                     br / "raspberrypi/raspberrypi4-64/linux.fragment")
        for files in (LAYER / "recipes-kernel/linux/files",
                      LAYER / "dynamic-layers/raspberrypi/recipes-kernel/linux/files"):
            yocto = fragment_options(files / "sipsensor.cfg", files / "sipsensor-watchdog.cfg")
            self.assertEqual(yocto, buildroot, files)


class Kickstart(unittest.TestCase):
    """The wic kickstart describes the layout of images/layout.env."""

    def parts(self):
        wks = (LAYER / "recipes-core/images/sipsensor-sdcard.wks.in").read_text()
        def args(line):
            # "--fstype=vfat" and "--fstype vfat" mean the same to wic.
            return [w for a in shlex.split(line)[1:] for w in a.split("=", 1)]

        parts = [args(l) for l in wks.splitlines() if l.startswith("part ")]
        bootloader = [args(l) for l in wks.splitlines() if l.startswith("bootloader ")]
        return parts, bootloader[0]

    @staticmethod
    def opt(args, name):
        return args[args.index(name) + 1] if name in args else None

    def test_same_partitions_as_the_layout(self):
        lay = layout()
        parts, bootloader = self.parts()
        self.assertEqual(self.opt(bootloader, "--ptable"), "msdos")
        self.assertEqual(int(self.opt(bootloader, "--diskid"), 16),
                         int(lay["SIPSENSOR_DISK_SIGNATURE"], 16))
        self.assertEqual(len(parts), 5)  # wic adds the extended partition as p4
        boot, slot_a, slot_b, state, data = parts
        sizes = [size_bytes(self.opt(p, "--fixed-size")) for p in parts]
        self.assertEqual(sizes, [size_bytes(lay[k]) for k in (
            "SIPSENSOR_BOOT_SIZE", "SIPSENSOR_ROOTFS_SIZE", "SIPSENSOR_ROOTFS_SIZE",
            "SIPSENSOR_BOOTSTATE_SIZE", "SIPSENSOR_DATA_SIZE")])
        self.assertEqual(self.opt(boot, "--offset"), lay["SIPSENSOR_BOOT_OFFSET"])
        # Slot A after the boot region, whose second half stays free.
        self.assertEqual(size_bytes(self.opt(slot_a, "--offset")),
                         size_bytes(lay["SIPSENSOR_BOOT_OFFSET"])
                         + size_bytes(lay["SIPSENSOR_BOOT_REGION_SIZE"]))
        self.assertEqual(boot[0], "/boot/firmware")
        self.assertIn("--active", boot)
        self.assertEqual((self.opt(boot, "--fstype"), self.opt(boot, "--label")),
                         ("vfat", lay["SIPSENSOR_BOOT_LABEL"]))
        self.assertEqual((slot_a[0], self.opt(slot_a, "--source")), ("/", "rootfs"))
        self.assertEqual((self.opt(slot_b, "--source"), self.opt(slot_b, "--system-id")),
                         ("empty", "0x83"))
        self.assertEqual((self.opt(state, "--source"), self.opt(state, "--system-id")),
                         ("empty", "0xda"))
        self.assertEqual((data[0], self.opt(data, "--fstype"), self.opt(data, "--label")),
                         ("/data", "ext4", lay["SIPSENSOR_DATA_LABEL"]))
        # fstab entries come from the image's own mount units.
        for p in (boot, slot_a, data):
            self.assertIn("--no-fstab-update", p)
        self.assertEqual(partuuid(6)[:8], self.opt(bootloader, "--diskid")[2:].lower())


if __name__ == "__main__":
    unittest.main()
