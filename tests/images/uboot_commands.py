"""What the A/B boot script needs from U-Boot, read from the script itself.

`script_commands` parses U-Boot hush script (images/uboot/boot-ab.cmd and a
board-*.cmd) into the commands it runs, including those inside the
variables it `run`s; `required_symbols` maps them to the Kconfig symbols
that compile them in. The cheap test (test_uboot_fragments.py) checks that
each board's fragments set every one of them; the deep check
(uboot_deep_check.py, `make check-images-deep UBOOT=...`) builds each
board's final .config from a U-Boot source and checks them there.
"""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UBOOT_DIR = ROOT / "images" / "uboot"
BR = ROOT / "buildroot-external"
LAYER = ROOT / "meta-sipsensor"
YOCTO_UBOOT = LAYER / "recipes-bsp" / "u-boot" / "files"

# The boards whose U-Boot is built from source (Buildroot and Yocto). The
# Debian-assembled image boots Debian's u-boot-omap / u-boot-qemu, which
# are not configured here (the boot tests run the script on them).
#   devtype    what U-Boot's distro boot sets ${devtype} to on the board
#   defconfig  U-Boot's defconfig (BR2_TARGET_UBOOT_BOARD_DEFCONFIG)
#   fragments  BR2_TARGET_UBOOT_CONFIG_FRAGMENT_FILES, in order
#   machine    the Yocto machine, if any (its u-boot .cfg files)
BOARDS = {
    "beaglebone": dict(
        devtype="mmc", defconfig="am335x_evm",
        buildroot="sipsensor_beaglebone_defconfig",
        fragments=["board/common/uboot.fragment",
                   "board/beagleboard/beaglebone/uboot.fragment"],
        machine="beaglebone-yocto"),
    "qemu-arm-virt": dict(
        devtype="virtio", defconfig="qemu_arm",
        buildroot="sipsensor_qemu_arm_virt_defconfig",
        fragments=["board/common/uboot.fragment", "board/qemu/arm-virt/uboot.fragment"],
        machine=None),
    "raspberrypi4-64": dict(
        devtype="mmc", defconfig="rpi_arm64",
        buildroot="sipsensor_raspberrypi4_64_defconfig",
        fragments=["board/common/uboot.fragment",
                   "board/raspberrypi/raspberrypi4-64/uboot.fragment"],
        machine="raspberrypi4-64"),
}

# Command (or "command subcommand") -> the Kconfig symbols that build it,
# as in U-Boot v2026.01's cmd/Makefile, cmd/nvedit.c and cmd/fdt.c. A
# command missing here fails the tests: add it when the script grows.
COMMAND_SYMBOLS = {
    # cmd/test.c is built with the hush parser, which also runs if/for.
    "test": ["HUSH_PARSER"],
    "if": ["HUSH_PARSER"],
    "for": ["HUSH_PARSER"],
    "setenv": ["ENV_SUPPORT"],
    "env": ["ENV_SUPPORT"],
    "env import": ["ENV_SUPPORT", "CMD_IMPORTENV"],
    "env export": ["ENV_SUPPORT", "CMD_EXPORTENV"],
    "run": ["CMD_RUN"],
    "echo": ["CMD_ECHO"],
    "setexpr": ["CMD_SETEXPR"],
    "part": ["CMD_PART"],
    # The boot partition is FAT, the slots ext4.
    "load": ["CMD_FS_GENERIC", "FS_FAT", "FS_EXT4"],
    "mmc": ["CMD_MMC"],
    "virtio": ["CMD_VIRTIO"],
    "fdt": ["CMD_FDT"],
    "fdt apply": ["CMD_FDT", "OF_LIBFDT_OVERLAY"],
    "bootz": ["CMD_BOOTZ"],
    "booti": ["CMD_BOOTI"],
    # cmd/boot.c is always built (obj-y).
    "reset": [],
}
# Commands whose subcommands may need more than the command itself; a
# subcommand not in the table needs what the command needs.
WITH_SUBCOMMAND = {"env", "fdt"}
KEYWORDS_THEN_COMMAND = {"then", "else", "do", "elif", "while", "until"}
KEYWORDS_ALONE = {"fi", "done"}


