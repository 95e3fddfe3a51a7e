"""The shell scripts: shellcheck-clean, and the device-side logic behaves.

health-check, rauc-pre-install and agent-run run against fakes of rauc,
the agent, reboot and logger in a temporary directory (no root, no device).
"""

import os
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from common import IMAGES, ROOT, fake_commands, require, run

LIBEXEC = IMAGES / "rootfs-overlay" / "usr" / "libexec" / "sipsensor"
SCRIPT_DIRS = ["images", "buildroot-external", "tests/images", "overlays"]


def shell_scripts():
    found = []
    for top in SCRIPT_DIRS:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            with path.open("rb") as f:
                first = f.readline()
            if first.startswith(b"#!") and (b"/sh" in first or b"bash" in first):
                found.append(path)
    return found


class Shellcheck(unittest.TestCase):
    def test_every_script_is_clean(self):
        require("shellcheck", "shellcheck")
        scripts = shell_scripts()
        # The device scripts, the image scripts, the Buildroot hooks, the
        # init scripts and the deep check are all found.
        names = {p.name for p in scripts}
        for expected in ("health-check", "agent-run", "mk-bundle", "post-image.sh",
                         "S95sipsensor-agent", "deep-check"):
            self.assertIn(expected, names)
        result = run(["shellcheck", "-x", *[p.relative_to(ROOT) for p in scripts]],
                     cwd=ROOT, check=False)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


def write_exe(path, text):
    path.write_text(text)
    path.chmod(0o755)


