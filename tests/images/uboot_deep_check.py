#!/usr/bin/env python3
"""U-Boot part of `make check-images-deep UBOOT=<u-boot source>`.

For each board that builds U-Boot (uboot_commands.BOARDS) it makes the
board's defconfig in a scratch directory, merges the board's fragments as
Buildroot does (scripts/kconfig/merge_config.sh, then olddefconfig), and
fails when a fragment line did not survive or a command the boot script
runs (read from images/uboot/*.cmd) is not built in. It also says which of
those commands the defconfig alone lacks: the reason the fragments exist.
Needs only the host's gcc, make, flex and bison.

usage: uboot_deep_check.py UBOOT_SOURCE WORK_DIR
"""

import subprocess
import sys
from pathlib import Path

import uboot_commands as uc


def make(source, out, *targets):
    return subprocess.run(["make", "-s", "-C", str(source), f"O={out}", *targets],
                          capture_output=True, text=True, timeout=600)


def config_values(path):
    return uc.fragment_values(path)


def check_board(source, work, board):
    """The failures of one board (strings), after printing what it found."""
    spec = uc.BOARDS[board]
    out = work / board
    out.mkdir(parents=True, exist_ok=True)
    failures = []
    result = make(source, out, f"{spec['defconfig']}_defconfig")
    if result.returncode != 0:
        return [f"{board}: make {spec['defconfig']}_defconfig failed:\n{result.stderr[-2000:]}"]
    plain = config_values(out / ".config")
    needed = uc.required_symbols(board)
    lacking = sorted(s for s in needed if plain.get(s) != "y")
    print(f"  {board} ({spec['defconfig']}_defconfig): the boot script needs {len(needed)} "
          f"symbols; the defconfig alone lacks {', '.join(lacking) or 'none'}")
    fragments = uc.buildroot_fragments(board)
    # merge_config.sh makes its temporary file in the current directory.
    merge = subprocess.run(
        [str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(out),
         str(out / ".config"), *map(str, fragments)],
        capture_output=True, text=True, timeout=120, cwd=out)
    if merge.returncode != 0:
        return [f"{board}: merge_config.sh failed:\n{merge.stderr[-2000:]}"]
    result = make(source, out, "olddefconfig")
    if result.returncode != 0:
        return [f"{board}: make olddefconfig failed:\n{result.stderr[-2000:]}"]
    final = config_values(out / ".config")
    for symbol, value in uc.fragment_values(*fragments).items():
        if final.get(symbol, "n") != value:
            failures.append(f"{board}: {symbol}={value} of the fragments is "
                            f"{final.get(symbol, 'absent')} in the final .config")
    for symbol, commands in sorted(needed.items()):
        if final.get(symbol) != "y":
            failures.append(f"{board}: {symbol} (for {', '.join(commands)}) is not set")
    if not failures:
        print(f"  {board}: final .config has every command of the boot script "
              f"({', '.join(sorted(uc.board_commands(board)))})")
    return failures


def main():
    if len(sys.argv) != 3:
        print(__doc__.split("usage: ")[1], file=sys.stderr)
        return 64
    source, work = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    version = make(source, work / "version", "ubootversion").stdout.strip()
    print(f"== U-Boot {version or '(version unknown)'} ({source})")
    failures = []
    for board in uc.BOARDS:
        failures += check_board(source, work, board)
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
