"""Device-tree overlays: compile cleanly and apply onto Debian's base trees.

Every overlays/<family>/*.dtso must compile with `dtc -@` without a single
warning, and apply with fdtoverlay (alone and all together) onto the real
base device trees of Debian's armhf and arm64 kernels. The resulting trees
are then checked node by node: the sensor is where its driver looks, the
GPIO a driver or the agent uses is the one docs/sensors.md wires, and its
pad is multiplexed and pulled as documented.

Debian compiles am335x-boneblack.dtb and the arm64 bcm2711-rpi-4-b.dtb
without -@ (no __symbols__), which Buildroot and Yocto do not
(BR2_LINUX_KERNEL_DTB_OVERLAY_SUPPORT, KERNEL_DTC_FLAGS = "-@"). For those
the test adds the entries dtc -@ would have written for the labels the
overlays use, from the table below; each path is checked against the
node's compatible first, and where Debian's tree does carry __symbols__
(armhf Raspberry Pi trees) the table is checked against them.
"""

import shutil
import tempfile
import unittest
from pathlib import Path

from common import ROOT, require, run
from debian_dtbs import base_dtbs
from fdt import Fdt

OVERLAYS = ROOT / "overlays"

# label -> (path, compatible the node must have)
LABELS = {
    "beaglebone": {
        "am33xx_pinmux": ("/ocp/interconnect@44c00000/segment@200000/target-module@10000/scm@0/pinmux@800", "pinctrl-single"),
        "i2c2": ("/ocp/interconnect@48000000/segment@100000/target-module@9c000/i2c@0", "ti,omap4-i2c"),
        "gpio0": ("/ocp/interconnect@44c00000/segment@200000/target-module@7000/gpio@0", "ti,omap4-gpio"),
        "gpio1": ("/ocp/interconnect@48000000/segment@0/target-module@4c000/gpio@0", "ti,omap4-gpio"),
        "gpio2": ("/ocp/interconnect@48000000/segment@100000/target-module@ac000/gpio@0", "ti,omap4-gpio"),
    },
    "raspberrypi": {
        "gpio": ("/soc/gpio@7e200000", None),
        "i2c1": ("/soc/i2c@7e804000", "brcm,bcm2835-i2c"),
    },
}

# Base trees of each family, from Debian's kernel packages.
BASES = {
    "beaglebone": [("armhf", "am335x-boneblack.dtb")],
    "raspberrypi": [
        ("armhf", "bcm2711-rpi-4-b.dtb"),
        ("armhf", "bcm2837-rpi-3-b.dtb"),
        ("arm64", "broadcom/bcm2711-rpi-4-b.dtb"),
    ],
}

# The wiring of docs/sensors.md.
# BeagleBone GPIO lines: (bank label, line, header pin, pad conf value)
# where conf is the AM335x pad register without the mux bits:
# 0x20 input+pull-down, 0x30 input+pull-up, 0x08 output, no pull.
BBB_GPIO = {
    "motion": ("gpio1", 28, "P9_12", 0x20),
    "door": ("gpio2", 2, "P8_7", 0x30),
    "status-led": ("gpio0", 22, "P8_19", 0x08),
}
BBB_ONEWIRE = ("gpio1", 16, "P9_15", 0x30)
# Raspberry Pi GPIO numbers: function 0 input / 1 output; pull 0 none,
# 1 down, 2 up.
RPI_GPIO = {"motion": (17, 0, 1), "door": (27, 0, 2), "status-led": (22, 1, 0)}
RPI_ONEWIRE = 4


def overlay_sources(family):
    return sorted((OVERLAYS / family).glob("*.dtso"))


class Compile(unittest.TestCase):
    def setUp(self):
        require("dtc", "device-tree-compiler")
        self.tmp = Path(tempfile.mkdtemp())

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_every_overlay_compiles_without_warnings(self):
        sources = [s for f in LABELS for s in overlay_sources(f)]
        self.assertEqual(len(sources), 8, sources)
        for src in sources:
            out = self.tmp / (src.stem + ".dtbo")
            result = run(["dtc", "-@", "-I", "dts", "-O", "dtb", "-o", out, src])
            self.assertEqual(result.stderr, "", f"dtc warnings for {src}")
            Fdt.load(out)

    def test_makefile_builds_the_same_set(self):
        for family in LABELS:
            out = self.tmp / family
            run(["make", "-s", "-C", OVERLAYS, f"FAMILY={family}", f"O={out}"])
            built = sorted(p.stem for p in out.glob("*.dtbo"))
            self.assertEqual(built, [s.stem for s in overlay_sources(family)])

    def test_raspberry_pi_overrides_name_overlay_nodes(self):
        # "dtoverlay=sipsensor-bme280,addr=0x77" and friends: each
        # __overrides__ entry must point at a node of the overlay.
        for src in overlay_sources("raspberrypi"):
            out = self.tmp / (src.stem + ".dtbo")
            run(["dtc", "-@", "-I", "dts", "-O", "dtb", "-o", out, src])
            tree = Fdt.load(out)
            overrides = tree.nodes.get("/__overrides__")
            if src.stem == "sipsensor-gpio":
                self.assertIsNone(overrides)
                continue
            self.assertIsNotNone(overrides, src)
            for name, raw in overrides.props.items():
                phandle = int.from_bytes(raw[:4], "big")
                target = tree.by_phandle(phandle)
                prop = raw[4:].split(b"\0")[0].decode().split(":")[0]
                self.assertIn(prop, target.props, f"{src.stem} override {name}")