class Fakes(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        self.bin = self.dir / "bin"
        self.bin.mkdir()
        self.log = self.dir / "log"
        self.log.touch()
        self.data = self.dir / "data"
        (self.data / "ota").mkdir(parents=True)
        self.cmdline = self.dir / "cmdline"
        fake_commands(self.bin, {
            "rauc": 'echo "rauc $*" >> "$LOG"; exit "${RAUC_EXIT:-0}"',
            "agent": 'echo "agent $*" >> "$LOG"; exit "${AGENT_EXIT:-0}"',
            "reboot": 'echo reboot >> "$LOG"',
            "logger": ':',
        })

    def tearDown(self):
        subprocess.run(["rm", "-rf", str(self.dir)], check=False)

    def env(self, **extra):
        env = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "LOG": str(self.log),
            "SIPSENSOR_DEFAULTS": str(self.dir / "no-defaults"),
            "SIPSENSOR_CMDLINE": str(self.cmdline),
            "SIPSENSOR_DATA_DIR": str(self.data),
            "SIPSENSOR_AGENT": str(self.bin / "agent"),
            "SIPSENSOR_REBOOT": str(self.bin / "reboot"),
            "SIPSENSOR_HEALTH_TIMEOUT": "7",
            "SIPSENSOR_HEALTH_STREAM_SECONDS": "3",
        }
        env.update(extra)
        return env

    def calls(self):
        return self.log.read_text().splitlines()

    def pending(self):
        p = self.data / "ota" / "pending"
        return p.read_text().strip() if p.exists() else None

    def history(self):
        p = self.data / "ota" / "history"
        return p.read_text() if p.exists() else ""

    # -- health-check ---------------------------------------------------

    def health(self, slot, pending=None, **extra):
        self.cmdline.write_text(f"console=ttyS0 root=PARTUUID=53495053-02 ro rauc.slot={slot} panic=5\n"
                                if slot else "console=ttyS0 root=/dev/vda\n")
        if pending:
            (self.data / "ota" / "pending").write_text(pending + "\n")
        return run([LIBEXEC / "health-check"], env=self.env(**extra), check=False, timeout=30)

    def test_not_booted_by_the_ab_script(self):
        result = self.health(None)
        self.assertEqual(result.returncode, 0)
        self.assertEqual(self.calls(), [])

    def test_normal_boot_refills_the_attempts_at_once(self):
        result = self.health("A")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.calls(), ["rauc status mark-good booted"])

    def test_normal_boot_reports_a_failed_mark(self):
        result = self.health("A", RAUC_EXIT="1")
        self.assertEqual(result.returncode, 1)
        self.assertIn("mark-good booted failed", result.stderr)

    # The history lines are "TIME EVENT SLOT: TEXT", which the agent reads
    # (agent/src/update/board.rs, docs/building-images.md).
    def history_lines(self):
        return [line.split(" ", 3)[1:] for line in self.history().splitlines()]

    def test_trial_boot_is_marked_good_once_registered_and_streaming(self):
        result = self.health("B", pending="B")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.calls(), ["agent status --wait-registered 7 --wait-streamed 3",
                                        "rauc status mark-good booted"])
        self.assertIsNone(self.pending())
        self.assertEqual(self.history_lines(),
                         [["good", "B:", "the agent registered and streamed for 3s"]])

    def test_stream_seconds_default_to_60(self):
        env = self.env()
        del env["SIPSENSOR_HEALTH_STREAM_SECONDS"]
        (self.data / "ota" / "pending").write_text("B\n")
        self.cmdline.write_text("rauc.slot=B\n")
        run([LIBEXEC / "health-check"], env=env, check=False, timeout=30)
        self.assertEqual(self.calls()[0], "agent status --wait-registered 7 --wait-streamed 60")

    def test_trial_boot_without_registration_reboots(self):
        result = self.health("B", pending="B", AGENT_EXIT="1")
        self.assertEqual(result.returncode, 1)
        self.assertEqual(self.calls(), ["agent status --wait-registered 7 --wait-streamed 3",
                                        "reboot"])
        self.assertEqual(self.pending(), "B")
        [[event, slot, text]] = self.history_lines()
        self.assertEqual((event, slot), ("trial-failed", "B:"))
        self.assertIn("did not register and stream for 3s within 7s (status exit 1)", text)

    def test_fallback_boot_marks_the_update_bad(self):
        result = self.health("A", pending="B")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.calls(), ["rauc status mark-bad other",
                                        "rauc status mark-good booted"])
        self.assertIsNone(self.pending())
        [[event, slot, text]] = self.history_lines()
        self.assertEqual((event, slot), ("rolled-back", "B:"))
        self.assertIn("running slot A", text)

    # -- rauc-pre-install -------------------------------------------------

    def pre_install(self, **slots):
        return run([LIBEXEC / "rauc-pre-install"], env=self.env(**slots), check=False)

    def test_pre_install_records_the_rootfs_target(self):
        result = self.pre_install(RAUC_TARGET_SLOTS="1 2", RAUC_SLOT_CLASS_1="appfs",
                                  RAUC_SLOT_BOOTNAME_1="", RAUC_SLOT_CLASS_2="rootfs",
                                  RAUC_SLOT_BOOTNAME_2="B")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.pending(), "B")
        self.assertFalse((self.data / "ota" / "pending.new").exists())

    def test_pre_install_refuses_without_a_rootfs_target(self):
        result = self.pre_install(RAUC_TARGET_SLOTS="1", RAUC_SLOT_CLASS_1="appfs",
                                  RAUC_SLOT_BOOTNAME_1="")
        self.assertEqual(result.returncode, 1)
        self.assertIsNone(self.pending())

    # -- agent-exec and agent-run ----------------------------------------

    def test_agent_exec_passes_config_and_override(self):
        env = self.env(SIPSENSOR_AGENT_CONFIG="/etc/a.yaml",
                       SIPSENSOR_AGENT_OVERRIDE="/boot/firmware/sipsensor.yaml")
        run([LIBEXEC / "agent-exec"], env=env)
        self.assertEqual(self.calls(), [
            "agent run --config /etc/a.yaml --override /boot/firmware/sipsensor.yaml"])

    def test_agent_exec_defaults(self):
        run([LIBEXEC / "agent-exec"], env=self.env())
        self.assertEqual(self.calls(), [
            "agent run --config /etc/sipsensor/agent.yaml --override /boot/firmware/sipsensor.yaml"])

    def start_runner(self, mode):
        # The traps go first: the test signals as soon as "start" is
        # logged (a HUP before the trap killed the fake under load).
        write_exe(self.bin / "fake-exec", f"""#!/bin/sh
trap 'echo term >> "$LOG"; exit 0' TERM
trap 'echo hup >> "$LOG"' HUP
echo "start $(date +%s)" >> "$LOG"
if [ {mode} = crash ]; then exit 3; fi
i=0
while [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
""")
        env = self.env(SIPSENSOR_AGENT_EXEC=str(self.bin / "fake-exec"))
        return subprocess.Popen([str(LIBEXEC / "agent-run")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for(self, predicate, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def stop(self, proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def test_agent_run_restarts_with_back_off(self):
        proc = self.start_runner("crash")
        try:
            starts = lambda: [int(l.split()[1]) for l in self.calls() if l.startswith("start")]
            self.assertTrue(self.wait_for(lambda: len(starts()) >= 3, 10), self.calls())
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=5), 0)
            s = starts()
            # Delays of 1 s then 2 s (whole-second clock: allow one less).
            self.assertGreaterEqual(s[1] - s[0], 0)
            self.assertGreaterEqual(s[2] - s[1], 1)
            self.assertGreaterEqual(s[2] - s[0], 2)
        finally:
            self.stop(proc)

    def test_agent_run_forwards_hup_and_stops_on_term(self):
        proc = self.start_runner("long")
        try:
            self.assertTrue(self.wait_for(lambda: any(l.startswith("start") for l in self.calls()), 5))
            # The fake logs its start before agent-run has noted its pid
            # (`child=$!` runs after the fork), and a HUP in between has no
            # child to go to: signal again until one is forwarded.
            def forwarded():
                proc.send_signal(signal.SIGHUP)
                return self.wait_for(lambda: "hup" in self.calls(), 0.5)
            self.assertTrue(any(forwarded() for _ in range(10)), self.calls())
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=5), 0)
            self.assertIn("term", self.calls())
            self.assertEqual(len([l for l in self.calls() if l.startswith("start")]), 1)
        finally:
            self.stop(proc)


if __name__ == "__main__":
    unittest.main()
