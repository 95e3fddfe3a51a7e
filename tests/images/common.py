"""Shared helpers of the image tests (tests/images)."""

import os
import shutil
import subprocess
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
CACHE = ROOT / "target" / "images-cache"
CI = os.environ.get("SIPSENSOR_CI") == "1"


def missing(reason):
    """Skip for a missing prerequisite, or fail when CI must have it."""
    if CI:
        raise AssertionError(f"SIPSENSOR_CI=1 and {reason}")
    raise unittest.SkipTest(reason)


def require(tool, package):
    path = shutil.which(tool)
    if path is None:
        missing(f"{tool} is not installed (Debian package {package}; see .ci/apt/images.txt)")
    return path


def run(cmd, timeout=120, check=True, **kwargs):
    """Run a command with a time limit and captured text output."""
    result = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(str(c) for c in cmd)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def layout():
    """images/layout.env as a dict (simple NAME=value lines)."""
    values = {}
    for line in (IMAGES / "layout.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def size_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def partuuid(number):
    signature = int(layout()["SIPSENSOR_DISK_SIGNATURE"], 16)
    return f"{signature:08x}-{number:02d}"
