"""Nothing open by default, the agent unprivileged, a watchdog armed, in all
three builds (Buildroot, Yocto, the Debian-assembled image).

Read from the trees: the console locked (no root password) and SSH keys
only; the agent's user with the same uid, groups and two capabilities under
BusyBox init (setpriv) and systemd; device groups from the udev rules; a
watchdog fed in every image. unlock-console, the device script that gives
root the technician's console password, runs here with fakes. The boot
tests (tests/boot) check the running Debian image.
"""

import re
import subprocess
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, ROOT, run

BR = ROOT / "buildroot-external"
LAYER = ROOT / "meta-sipsensor"
DEFCONFIGS = sorted((BR / "configs").glob("*_defconfig"))
SYSTEMD = IMAGES / "systemd"
LIBEXEC = IMAGES / "rootfs-overlay/usr/libexec/sipsensor"
AGENT_UID = "950"
AGENT_GROUPS = {"i2c", "gpio", "iio"}
AGENT_CAPS = {"CAP_SYS_NICE", "CAP_IPC_LOCK"}


def unit_values(path, key):
    return [l.split("=", 1)[1] for l in path.read_text().splitlines() if l.startswith(f"{key}=")]


class Login(unittest.TestCase):
    def test_buildroot_root_has_no_password(self):
        for defconfig in DEFCONFIGS:
            with self.subTest(defconfig=defconfig.name):
                lines = defconfig.read_text().splitlines()
                self.assertIn("# BR2_TARGET_ENABLE_ROOT_LOGIN is not set", lines)
                self.assertFalse([l for l in lines if l.startswith("BR2_TARGET_GENERIC_ROOT_PASSWD")])

    def test_debian_image_root_has_no_password(self):
        build = (IMAGES / "debian/build-image").read_text()
        self.assertIn("""sed -i 's/^root:[^:]*:/root:*:/' "$rootfs/etc/shadow\"""", build)
        self.assertNotIn("root::", build)

    def test_yocto_image_keeps_root_without_password(self):
        image = (LAYER / "recipes-core/images/sipsensor-image.bb").read_text()
        features = " ".join(re.findall(r'^IMAGE_FEATURES \+?= "([^"]*)"', image, re.M))
        for open_door in ("empty-root-password", "allow-empty-password", "debug-tweaks",
                          "serial-autologin-root"):
            self.assertNotIn(open_door, features)
        self.assertIn("sipsensor_ssh_keys_only", image)

    def test_ssh_takes_keys_only(self):
        default = (IMAGES / "rootfs-overlay/etc/default/dropbear").read_text()
        for var in ("DROPBEAR_ARGS", "DROPBEAR_EXTRA_ARGS"):
            args = re.search(rf'^{var}="([^"]*)"$', default, re.M).group(1).split()
            self.assertIn("-s", args, var)
        image = (LAYER / "recipes-core/images/sipsensor-image.bb").read_text()
        self.assertIn("echo 'DROPBEAR_EXTRA_ARGS=\"-s\"'", image)

    def test_ssh_host_keys_are_made_on_the_device(self):
        post_build = (BR / "board/common/post-build.sh").read_text()
        self.assertIn('ln -s /data/sipsensor/dropbear "$target/etc/dropbear"', post_build)
        build = (IMAGES / "debian/build-image").read_text()
        self.assertIn('ln -s /data/sipsensor/dropbear "$rootfs/etc/dropbear"', build)
        self.assertIn("DROPBEAR_RSAKEY_DIR=/data/sipsensor/dropbear",
                      (LAYER / "recipes-core/images/sipsensor-image.bb").read_text())