class Apply(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require("dtc", "device-tree-compiler")
        require("fdtoverlay", "device-tree-compiler")
        require("fdtput", "device-tree-compiler")
        cls.tmp = Path(tempfile.mkdtemp())
        cls.bases = base_dtbs()
        cls.dtbo = {}
        for family in LABELS:
            for src in overlay_sources(family):
                out = cls.tmp / family / (src.stem + ".dtbo")
                out.parent.mkdir(exist_ok=True)
                run(["dtc", "-@", "-I", "dts", "-O", "dtb", "-o", out, src])
                cls.dtbo[(family, src.stem)] = out

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def prepared_base(self, family, arch, name):
        """The base tree, with __symbols__ for our labels if Debian left them out."""
        src = self.bases[(arch, name)]
        base = Fdt.load(src)
        table = LABELS[family]
        for label, (path, compatible) in table.items():
            self.assertIn(path, base.nodes, f"{arch}/{name}: no {path} for label {label}")
            if compatible:
                self.assertIn(compatible, base.node(path).strings("compatible"), path)
        symbols = base.symbols()
        out = self.tmp / f"{family}-{arch}-{Path(name).name}"
        shutil.copy(src, out)
        if symbols:
            for label, (path, _) in table.items():
                self.assertEqual(symbols.get(label), path, f"{arch}/{name} labels {label}")
            return out
        # What dtc -@ does for a label: a __symbols__ entry and a phandle.
        used = max(int.from_bytes(n.props["phandle"], "big")
                   for n in base.nodes.values() if "phandle" in n.props)
        run(["fdtput", "-c", out, "/__symbols__"])
        for label, (path, _) in table.items():
            run(["fdtput", "-t", "s", out, "/__symbols__", label, path])
            if "phandle" not in base.node(path).props:
                used += 1
                run(["fdtput", "-t", "u", out, path, "phandle", str(used)])
        return out

    def apply(self, base, family, stems):
        out = self.tmp / f"out-{base.name}-{'+'.join(stems)}.dtb"
        run(["fdtoverlay", "-i", base, "-o", out, *[self.dtbo[(family, s)] for s in stems]])
        return Fdt.load(out)

    # -- checks shared by both families ---------------------------------

    def check_i2c_chip(self, tree, bus, node_name, compatible, address):
        self.assertEqual(tree.node(bus).string("status"), "okay")
        chip = tree.node(f"{bus}/{node_name}")
        self.assertEqual(chip.strings("compatible"), [compatible])
        self.assertEqual(chip.cells("reg"), [address])
        return chip

    def check_ads1115_channels(self, chip):
        self.assertEqual(sorted(chip.children), [f"channel@{n}" for n in range(4, 8)])
        for n in range(4, 8):
            channel = chip.children[f"channel@{n}"]
            self.assertEqual(channel.cells("reg"), [n])
            self.assertEqual(channel.cells("ti,gain"), [1])
            self.assertEqual(channel.cells("ti,datarate"), [4])

    # -- BeagleBone -----------------------------------------------------

    def bbb_pin(self, tree, bank_label, line):
        """Pad register offset of GPIO bank line, from the bank's gpio-ranges."""
        bank = tree.node(LABELS["beaglebone"][bank_label][0])
        ranges = bank.cells("gpio-ranges")
        for i in range(0, len(ranges), 4):
            _, first_gpio, first_pin, count = ranges[i:i + 4]
            if first_gpio <= line < first_gpio + count:
                return (first_pin + line - first_gpio) * 4
        self.fail(f"{bank_label} line {line} has no pin in gpio-ranges")

    def bbb_line_name(self, tree, bank_label, line):
        bank = tree.node(LABELS["beaglebone"][bank_label][0])
        return bank.strings("gpio-line-names")[line]

    def bbb_pins(self, tree, consumer):
        """(offset, conf, mux) triples of a consumer's default pin state."""
        group = tree.by_phandle(consumer.cells("pinctrl-0")[0])
        self.assertEqual(consumer.strings("pinctrl-names"), ["default"])
        cells = group.cells("pinctrl-single,pins")
        return [tuple(cells[i:i + 3]) for i in range(0, len(cells), 3)]

    def check_bbb(self, tree, stems):
        i2c2 = LABELS["beaglebone"]["i2c2"][0]
        if "sipsensor-bme280" in stems:
            self.check_i2c_chip(tree, i2c2, "pressure-sensor@76", "bosch,bme280", 0x76)
        if "sipsensor-ads1115" in stems:
            chip = self.check_i2c_chip(tree, i2c2, "adc@48", "ti,ads1115", 0x48)
            self.check_ads1115_channels(chip)
        if "sipsensor-ds18b20" in stems:
            w1 = tree.node("/onewire")
            self.assertEqual(w1.strings("compatible"), ["w1-gpio"])
            self.assertEqual(w1.string("status"), "okay")
            bank, line, header, conf = BBB_ONEWIRE
            phandle, gpio_line, _flags = w1.cells("gpios")
            self.assertEqual(tree.by_phandle(phandle).path, LABELS["beaglebone"][bank][0])
            self.assertEqual(gpio_line, line)
            self.assertTrue(self.bbb_line_name(tree, bank, line).startswith(header))
            self.assertIn((self.bbb_pin(tree, bank, line), conf, 7), self.bbb_pins(tree, w1))
        if "sipsensor-gpio" in stems:
            holder = tree.node(LABELS["beaglebone"]["gpio1"][0])
            pins = self.bbb_pins(tree, holder)
            self.assertEqual(len(pins), len(BBB_GPIO))
            for what, (bank, line, header, conf) in BBB_GPIO.items():
                self.assertTrue(self.bbb_line_name(tree, bank, line).startswith(header), what)
                self.assertIn((self.bbb_pin(tree, bank, line), conf, 7), pins, what)

    # -- Raspberry Pi ---------------------------------------------------

    def rpi_group(self, tree, consumer):
        group = tree.by_phandle(consumer.cells("pinctrl-0")[0])
        self.assertTrue(group.path.startswith(LABELS["raspberrypi"]["gpio"][0] + "/"))
        return group

    def check_rpi(self, tree, stems):
        gpio, i2c1 = (LABELS["raspberrypi"][k][0] for k in ("gpio", "i2c1"))
        if "sipsensor-bme280" in stems:
            self.check_i2c_chip(tree, i2c1, "pressure-sensor@76", "bosch,bme280", 0x76)
        if "sipsensor-ads1115" in stems:
            chip = self.check_i2c_chip(tree, i2c1, "adc@48", "ti,ads1115", 0x48)
            self.check_ads1115_channels(chip)
        if "sipsensor-ds18b20" in stems:
            w1 = tree.node("/onewire")
            self.assertEqual(w1.strings("compatible"), ["w1-gpio"])
            phandle, line, _flags = w1.cells("gpios")
            self.assertEqual(tree.by_phandle(phandle).path, gpio)
            self.assertEqual(line, RPI_ONEWIRE)
            group = self.rpi_group(tree, w1)
            self.assertEqual(group.cells("brcm,pins"), [RPI_ONEWIRE])
            self.assertEqual(group.cells("brcm,function"), [0])
        if "sipsensor-gpio" in stems:
            controller = tree.node(gpio)
            group = self.rpi_group(tree, controller)
            pins = group.cells("brcm,pins")
            functions = group.cells("brcm,function")
            pulls = group.cells("brcm,pull")
            names = (controller.strings("gpio-line-names")
                     if "gpio-line-names" in controller.props else None)
            for what, (number, function, pull) in RPI_GPIO.items():
                self.assertIn(number, pins, what)
                i = pins.index(number)
                self.assertEqual((functions[i], pulls[i]), (function, pull), what)
                if names:
                    self.assertEqual(names[number], f"GPIO{number}", what)

    # -- the tests ------------------------------------------------------

    def run_family(self, family, check):
        stems = [s.stem for s in overlay_sources(family)]
        for arch, name in BASES[family]:
            with self.subTest(base=f"{arch}/{name}"):
                base = self.prepared_base(family, arch, name)
                for stem in stems:
                    check(self.apply(base, family, [stem]), [stem])
                # All at once: the overlays must not undo each other.
                check(self.apply(base, family, stems), stems)

    def test_beaglebone_overlays_on_debian_am335x_boneblack(self):
        self.run_family("beaglebone", self.check_bbb)

    def test_raspberrypi_overlays_on_debian_bcm2711_and_bcm2837(self):
        self.run_family("raspberrypi", self.check_rpi)


if __name__ == "__main__":
    unittest.main()