class UnknownCommand(Exception):
    pass


def _statements(text):
    """Token lists of the statements of a script (one per ; && || or line)."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lexer = shlex.shlex(stripped, posix=True, punctuation_chars=";&|")
        lexer.commenters = ""
        lexer.whitespace_split = True
        words = []
        for token in lexer:
            if token in (";", "&&", "||"):
                if words:
                    yield words
                words = []
            else:
                words.append(token)
        if words:
            yield words


def script_commands(text, variables=None):
    """The commands a script runs, as keys of COMMAND_SYMBOLS.

    `variables` gives values for a command word that is a variable (the
    board's ${devtype}). The values of variables the script `run`s are
    parsed as scripts too."""
    variables = dict(variables or {})
    commands = set()
    assigned = {}
    to_run = set()
    for words in _statements(text):
        while words and words[0] in KEYWORDS_THEN_COMMAND:
            words = words[1:]
        if not words or words[0] in KEYWORDS_ALONE:
            continue
        word = words[0]
        if word == "if":
            commands.add("if")
            words = words[1:]
            if not words:
                continue
            word = words[0]
        if word == "for":
            commands.add("for")
            continue
        m = re.fullmatch(r"\$\{(\w+)\}", word)
        if m:
            if m.group(1) not in variables:
                raise UnknownCommand(f"command word {word} without a known value")
            word = variables[m.group(1)]
        if word in WITH_SUBCOMMAND and len(words) > 1:
            commands.add(word)
            if f"{word} {words[1]}" in COMMAND_SYMBOLS:
                commands.add(f"{word} {words[1]}")
        else:
            commands.add(word)
        if word == "setenv" and len(words) > 2:
            assigned[words[1]] = " ".join(words[2:])
        if word == "run":
            to_run.update(words[1:])
    for name in sorted(to_run):
        if name in assigned:
            commands |= script_commands(assigned[name], variables)
    return commands


def board_script(board):
    """The text U-Boot runs on BOARD: its board file, then boot-ab.cmd
    (the order images/scripts/mk-boot-script puts them in)."""
    return ((UBOOT_DIR / f"board-{board}.cmd").read_text()
            + (UBOOT_DIR / "boot-ab.cmd").read_text())


def board_commands(board):
    return script_commands(board_script(board), {"devtype": BOARDS[board]["devtype"]})


def required_symbols(board):
    """{CONFIG_SYMBOL: [commands needing it]} for BOARD's boot script."""
    needed = {}
    for command in sorted(board_commands(board)):
        if command not in COMMAND_SYMBOLS:
            raise UnknownCommand(
                f"the boot script of {board} runs `{command}`, which "
                "tests/images/uboot_commands.py does not map to a Kconfig symbol")
        for symbol in COMMAND_SYMBOLS[command]:
            needed.setdefault(f"CONFIG_{symbol}", []).append(command)
    return needed


def fragment_values(*paths):
    """{CONFIG_X: value} of Kconfig fragments ("# CONFIG_X is not set" -> "n")."""
    values = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            m = re.fullmatch(r"(CONFIG_\w+)=(.*)", line.strip())
            if m:
                values[m.group(1)] = m.group(2)
                continue
            m = re.fullmatch(r"# (CONFIG_\w+) is not set", line.strip())
            if m:
                values[m.group(1)] = "n"
    return values


def buildroot_fragments(board):
    return [BR / f for f in BOARDS[board]["fragments"]]


def yocto_fragments(board):
    machine = BOARDS[board]["machine"]
    return [YOCTO_UBOOT / "sipsensor-boot-script.cfg",
            YOCTO_UBOOT / machine / "sipsensor-board.cfg"]
