"""Update bundles for the OTA tests, made from the image's own slot image.

A variant of rootfs.ext4 is edited with debugfs (no mount, no loop
device), signed with images/scripts/mk-bundle, and put on a FAT "USB
stick" image that the guest mounts by its label. Bundles are made once per
test run (keyed by the slot image they come from) and shared by the tests
that need them.
"""

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

from common import IMAGE_DIR, IMAGES, WORK_DIR, require_file, require_tool, run

BOARD = "qemu-arm-virt"
STICK_LABEL = "SIPSUPDATE"


def image_env():
    env = {}
    path = require_file(IMAGE_DIR / BOARD / "image.env", "run `make image` first")
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return env


def _cache_dir():
    rootfs = require_file(IMAGE_DIR / BOARD / "rootfs.ext4", "run `make image` first")
    stat = rootfs.stat()
    key = hashlib.sha256(f"{stat.st_size}-{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    path = WORK_DIR / f"bundles-{key}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def edited_rootfs(out, files):
    """Copy rootfs.ext4 to OUT and replace FILES {path in image: text}."""
    debugfs = require_tool("debugfs", "e2fsprogs")
    shutil.copyfile(IMAGE_DIR / BOARD / "rootfs.ext4", out)
    staging = Path(str(out) + ".files")
    staging.mkdir(exist_ok=True)
    commands = []
    for i, (path, text) in enumerate(sorted(files.items())):
        local = staging / f"{i}"
        local.write_text(text)
        os.chmod(local, 0o644)
        commands += [f"rm {path}", f"write {local} {path}"]
    script = staging / "commands"
    script.write_text("\n".join(commands) + "\n")
    result = run([debugfs, "-w", "-f", script, out])
    if "rror" in result.stderr:
        raise AssertionError(f"debugfs: {result.stderr}")
    run(["e2fsck", "-fn", out])
    shutil.rmtree(staging)


def _keys(name):
    if name == "image":
        keys = IMAGE_DIR / "keys"
        require_file(keys / "signing.key.pem", "`make image` makes the development keys")
        return keys
    # Another CA that the image does not trust.
    keys = _cache_dir() / f"keys-{name}"
    env = dict(os.environ, SIPSENSOR_DEV_KEY_SUBJECT=f"/O=sipsensor test/CN={name}")
    run([IMAGES / "scripts" / "mk-dev-keys", keys], env=env)
    return keys


def bundle(name, files, keys="image", tiny=False, boot=None):
    """A signed bundle NAME of the image's rootfs with FILES replaced,
    signed with the image's development keys or another CA's ("other").
    tiny: an 8 MiB file system holding only FILES instead (for bundles
    that must be refused before anything is written). boot: a boot
    partition image the bundle carries for RAUC's boot slot."""
    require_tool("rauc", "rauc")
    require_tool("mksquashfs", "squashfs-tools")
    cache = _cache_dir()
    out = cache / f"{name}.raucb"
    # Tests running side by side share the cache: one makes, others wait.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out.exists():
            _make_bundle(name, files, keys, tiny, out, boot)
    return out


def cache_dir():
    """Where bundles and their inputs for this image are kept."""
    return _cache_dir()


def _make_bundle(name, files, keys, tiny, out, boot=None):
    env = image_env()
    rootfs = _cache_dir() / f"{name}.ext4"
    if tiny:
        tree = _cache_dir() / f"{name}.tree"
        shutil.rmtree(tree, ignore_errors=True)
        for path, text in files.items():
            target = tree / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        # Incompressible filler: RAUC refuses a payload that squashfs
        # packs into a single 4 KiB block.
        tree.mkdir(exist_ok=True)
        (tree / "filler").write_bytes(os.urandom(256 * 1024))
        run(["mke2fs", "-q", "-t", "ext4", "-d", tree, rootfs, "8M"])
        shutil.rmtree(tree)
    else:
        edited_rootfs(rootfs, files)
    signer = _keys(keys)
    version_text = version(name)
    partial = out.with_suffix(".partial")
    run([IMAGES / "scripts" / "mk-bundle", *(["--boot", boot] if boot else []),
         rootfs, env["SIPSENSOR_IMAGE_COMPATIBLE"], version_text,
         signer / "signing.cert.pem", signer / "signing.key.pem", partial,
         signer / "ca.cert.pem"], timeout=600)
    rootfs.unlink()
    partial.rename(out)
    return out


def stick(files, out):
    """A FAT image labelled STICK_LABEL holding FILES {name: bundle path}."""
    require_tool("mkfs.vfat", "dosfstools")
    require_tool("mcopy", "mtools")
    size_kib = sum(Path(p).stat().st_size for p in files.values()) // 1024 + 4096
    if os.path.exists(out):
        os.unlink(out)
    run(["mkfs.vfat", "-C", "-n", STICK_LABEL, out, str(size_kib)])
    for name, path in files.items():
        run(["mcopy", "-i", out, path, f"::{name}"],
            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    return Path(out)


def release_file(tag):
    """A new /etc/sipsensor-release naming the variant."""
    env = image_env()
    return (f"SIPSENSOR_IMAGE=debian\nSIPSENSOR_VERSION={env['SIPSENSOR_IMAGE_VERSION']}.{tag}\n"
            f"SIPSENSOR_TEST_VARIANT={tag}\n")


def version(name):
    """The version of bundle NAME (what `bundle` gives mk-bundle)."""
    return f"{image_env()['SIPSENSOR_IMAGE_VERSION']}.{name}"


def release_files(name, tag):
    """/etc/sipsensor-release naming the variant TAG, and /etc/os-release
    with bundle NAME's version: the VERSION_ID the agent reports to the
    fleet (docs/protocol.md 12.3), so a rollout sees it running."""
    return {
        "/etc/sipsensor-release": release_file(tag),
        "/etc/os-release": (f'NAME=sipsensor\nID=sipsensor\nID_LIKE=debian\n'
                            f'VERSION_ID="{version(name)}"\nVERSION="{version(name)}"\n'),
    }
