"""The BR2_EXTERNAL tree: Kconfig, its own symbols, the packages, defconfigs.

No Buildroot checkout in CI: kconfiglib parses the tree's Config.in with a
stand-in for the Buildroot symbols it references (listed below; the deep
check, tests/images/deep-check, finds each of them in a real Buildroot
2026.02), warns about any undefined reference, and loads every defconfig
to prove each line about the tree's own symbols survives. The deep check
does the same for every line against Buildroot itself.
"""

import hashlib
import os
import re
import tempfile
import unittest
from pathlib import Path

from common import ROOT, missing

BR = ROOT / "buildroot-external"
# Buildroot symbols the tree depends on or selects.
BUILDROOT_SYMBOLS = sorted("""
BR2_PACKAGE_E2FSPROGS BR2_PACKAGE_HAS_UDEV BR2_PACKAGE_HOST_DOSFSTOOLS
BR2_PACKAGE_HOST_DTC BR2_PACKAGE_HOST_E2FSPROGS BR2_PACKAGE_HOST_GENIMAGE
BR2_PACKAGE_HOST_MTOOLS BR2_PACKAGE_HOST_RAUC BR2_PACKAGE_HOST_RUSTC
BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS BR2_PACKAGE_HOST_UBOOT_TOOLS
BR2_PACKAGE_RAUC BR2_PACKAGE_UBOOT_TOOLS BR2_PACKAGE_UBOOT_TOOLS_FWPRINTENV
BR2_PACKAGE_UTIL_LINUX BR2_PACKAGE_UTIL_LINUX_MOUNT BR2_PACKAGE_UTIL_LINUX_SETPRIV
BR2_TOOLCHAIN_HAS_THREADS BR2_USE_MMU BR2_USE_WCHAR
""".split())
OWN_PREFIXES = ("BR2_PACKAGE_SIPSENSOR_", "BR2_SIPSENSOR_")
DEFCONFIGS = sorted((BR / "configs").glob("*_defconfig"))


def kconfiglib():
    try:
        import kconfiglib as module
    except ImportError:
        missing("kconfiglib is not installed (make images-venv)")
    return module


class Kconfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        klib = kconfiglib()
        cls.klib = klib
        cls.tmp = tempfile.TemporaryDirectory()
        top = Path(cls.tmp.name) / "Config.in"
        stub = "".join(f"config {s}\n\tbool\n\tdefault y\n\n" for s in BUILDROOT_SYMBOLS)
        top.write_text(f'mainmenu "stand-in for Buildroot"\n\n{stub}'
                       'menu "External options"\nsource "$BR2_EXTERNAL_SIPSENSOR_PATH/Config.in"\nendmenu\n')
        os.environ["BR2_EXTERNAL_SIPSENSOR_PATH"] = str(BR)
        os.environ["KCONFIG_WARN_UNDEF"] = "y"
        os.environ["CONFIG_"] = ""  # Buildroot's symbols carry no prefix
        cls.kconf = klib.Kconfig(str(top), warn_to_stderr=False)
        cls.parse_warnings = list(cls.kconf.warnings)
        cls.top = top

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def own_symbols(self):
        return [s for s in self.kconf.unique_defined_syms if s.name.startswith(OWN_PREFIXES)]

    def test_parses_without_warnings(self):
        self.assertEqual(self.parse_warnings, [])

    def test_own_symbols_are_named_prompted_and_documented(self):
        symbols = self.own_symbols()
        self.assertGreaterEqual(len(symbols), 8)
        for sym in symbols:
            for node in sym.nodes:
                self.assertIsNotNone(node.prompt, sym.name)
                if sym.orig_type != self.klib.BOOL or not sym.choice:
                    self.assertTrue(node.help, f"{sym.name} has no help text")

    def test_no_stale_stand_in_symbols(self):
        def names(expr):
            return {s.name for s in self.klib.expr_items(expr)
                    if isinstance(s, self.klib.Symbol) and not s.is_constant}

        referenced = set()
        for item in [*self.own_symbols(), *self.kconf.unique_choices]:
            for node in item.nodes:
                referenced |= names(node.dep)
        for sym in self.own_symbols():
            referenced |= {s.name for s, _ in sym.selects}
        for node in self.kconf.node_iter():
            if node.item == self.klib.COMMENT:
                referenced |= names(node.dep)
        own = {s.name for s in self.own_symbols()}
        self.assertEqual(sorted(referenced - own), BUILDROOT_SYMBOLS)

    def test_defconfig_lines_of_own_symbols_survive(self):
        for defconfig in DEFCONFIGS:
            with self.subTest(defconfig=defconfig.name):
                lines = [l for l in defconfig.read_text().splitlines()
                         if l.startswith(OWN_PREFIXES)]
                self.assertTrue(lines)
                self.kconf.load_config(str(defconfig), replace=True)
                out = Path(self.tmp.name) / "config"
                self.kconf.write_config(str(out), header="")
                written = set(out.read_text().splitlines())
                for line in lines:
                    self.assertIn(line, written, f"{defconfig.name} loses {line}")
                self.assertEqual(self.kconf.syms["BR2_SIPSENSOR_SYSTEM"].str_value, "y")