class AgentUser(unittest.TestCase):
    def test_the_same_user_in_every_build(self):
        table = [l.split() for l in (BR / "board/common/users.table").read_text().splitlines()
                 if l and not l.startswith("#")]
        self.assertEqual(len(table), 1)
        name, uid, group, gid, password, _home, _shell, groups = table[0][:8]
        self.assertEqual((name, uid, group, gid, password), ("sipsensor", AGENT_UID, "sipsensor",
                                                               AGENT_UID, "*"))
        self.assertEqual(set(groups.split(",")), AGENT_GROUPS)
        for defconfig in DEFCONFIGS:
            self.assertIn('BR2_ROOTFS_USERS_TABLES="$(BR2_EXTERNAL_SIPSENSOR_PATH)/board/common/'
                          'users.table"', defconfig.read_text().splitlines(), defconfig.name)

        sysusers = [l.split() for l in (SYSTEMD / "sipsensor.sysusers").read_text().splitlines()
                    if l and not l.startswith("#")]
        self.assertIn(["u", "sipsensor", AGENT_UID], [l[:3] for l in sysusers])
        self.assertEqual({l[2] for l in sysusers if l[:2] == ["m", "sipsensor"]}, AGENT_GROUPS)

        recipe = (LAYER / "recipes-sipsensor/sipsensor-system/sipsensor-system_git.bb").read_text()
        self.assertRegex(recipe, r"inherit .*\buseradd\b")
        self.assertIn(f"--uid {AGENT_UID} --user-group --groups i2c,gpio,iio", recipe)

    def test_systemd_unit_runs_it_with_two_capabilities(self):
        unit = SYSTEMD / "sipsensor-agent.service"
        self.assertEqual(unit_values(unit, "User"), ["sipsensor"])
        for key in ("AmbientCapabilities", "CapabilityBoundingSet"):
            self.assertEqual([set(v.split()) for v in unit_values(unit, key)], [AGENT_CAPS], key)

    def test_busybox_init_runs_it_with_two_capabilities(self):
        script = (IMAGES / "rootfs-overlay/etc/init.d/S95sipsensor-agent").read_text()
        self.assertIn("AGENT_USER=sipsensor", script)
        caps = re.search(r"^AGENT_CAPS=(\S+)$", script, re.M).group(1)
        self.assertEqual(caps, "-all,+sys_nice,+ipc_lock")
        for option in ("--reuid=\"$AGENT_USER\"", "--regid=\"$AGENT_USER\"", "--init-groups",
                       "--bounding-set=\"$AGENT_CAPS\"", "--inh-caps=\"$AGENT_CAPS\"",
                       "--ambient-caps=\"$AGENT_CAPS\""):
            self.assertIn(option, script)
        self.assertIn("-x /usr/bin/setpriv", script)
        config = (BR / "Config.in").read_text()
        self.assertIn("select BR2_PACKAGE_UTIL_LINUX_SETPRIV", config)

    def test_setpriv_gives_exactly_the_two_capabilities(self):
        """The init script's setpriv options, run here on this host's setpriv
        (as root, which CI is): the child's effective set is the two."""
        import os
        import shutil
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            self.skipTest("needs root and util-linux's setpriv")
        result = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                      "--bounding-set=-all,+sys_nice,+ipc_lock",
                      "--inh-caps=-all,+sys_nice,+ipc_lock",
                      "--ambient-caps=-all,+sys_nice,+ipc_lock",
                      "sh", "-c", "grep -E '^(Uid|CapEff|CapBnd):' /proc/self/status"])
        fields = dict(line.split(":\t") for line in result.stdout.splitlines())
        self.assertNotEqual(fields["Uid"].split()[0], "0")
        # CAP_IPC_LOCK is bit 14, CAP_SYS_NICE bit 23.
        self.assertEqual(int(fields["CapEff"], 16), (1 << 14) | (1 << 23))
        self.assertEqual(int(fields["CapBnd"], 16), (1 << 14) | (1 << 23))

    def test_udev_rules_give_the_groups_the_buses(self):
        rules = (IMAGES / "rootfs-overlay/etc/udev/rules.d/60-sipsensor-devices.rules").read_text()
        self.assertRegex(rules, r'SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"')
        self.assertRegex(rules, r'SUBSYSTEM=="gpio", KERNEL=="gpiochip\[0-9\]\*", GROUP="gpio"')
        self.assertRegex(rules, r"chgrp gpio /sys/class/gpio/export")
        self.assertRegex(rules, r'SUBSYSTEM=="iio", GROUP="iio", MODE="0660"')
        recipe = (LAYER / "recipes-sipsensor/sipsensor-system/sipsensor-system_git.bb").read_text()
        self.assertIn("60-sipsensor-devices.rules", recipe)

    def test_agent_owns_its_data_and_reads_the_password(self):
        prepare = (LIBEXEC / "prepare-data").read_text()
        self.assertIn('chown -R "$agent_user:$agent_user" "$dir"', prepare)
        self.assertIn('chown "0:$agent_user" "$data_dir/secrets.yaml"', prepare)
        self.assertIn("chmod 0640", prepare)


