"""Boot partitions for the boot-slot test (test_armhf.py test 9): the
image's own boot.vfat with a boot script that announces itself on the
console, the way a fix to the boot script would reach a board."""

import fcntl
import hashlib
import os
import shutil

from common import IMAGE_DIR, IMAGES, require_file, require_tool, run

BOARD = "qemu-arm-virt"


def digest(line):
    """12 hex digits naming a boot-fix bundle: the echoed LINE and the
    boot slot's hook it carries (bundles are cached by name)."""
    hook = (IMAGES / "rauc" / "boot-slot-hook").read_bytes()
    return hashlib.sha256(line.encode() + b"\0" + hook).hexdigest()[:12]


def boot_vfat(line, out):
    """OUT: the image's boot partition whose boot.scr first echoes LINE,
    then does what the image's does. Made once; tests share it."""
    if out.exists():
        return out
    mkimage = require_tool("mkimage", "u-boot-tools")
    require_tool("mcopy", "mtools")
    image = require_file(IMAGE_DIR / BOARD / "boot.vfat", "run `make image` first")
    script = require_file(IMAGE_DIR / BOARD / "boot.cmd", "run `make image` first")
    with open(f"{out}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():
            return out
        work = out.with_suffix(".work")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        (work / "boot.cmd").write_text(f'echo "{line}"\n' + script.read_text())
        run([mkimage, "-A", "arm", "-O", "linux", "-T", "script", "-C", "none",
             "-n", "sipsensor A/B boot (boot-slot test)", "-d", work / "boot.cmd",
             work / "boot.scr"])
        shutil.copyfile(image, work / "boot.vfat")
        run(["mcopy", "-o", "-i", work / "boot.vfat", work / "boot.scr", "::boot.scr"],
            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
        (work / "boot.vfat").rename(out)
        shutil.rmtree(work)
    return out