class Tree(unittest.TestCase):
    def test_external_desc(self):
        desc = dict(l.split(": ", 1) for l in (BR / "external.desc").read_text().splitlines())
        self.assertEqual(desc["name"], "SIPSENSOR")
        self.assertTrue(desc["desc"])

    def test_every_package_is_sourced_and_included(self):
        config = (BR / "Config.in").read_text()
        self.assertIn("$(sort $(wildcard $(BR2_EXTERNAL_SIPSENSOR_PATH)/package/*/*.mk))",
                      (BR / "external.mk").read_text())
        packages = sorted(p.name for p in (BR / "package").iterdir())
        self.assertEqual(packages, ["sipsensor-agent", "sipsensor-overlays"])
        for pkg in packages:
            self.assertIn(f'source "$BR2_EXTERNAL_SIPSENSOR_PATH/package/{pkg}/Config.in"', config)
            mk = (BR / "package" / pkg / f"{pkg}.mk").read_text()
            var = pkg.upper().replace("-", "_")
            self.assertIn(f"{var}_LICENSE = BSD-2-Clause", mk)

    def test_agent_package_builds_the_trees_own_agent(self):
        # A local site: the tree `make dist` unpacks from this repository,
        # with its crates vendored; no GitHub URL, no pinned commit.
        pkg = BR / "package" / "sipsensor-agent"
        mk = (pkg / "sipsensor-agent.mk").read_text()
        self.assertIn("$(eval $(cargo-package))", mk)
        self.assertIn("SIPSENSOR_AGENT_LICENSE_FILES = LICENSE", mk)
        self.assertIn("SIPSENSOR_AGENT_SUBDIR = agent", mk)
        self.assertIn("SIPSENSOR_AGENT_DIST_DIR = $(BR2_EXTERNAL_SIPSENSOR_PATH)/../target/dist", mk)
        self.assertIn("SIPSENSOR_AGENT_SITE = $(SIPSENSOR_AGENT_DIST_DIR)/sipsensor", mk)
        self.assertIn("SIPSENSOR_AGENT_SITE_METHOD = local", mk)
        self.assertIn('SIPSENSOR_AGENT_BUILD="$$(cat $(@D)/SIPSENSOR_BUILD)"', mk)
        self.assertNotIn("github", mk)
        hashes = {}
        for line in (pkg / "sipsensor-agent.hash").read_text().splitlines():
            if line and not line.startswith("#"):
                algo, digest, name = line.split()
                self.assertEqual(algo, "sha256")
                hashes[name] = digest
        self.assertEqual(hashes, {"LICENSE": hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest()})

    def test_yocto_takes_the_same_archive(self):
        inc = (ROOT / "meta-sipsensor/recipes-sipsensor/sipsensor-source.inc").read_text()
        self.assertIn('SRC_URI = "file://${SIPSENSOR_DIST_DIR}/sipsensor.tar.gz"', inc)
        self.assertNotIn("SRCREV", inc)
        self.assertNotIn("git://", inc)

    def test_defconfig_paths_exist(self):
        for defconfig in DEFCONFIGS:
            text = defconfig.read_text()
            for rel in re.findall(r"\$\(BR2_EXTERNAL_SIPSENSOR_PATH\)/([^\s\"]+)", text):
                self.assertTrue((BR / rel).exists(), f"{defconfig.name}: {rel}")
            board = re.search(r'BR2_ROOTFS_POST_SCRIPT_ARGS="([^"]+)"', text).group(1)
            self.assertTrue((ROOT / "images/uboot" / f"board-{board}.cmd").exists(), board)

    def test_hooks_are_executable(self):
        for script in (BR / "board" / "common").glob("*.sh"):
            self.assertTrue(os.access(script, os.X_OK), script)


if __name__ == "__main__":
    unittest.main()
