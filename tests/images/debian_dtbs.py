"""Base device trees from Debian's kernel packages, fetched once and cached.

apt-get download + dpkg-deb (nothing is installed) after the architectures
were added (.ci/setup.d/images.sh: dpkg --add-architecture armhf arm64;
apt-get update). A mirror may briefly serve an armhf index that does not
match its Release file ("Mirror sync in progress?"); then the index is
refreshed and the download retried, a bounded number of times.
"""

import os
import subprocess
import tempfile
import time
from pathlib import Path

from common import CACHE, missing, require, run

# Debian meta package of each kernel flavour and the trees the tests use.
KERNELS = {
    "armhf": ("linux-image-armmp", ["am335x-boneblack.dtb", "bcm2711-rpi-4-b.dtb", "bcm2837-rpi-3-b.dtb"]),
    "arm64": ("linux-image-arm64", ["broadcom/bcm2711-rpi-4-b.dtb"]),
}
ATTEMPTS = 3


def cache_dir():
    return CACHE / "debian-dtbs"


def _foreign_architectures():
    native = run(["dpkg", "--print-architecture"]).stdout.split()
    foreign = run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    return set(native + foreign)


def _kernel_package(meta, arch):
    """The versioned image package the meta package depends on."""
    out = run(["apt-cache", "depends", "--important", f"{meta}:{arch}"], check=False)
    for line in out.stdout.splitlines():
        line = line.strip()
        if line.startswith("Depends:"):
            name = line.split(":", 1)[1].strip().split(":")[0]
            if name.startswith("linux-image-"):
                return name
    return None


def _refresh_index():
    if os.geteuid() != 0:
        missing("the apt index lacks the kernel packages and refreshing it needs root")
    # apt-get update exits non-zero when any index failed (the out-of-sync
    # case); the other indexes are still updated, so go on and retry.
    run(["apt-get", "update", "-q"], timeout=300, check=False)


def _download(arch, meta, names, dest):
    for attempt in range(1, ATTEMPTS + 1):
        package = _kernel_package(meta, arch)
        if package is not None:
            with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
                got = run(["apt-get", "download", "-q", f"{package}:{arch}"],
                          cwd=tmp, timeout=600, check=False)
                debs = list(Path(tmp).glob("*.deb"))
                if got.returncode == 0 and len(debs) == 1:
                    _extract(debs[0], names, dest)
                    (dest / "SOURCE").write_text(debs[0].name + "\n")
                    return
        if attempt == ATTEMPTS:
            break
        _refresh_index()
        time.sleep(10 * attempt)
    raise AssertionError(
        f"could not download {meta}:{arch} after {ATTEMPTS} attempts (apt index out of sync?)"
    )


def _extract(deb, names, dest):
    """dpkg -x, limited to the wanted device trees."""
    fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    patterns = [f"*/{name}" for name in names]
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tar = subprocess.run(["tar", "-x", "-C", tmp, "--wildcards", *patterns],
                             stdin=fsys.stdout, capture_output=True, timeout=300)
        fsys.stdout.close()
        fsys.wait(timeout=60)
        if tar.returncode != 0 or fsys.returncode != 0:
            raise AssertionError(f"extracting {deb.name}: {tar.stderr.decode()}")
        for name in names:
            found = list(Path(tmp).glob(f"usr/lib/linux-image-*/{name}"))
            if len(found) != 1:
                raise AssertionError(f"{deb.name} has no {name}")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            found[0].replace(target)


def base_dtbs():
    """{(arch, name): Path} of every base tree, downloading what is missing."""
    result = {}
    for arch, (meta, names) in KERNELS.items():
        dest = cache_dir() / arch
        if not all((dest / n).exists() for n in names):
            require("apt-get", "apt")
            if arch not in _foreign_architectures():
                missing(f"dpkg architecture {arch} is not enabled (run .ci/setup.d/images.sh)")
            dest.mkdir(parents=True, exist_ok=True)
            _download(arch, meta, names, dest)
        for name in names:
            result[(arch, name)] = dest / name
    return result