class Watchdog(unittest.TestCase):
    def test_buildroot_feeds_a_watchdog_on_every_board(self):
        for defconfig in DEFCONFIGS:
            with self.subTest(defconfig=defconfig.name):
                text = defconfig.read_text()
                self.assertIn("BR2_PACKAGE_BUSYBOX_WATCHDOG=y", text.splitlines())
                fragments = re.search(r'BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES="([^"]*)"',
                                      text).group(1).split()
                options = "".join((BR / f.replace("$(BR2_EXTERNAL_SIPSENSOR_PATH)/", ""))
                                  .read_text() for f in fragments)
                self.assertRegex(options, r"(?m)^CONFIG_WATCHDOG=y$")
                drivers = re.findall(r"(?m)^CONFIG_(\w+_(?:WDT|WATCHDOG))=y$", options)
                self.assertTrue(drivers, "no watchdog driver in the kernel fragments")

    def test_systemd_images_feed_it_from_pid_1(self):
        conf = SYSTEMD / "watchdog.conf"
        self.assertRegex(conf.read_text(), r"(?m)^\[Manager\]$")
        seconds = re.search(r"(?m)^RuntimeWatchdogSec=(\d+)s$", conf.read_text())
        self.assertTrue(seconds and 0 < int(seconds.group(1)) <= 60)
        build = (IMAGES / "debian/build-image").read_text()
        self.assertIn('"$images/systemd/watchdog.conf"', build)
        self.assertIn("/etc/systemd/system.conf.d/sipsensor-watchdog.conf", build)
        recipe = (LAYER / "recipes-sipsensor/sipsensor-system/sipsensor-system_git.bb").read_text()
        self.assertIn("images/systemd/watchdog.conf", recipe)
        self.assertIn("system.conf.d/sipsensor-watchdog.conf", recipe)


class UnlockConsole(unittest.TestCase):
    SHADOW = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    HASH = "$6$salt$" + "a" * 86

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        (self.dir / "bin").mkdir()
        self.mounts = self.dir / "mounts"
        fake_mount = self.dir / "bin/mount"
        fake_mount.write_text('#!/bin/sh\necho "$*" >> "$MOUNTS"\n')
        fake_mount.chmod(0o755)
        (self.dir / "shadow").write_text(self.SHADOW)

    def tearDown(self):
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    def unlock(self, content):
        if content is not None:
            (self.dir / "console-password").write_text(content)
        env = {"PATH": f"{self.dir / 'bin'}:/usr/bin:/bin", "MOUNTS": str(self.mounts),
               "SIPSENSOR_DEFAULTS": str(self.dir / "none"),
               "SIPSENSOR_DATA_DIR": str(self.dir), "SIPSENSOR_SHADOW": str(self.dir / "shadow"),
               "SIPSENSOR_RUN_DIR": str(self.dir / "run")}
        return run([LIBEXEC / "unlock-console"], env=env, check=False, timeout=30)

    def mounted(self):
        return self.mounts.read_text().splitlines() if self.mounts.exists() else []

    def test_no_file_leaves_the_console_locked(self):
        self.assertEqual(self.unlock(None).returncode, 0)
        self.assertEqual(self.mounted(), [])

    def test_a_hash_becomes_roots_password(self):
        result = self.unlock(self.HASH + "\n")
        self.assertEqual(result.returncode, 0, result.stderr)
        run_shadow = self.dir / "run/shadow"
        self.assertEqual(self.mounted(), [f"--bind {run_shadow} {self.dir / 'shadow'}"])
        lines = run_shadow.read_text().splitlines()
        self.assertEqual(lines[0], f"root:{self.HASH}:19000:0:99999:7:::")
        self.assertEqual(lines[1], "daemon:*:19000:0:99999:7:::")
        self.assertEqual(run_shadow.stat().st_mode & 0o777, 0o600)
        self.assertEqual((self.dir / "shadow").read_text(), self.SHADOW)

    def test_plain_text_or_locked_is_never_a_password(self):
        for content in ("secret\n", "$6$salt$with:colon\n", "$6$\n", "locked\n", "\n"):
            with self.subTest(content=content):
                self.mounts.unlink(missing_ok=True)
                result = self.unlock(content)
                self.assertEqual(self.mounted(), [], result.stderr)


if __name__ == "__main__":
    unittest.main()
