#!/usr/bin/env python3
"""Kernel part of `make check-images-deep KERNEL=<linux source> [KERNEL_RPI=...]`.

Kconfig drops an option silently when the kernel has no such symbol or its
dependencies are not met. For every Buildroot defconfig this makes the
board's kernel defconfig (BR2_LINUX_KERNEL_DEFCONFIG) in a scratch
directory, merges its fragments in Buildroot's order
(BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES, with scripts/kconfig/merge_config.sh)
and runs olddefconfig, then fails on every fragment option that did not
reach the final .config, saying whether the kernel lacks the symbol or
Kconfig overrode it. (The Yocto layer's .cfg files hold the same options,
which test_yocto.py checks.)

A board whose defconfig is not in KERNEL (bcm2711 is only in the
Raspberry Pi kernel) is checked against KERNEL_RPI when given, and
reported as not checked otherwise. Cross compilers are used when installed
(arm-linux-gnueabihf-, aarch64-linux-gnu-), else the host's gcc, which only
changes compiler-capability symbols.

usage: kernel_deep_check.py WORK_DIR KERNEL_SOURCE [KERNEL_RPI_SOURCE]
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from uboot_commands import BR, fragment_values

ARCHES = {"BR2_arm": ("arm", "arm-linux-gnueabihf-"),
          "BR2_aarch64": ("arm64", "aarch64-linux-gnu-")}


def defconfig_boards():
    """(defconfig name, arch, cross prefix, kernel defconfig, version, fragments)."""
    boards = []
    for defconfig in sorted((BR / "configs").glob("*_defconfig")):
        text = defconfig.read_text()
        values = dict(re.findall(r'^(BR2_\w+)=(.*)$', text, re.M))
        if values.get("BR2_LINUX_KERNEL") != "y":
            continue
        arch = next(ARCHES[k] for k in ARCHES if values.get(k) == "y")
        version = values.get("BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE",
                             values.get("BR2_LINUX_KERNEL_CUSTOM_TARBALL_LOCATION", "?"))
        fragments = [BR / f.replace("$(BR2_EXTERNAL_SIPSENSOR_PATH)/", "")
                     for f in values["BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES"].strip('"').split()]
        boards.append((defconfig.name, arch[0], arch[1],
                       values["BR2_LINUX_KERNEL_DEFCONFIG"].strip('"'), version.strip('"'),
                       fragments))
    return boards


def kernel_version(source):
    result = subprocess.run(["make", "-s", "-C", str(source), "kernelversion"],
                            capture_output=True, text=True, timeout=120)
    return result.stdout.strip() or "?"


def defined_symbols(source):
    """Every symbol some Kconfig file of SOURCE defines."""
    result = subprocess.run(
        ["grep", "-rhoE", "--include=Kconfig*", r"^\s*(menu)?config\s+\w+", str(source)],
        capture_output=True, text=True, timeout=300)
    return {"CONFIG_" + line.split()[-1] for line in result.stdout.splitlines()}


def make(source, out, arch, cross, *targets):
    args = ["make", "-s", "-C", str(source), f"O={out}", f"ARCH={arch}"]
    if shutil.which(f"{cross}gcc"):
        args.append(f"CROSS_COMPILE={cross}")
    return subprocess.run([*args, *targets], capture_output=True, text=True, timeout=900)


def reached(wanted, got):
    """A fragment's value is in the final .config (m built in as y counts)."""
    return got == wanted or (wanted == "m" and got == "y")


def check_board(work, source, board, symbols):
    name, arch, cross, defconfig, version, fragments = board
    out = work / name
    out.mkdir(parents=True, exist_ok=True)
    compiler = f"{cross}gcc" if shutil.which(f"{cross}gcc") else "the host's gcc"
    print(f"  {name}: {defconfig}_defconfig + {len(fragments)} fragments, ARCH={arch}, "
          f"{compiler} (the image pins {version})")
    result = make(source, out, arch, cross, f"{defconfig}_defconfig")
    if result.returncode != 0:
        return [f"{name}: make {defconfig}_defconfig failed:\n{result.stderr[-2000:]}"]
    # merge_config.sh makes its temporary file in the current directory.
    merge = subprocess.run(
        [str(source / "scripts/kconfig/merge_config.sh"), "-m", "-O", str(out),
         str(out / ".config"), *map(str, fragments)],
        capture_output=True, text=True, timeout=300, cwd=out,
        env={"ARCH": arch, "PATH": "/usr/bin:/bin"})
    if merge.returncode != 0:
        return [f"{name}: merge_config.sh failed:\n{merge.stderr[-2000:]}"]
    result = make(source, out, arch, cross, "olddefconfig")
    if result.returncode != 0:
        return [f"{name}: make olddefconfig failed:\n{result.stderr[-2000:]}"]
    final = fragment_values(out / ".config")
    failures = []
    wanted = {}
    for fragment in fragments:
        for symbol, value in fragment_values(fragment).items():
            wanted[symbol] = (value, fragment.relative_to(BR))
    for symbol, (value, fragment) in wanted.items():
        got = final.get(symbol, "absent")
        if reached(value, got):
            continue
        why = ("this kernel has no such option" if symbol not in symbols
               else "its dependencies are not met or Kconfig overrode it")
        failures.append(f"{name}: {symbol}={value} ({fragment}) is {got} in the final "
                        f".config: {why}")
    if not failures:
        print(f"  {name}: all {len(wanted)} fragment options reached the final .config")
    return failures


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__.split("usage: ")[1], file=sys.stderr)
        return 64
    work = Path(sys.argv[1])
    sources = [Path(p).resolve() for p in sys.argv[2:]]
    failures = []
    symbols = {}
    for source in sources:
        print(f"== Linux {kernel_version(source)} ({source})")
        symbols[source] = defined_symbols(source)
    for board in defconfig_boards():
        name, arch, _, defconfig = board[:4]
        source = next((s for s in reversed(sources)
                       if (s / "arch" / arch / "configs" / f"{defconfig}_defconfig").exists()),
                      None)
        if source is None:
            print(f"  {name}: NOT CHECKED: no {defconfig}_defconfig in "
                  f"{', '.join(map(str, sources))} (the Raspberry Pi kernel has it: KERNEL_RPI=)")
            continue
        failures += check_board(work / source.name, source, board, symbols[source])
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
