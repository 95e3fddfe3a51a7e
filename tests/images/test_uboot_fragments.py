"""Every command of the A/B boot script is built into each board's U-Boot.

The commands are read from images/uboot/boot-ab.cmd and the board's
board-*.cmd (uboot_commands.py); each must be set by the board's U-Boot
fragments, in the Buildroot defconfig and in the Yocto bbappend alike. No
U-Boot source here: `make check-images-deep UBOOT=...` builds the final
.config of each board and checks the same list there.
"""

import re
import unittest

import uboot_commands as uc
from common import ROOT

BR = ROOT / "buildroot-external"


def defconfig_value(defconfig, name):
    m = re.search(rf'^{name}="([^"]*)"$', defconfig.read_text(), re.M)
    return m.group(1) if m else None


class ScriptParser(unittest.TestCase):
    def test_commands_inside_run_variables_count(self):
        script = """
setenv step 'if test 1 -gt 0; then setexpr n ${n} - 1; fi'
# setexpr in a comment does not count; part only here: part start
for x in "a b"; do
	run step
done
${devtype} dev 0 && env import -c 0 0x20
"""
        commands = uc.script_commands(script, {"devtype": "mmc"})
        self.assertEqual(commands, {"setenv", "if", "test", "setexpr", "for", "run", "mmc",
                                    "env", "env import"})

    def test_a_variable_that_is_never_run_is_only_text(self):
        self.assertEqual(uc.script_commands("setenv x 'setexpr a 1'"), {"setenv"})

    def test_a_command_word_from_an_unknown_variable_is_an_error(self):
        with self.assertRaises(uc.UnknownCommand):
            uc.script_commands("${how} read 0 0 0")

    def test_the_boot_script_counts_down_with_setexpr(self):
        for board in uc.BOARDS:
            with self.subTest(board=board):
                needed = uc.required_symbols(board)
                self.assertIn("CONFIG_CMD_SETEXPR", needed)
                self.assertIn("CONFIG_CMD_IMPORTENV", needed)
                self.assertIn("CONFIG_CMD_PART", needed)


class Fragments(unittest.TestCase):
    def test_buildroot_defconfigs_name_the_board_fragments(self):
        for board, spec in uc.BOARDS.items():
            with self.subTest(board=board):
                defconfig = BR / "configs" / spec["buildroot"]
                self.assertEqual(defconfig_value(defconfig, "BR2_TARGET_UBOOT_BOARD_DEFCONFIG"),
                                 spec["defconfig"])
                fragments = defconfig_value(defconfig, "BR2_TARGET_UBOOT_CONFIG_FRAGMENT_FILES")
                self.assertEqual(
                    (fragments or "").split(),
                    [f"$(BR2_EXTERNAL_SIPSENSOR_PATH)/{f}" for f in spec["fragments"]])

    def test_every_defconfig_building_uboot_is_a_known_board(self):
        boards = {spec["buildroot"] for spec in uc.BOARDS.values()}
        for defconfig in (BR / "configs").glob("*_defconfig"):
            if "BR2_TARGET_UBOOT=y" in defconfig.read_text().splitlines():
                self.assertIn(defconfig.name, boards)

    def check_covers(self, board, paths):
        values = uc.fragment_values(*paths)
        missing = {symbol: commands for symbol, commands in uc.required_symbols(board).items()
                   if values.get(symbol) != "y"}
        self.assertEqual(missing, {}, f"{board}: the fragments {[p.name for p in paths]} do "
                         "not set what these boot-script commands need")

    def test_buildroot_fragments_cover_the_boot_script(self):
        for board in uc.BOARDS:
            with self.subTest(board=board):
                self.check_covers(board, uc.buildroot_fragments(board))

    def test_yocto_fragments_cover_the_boot_script_as_buildroot_does(self):
        bbappend = (uc.LAYER / "recipes-bsp/u-boot/u-boot_%.bbappend").read_text()
        self.assertIn("file://sipsensor-boot-script.cfg", bbappend)
        self.assertIn("file://sipsensor-board.cfg", bbappend)
        for board, spec in uc.BOARDS.items():
            if spec["machine"] is None:
                continue
            with self.subTest(board=board):
                self.check_covers(board, uc.yocto_fragments(board))
                self.assertEqual(uc.fragment_values(*uc.yocto_fragments(board)),
                                 uc.fragment_values(*uc.buildroot_fragments(board)))


if __name__ == "__main__":
    unittest.main()
