"""The agent's source the image builds take: scripts/mk-dist (make dist)
and what scripts/images-refresh records about it.

Buildroot's package and the Yocto recipes build the archive of this very
tree (never a commit on GitHub); the crates include, the license checksums
and the package's .hash must be what `make images-refresh` writes now.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import unittest
from pathlib import Path

from common import ROOT, missing, run

sys.path.insert(0, str(ROOT / "scripts"))
import sipsensor_dist as dist  # noqa: E402


def require_cargo():
    if shutil.which(os.environ.get("CARGO", "cargo")) is None:
        missing("cargo is not installed")


class Refresh(unittest.TestCase):
    def test_recorded_files_match_the_tree(self):
        require_cargo()
        result = run([ROOT / "scripts" / "images-refresh", "--check"], check=False, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr)


class PathCrates(unittest.TestCase):
    """The agent's path crates come from Cargo.lock, not from a list: a new
    crate the agent depends on (say runtime/) is packed, and a member it does
    not need is not."""

    def test_follows_the_lock_through_every_kind_of_dependency(self):
        require_cargo()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            crates = {"agent": ["runtime"], "runtime": [], "collector": ["runtime"],
                      "testkit": []}
            for name, deps in crates.items():
                (root / name / "src").mkdir(parents=True)
                (root / name / "src" / "lib.rs").write_text("")
                lines = [f'[package]\nname = "{self.package(name)}"\nversion = "0.1.0"\n'
                         'edition = "2021"\n\n[dependencies]']
                lines += [f'{self.package(d)} = {{ path = "../{d}" }}' for d in deps]
                if name == "runtime":  # a dev-dependency must resolve too
                    lines.append('\n[dev-dependencies]\nsipsensor-testkit = { path = "../testkit" }')
                (root / name / "Cargo.toml").write_text("\n".join(lines) + "\n")
            members = ", ".join(f'"{n}"' for n in crates)
            (root / "Cargo.toml").write_text(
                f'[workspace]\nmembers = [{members}]\nexclude = ["fuzz"]\nresolver = "2"\n')
            run(["cargo", "generate-lockfile", "--offline"], cwd=root)
            self.assertEqual(dist.path_crates(root), ["agent", "runtime", "testkit"])
            manifest = tomllib.loads(dist.workspace_manifest(root, ["agent", "runtime"]))
            self.assertEqual(manifest["workspace"]["members"], ["agent", "runtime"])
            self.assertNotIn("exclude", manifest["workspace"])

    @staticmethod
    def package(name):
        return "sipsensor-" + name


class Tarball(unittest.TestCase):
    def test_same_content_gives_the_same_bytes(self):
        # File times, the order files were written in and the moment of
        # packing must not show.
        with tempfile.TemporaryDirectory() as tmp:
            archives = []
            for attempt, order in enumerate((["a", "b/c"], ["b/c", "a"])):
                stage = Path(tmp) / f"stage{attempt}"
                for rel in order:
                    path = stage / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(rel)
                    os.utime(path, (attempt * 1000, attempt * 1000))
                out = Path(tmp) / f"out{attempt}.tar.gz"
                dist.write_tarball(stage, out, "sipsensor", 1_700_000_000, [])
                archives.append(out.read_bytes())
            self.assertEqual(archives[0], archives[1])
            with tarfile.open(fileobj=io.BytesIO(archives[0])) as tar:
                members = tar.getmembers()
            self.assertEqual([m.name for m in members],
                             ["sipsensor/.cargo/config.toml", "sipsensor/a", "sipsensor/b/c"])
            self.assertEqual({(m.mtime, m.uid, m.gid, m.uname) for m in members},
                             {(1_700_000_000, 0, 0, "root")})


class Dist(unittest.TestCase):
    """One real `make dist`: the archive builds offline from itself alone."""

    @classmethod
    def setUpClass(cls):
        require_cargo()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = Path(cls.tmp.name) / "dist"
        run([ROOT / "scripts" / "mk-dist", "--out", cls.out], timeout=600)
        cls.tree = cls.out / "sipsensor"

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_named_for_the_commit(self):
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        version = (self.out / "sipsensor.version").read_text().strip()
        self.assertTrue(version.startswith(head[:12]), version)
        self.assertTrue((self.out / f"sipsensor-{version}.tar.gz").is_file())
        self.assertEqual(os.readlink(self.out / "sipsensor.tar.gz"), f"sipsensor-{version}.tar.gz")
        stamp = (self.tree / "SIPSENSOR_BUILD").read_text()
        self.assertRegex(stamp, rf"^{head[:12]}(-dirty)? \d{{4}}-\d\d-\d\d\n$")

    def test_holds_the_agent_workspace_and_nothing_else(self):
        members = tomllib.loads((self.tree / "Cargo.toml").read_text())["workspace"]["members"]
        self.assertEqual(members, dist.path_crates(ROOT))
        self.assertIn("agent", members)
        self.assertFalse((self.tree / "collector").exists())
        for rel in ("LICENSE", "images/rauc/system.conf.in", "overlays/Makefile"):
            self.assertTrue((self.tree / rel).is_file(), rel)

    def test_vendors_exactly_the_locked_crates(self):
        lock = (self.tree / "Cargo.lock").read_text()
        crates = dist.registry_crates(lock)
        vendored = sorted(p.name for p in (self.tree / "VENDOR").iterdir())
        self.assertEqual(vendored, sorted(f"{n}-{v}" for n, v, _ in crates))
        for name, version, checksum in crates:
            sums = json.loads((self.tree / "VENDOR" / f"{name}-{version}" /
                               ".cargo-checksum.json").read_text())
            self.assertEqual(sums["package"], checksum)
        # Pruned, never re-resolved: every entry as in the repository's lock.
        full = {(n, v, c) for n, v, c in dist.registry_crates((ROOT / "Cargo.lock").read_text())}
        self.assertLessEqual(set(crates), full)
        self.assertLess(len(crates), len(full))

    def test_resolves_offline_from_its_vendored_crates(self):
        with tempfile.TemporaryDirectory() as home:
            result = run(["cargo", "metadata", "--offline", "--locked", "--format-version", "1"],
                         cwd=self.tree / "agent", env=dict(os.environ, CARGO_HOME=home),
                         timeout=300)
        packages = {p["name"] for p in json.loads(result.stdout)["packages"]}
        self.assertIn("sipsensor-agent", packages)


if __name__ == "__main__":
    unittest.main()
