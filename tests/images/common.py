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


def fake_commands(directory, bodies):
    """Shell scripts named after commands, {name: body}, in DIRECTORY, to
    put first in a script's PATH."""
    for name, body in bodies.items():
        path = Path(directory) / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)


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


def make_release_keys(directory):
    """A release CA and a signing certificate, as the release procedure of
    docs/building-images.md makes them (there on an offline machine or in
    an HSM; here in a scratch directory): ca.cert.pem, signing.cert.pem,
    signing.key.pem."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    run(["openssl", "req", "-x509", "-new", "-noenc", *ec, "-keyout", d / "ca.key.pem",
         "-out", d / "ca.cert.pem", "-days", "3650", "-subj", "/O=Example Ltd/CN=sensor release CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-new", "-noenc", *ec, "-keyout", d / "signing.key.pem",
         "-out", d / "signing.csr.pem", "-subj", "/O=Example Ltd/CN=sensor release signing"])
    (d / "signing.ext").write_text("basicConstraints=critical,CA:FALSE\n"
                                   "keyUsage=critical,digitalSignature\n")
    run(["openssl", "x509", "-req", "-in", d / "signing.csr.pem", "-CA", d / "ca.cert.pem",
         "-CAkey", d / "ca.key.pem", "-CAcreateserial", "-days", "1825",
         "-extfile", d / "signing.ext", "-out", d / "signing.cert.pem"])
    return d
