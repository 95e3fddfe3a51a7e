"""The agent's source as the image builds take it (scripts/mk-dist,
scripts/images-refresh).

The agent is one member of a Cargo workspace whose other members (the
collector, the load generator, ...) an image never needs. The source the
images build is therefore a smaller workspace: the agent and every path
crate it reaches through Cargo.lock (the dependencies of any kind of each:
a workspace member's dev-dependencies must resolve too), the root manifest
with only those members, and the root Cargo.lock pruned by cargo itself to
what they use. Nothing here names a crate but the agent, so a new path crate
(say runtime/) is picked up from Cargo.lock.
"""

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AGENT = "sipsensor-agent"
CRATES_IO = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)
# Besides the crates: the shared image definitions the Yocto recipes use
# (boot script, RAUC configuration, overlays) and the license.
EXTRA_PATHS = ("LICENSE", "images", "overlays")
STAMP = "SIPSENSOR_BUILD"


class DistError(Exception):
    """The tree cannot be packed as the image builds need it."""


def cargo():
    return os.environ.get("CARGO", "cargo")


def run(cmd, cwd=ROOT, **kwargs):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise DistError(f"{' '.join(map(str, cmd))} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def lock_packages(lock_text):
    return tomllib.loads(lock_text).get("package", [])


def path_crates(root=ROOT):
    """Directories (relative to root) of the path crates the agent needs."""
    packages = lock_packages((root / "Cargo.lock").read_text())
    by_name = {}
    for pkg in packages:
        by_name.setdefault(pkg["name"], []).append(pkg)

    def find(dep):
        # Cargo.lock writes "name", or "name version" when several versions
        # are locked, or "name version (source)".
        name, _, rest = dep.partition(" ")
        version = rest.split(" ")[0] if rest else None
        for pkg in by_name.get(name, []):
            if version is None or pkg["version"] == version:
                return pkg
        raise DistError(f"Cargo.lock: no package for dependency '{dep}'")

    seen, todo, local = set(), [AGENT], []
    while todo:
        pkg = find(todo.pop())
        key = (pkg["name"], pkg["version"])
        if key in seen:
            continue
        seen.add(key)
        if "source" not in pkg:
            local.append(pkg["name"])
        todo.extend(pkg.get("dependencies", []))
    if AGENT not in local:
        raise DistError(f"Cargo.lock has no workspace package {AGENT}")

    meta = json.loads(run([cargo(), "metadata", "--no-deps", "--format-version", "1",
                           "--manifest-path", str(root / "Cargo.toml")], cwd=root))
    dirs = {}
    for pkg in meta["packages"]:
        dirs[pkg["name"]] = Path(pkg["manifest_path"]).parent.relative_to(root.resolve())
    missing = [n for n in local if n not in dirs]
    if missing:
        raise DistError(f"path crates outside the workspace: {missing}")
    return sorted(str(dirs[n]) for n in local)


def workspace_manifest(root, members):
    """The root Cargo.toml with only the given members."""
    text = (root / "Cargo.toml").read_text()
    listed = ", ".join(f'"{m}"' for m in members)
    text, count = re.subn(r"^members\s*=\s*\[.*?\]", f"members = [{listed}]", text,
                          count=1, flags=re.M | re.S)
    if count != 1:
        raise DistError("Cargo.toml: no [workspace] members list")
    # The exclude list (with the comment above it) names directories the
    # archive does not have.
    text = re.sub(r"^(#.*\n)*exclude\s*=\s*\[.*?\]\n", "", text, count=1, flags=re.M | re.S)
    return ("# The workspace of the sipsensor agent's image build, made by\n"
            "# scripts/mk-dist from the repository's Cargo.toml.\n" + text)


def tracked_files(root, paths):
    """Files under paths as in the working tree: tracked ones and new ones
    git does not ignore (a crate's new module is part of its source before
    it is committed)."""
    out = run(["git", "-c", f"safe.directory={root}", "ls-files", "-z", "--cached", "--others",
               "--exclude-standard", "--", *paths], cwd=root)
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def stage(root, dest):
    """Write the agent's workspace into dest; returns its path crates."""
    crates = path_crates(root)
    for rel in tracked_files(root, [*crates, *EXTRA_PATHS]):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    (dest / "Cargo.toml").write_text(workspace_manifest(root, crates))
    shutil.copy2(root / "Cargo.lock", dest / "Cargo.lock")
    # cargo drops the entries the smaller workspace does not use (keeping
    # every locked version) and downloads what its cache lacks.
    run([cargo(), "fetch", "--manifest-path", str(dest / "Cargo.toml")], cwd=dest)
    full = {(p["name"], p["version"]): p.get("checksum") for p in
            lock_packages((root / "Cargo.lock").read_text())}
    for pkg in lock_packages((dest / "Cargo.lock").read_text()):
        if full.get((pkg["name"], pkg["version"]), "absent") != pkg.get("checksum"):
            raise DistError(f"cargo changed {pkg['name']} {pkg['version']} while pruning "
                            "Cargo.lock: run `cargo update -w` in the repository first")
    return crates


def registry_crates(lock_text):
    """(name, version, checksum) of every crates.io package in a lock."""
    crates = []
    for pkg in lock_packages(lock_text):
        source = pkg.get("source")
        if source is None:
            continue
        if source not in CRATES_IO:
            raise DistError(f"{pkg['name']} {pkg['version']} comes from {source}: only "
                            "crates.io packages can be vendored and fetched by the recipes")
        if "checksum" not in pkg:
            raise DistError(f"{pkg['name']} {pkg['version']} has no checksum in Cargo.lock")
        crates.append((pkg["name"], pkg["version"], pkg["checksum"]))
    return crates


def crate_file(name, version, checksum):
    """The .crate cargo downloaded, checked against Cargo.lock."""
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    for path in sorted((home / "registry" / "cache").glob(f"*/{name}-{version}.crate")):
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == checksum:
            return data
        raise DistError(f"{path}: sha256 differs from Cargo.lock")
    raise DistError(f"{name} {version} is not in cargo's cache under {home}")


def vendored(name, version, checksum):
    """Files of one crate as cargo's directory source wants them:
    {relative path: (bytes, mode)} with .cargo-checksum.json."""
    files = {}
    prefix = f"{name}-{version}/"
    with tarfile.open(fileobj=io.BytesIO(crate_file(name, version, checksum)), mode="r:gz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            data = tar.extractfile(member).read()
            files[rel] = (data, 0o755 if member.mode & 0o111 else 0o644)
    sums = {rel: hashlib.sha256(data).hexdigest() for rel, (data, _) in files.items()}
    manifest = json.dumps({"files": sums, "package": checksum}, sort_keys=True,
                          separators=(",", ":"))
    files[".cargo-checksum.json"] = (manifest.encode(), 0o644)
    return files


CARGO_CONFIG = b"""[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "VENDOR"
"""


def commit_info(root):
    """(name, stamp, epoch): "abcdef123456[-dirty]", "<name> 2026-12-06"."""
    env = dict(os.environ, TZ="UTC")
    line = run(["git", "-c", f"safe.directory={root}", "log", "-1",
                "--format=%H %ct %cd", "--date=format-local:%Y-%m-%d"], cwd=root, env=env)
    commit, epoch, date = line.split()
    name = commit[:12]
    crates = path_crates(root)
    status = run(["git", "-c", f"safe.directory={root}", "status", "--porcelain",
                  "--untracked-files=all", "--", "Cargo.toml", "Cargo.lock", *crates,
                  *EXTRA_PATHS], cwd=root)
    if status.strip():
        name += "-dirty"
    return name, f"{name} {date}", int(epoch)


def write_tarball(stage_dir, out_path, prefix, epoch, vendor):
    """A reproducible tar.gz: sorted entries, one mtime, root-owned."""
    # (path in the archive, where the bytes come from, mode); a crate's
    # directory has mode None and expands into its files when written.
    entries = []
    for path in sorted(p for p in stage_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(stage_dir).as_posix()
        mode = 0o755 if os.access(path, os.X_OK) else 0o644
        entries.append((rel, path.read_bytes, mode))
    for name, version, checksum in sorted(vendor, key=lambda c: f"{c[0]}-{c[1]}/"):
        entries.append((f"VENDOR/{name}-{version}", (name, version, checksum), None))
    entries.append((".cargo/config.toml", lambda: CARGO_CONFIG, 0o644))
    entries.sort(key=lambda e: e[0] + ("/" if e[2] is None else ""))

    def add(tar, rel, data, mode):
        info = tarfile.TarInfo(f"{prefix}/{rel}")
        info.size, info.mode, info.mtime = len(data), mode, epoch
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        tar.addfile(info, io.BytesIO(data))

    tmp = out_path.with_suffix(".tmp")
    with open(tmp, "wb") as raw:
        gz = open_gzip(raw)
        with gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for rel, source, mode in entries:
                if mode is None:
                    for sub, (data, m) in sorted(vendored(*source).items()):
                        add(tar, f"{rel}/{sub}", data, m)
                else:
                    add(tar, rel, source(), mode)
    tmp.rename(out_path)


def open_gzip(raw):
    # No file name and no time in the gzip header: the bytes depend on the
    # content only.
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9)
