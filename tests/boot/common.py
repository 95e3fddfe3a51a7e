"""Shared helpers of the boot tests (tests/boot): paths, prerequisites,
bounded waits and the processes every test starts and must stop.

Every process a test starts goes through `Processes.start`: it runs in its
own process group and is killed by that PID (SIGTERM, then SIGKILL) in the
test's cleanup, also when the test fails. Its output goes to a log file in
the test's directory, which failure messages quote.
"""

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
CI = os.environ.get("SIPSENSOR_CI") == "1"
# Results of `make image` (images/debian/build-image) and of the amd64
# test system (tests/boot/mk-amd64-system); mk/image.mk passes them.
IMAGE_DIR = Path(os.environ.get("SIPSENSOR_IMAGE_DIR", ROOT / "target" / "image"))
AMD64_DIR = Path(os.environ.get("SIPSENSOR_AMD64_DIR", ROOT / "target" / "boot-amd64"))
# Where tests keep their scratch files (card copies, logs); kept after a
# failure for inspection, removed after a success.
WORK_DIR = Path(os.environ.get("SIPSENSOR_BOOT_WORK", ROOT / "target" / "boot-tests"))


def missing(reason):
    """Skip for a missing prerequisite, or fail when CI must have it."""
    if CI:
        raise AssertionError(f"SIPSENSOR_CI=1 and {reason}")
    raise unittest.SkipTest(reason)


def require_tool(tool, package):
    path = shutil.which(tool) or (
        f"/usr/sbin/{tool}" if os.access(f"/usr/sbin/{tool}", os.X_OK) else None
    )
    if path is None:
        missing(f"{tool} is not installed (Debian package {package}; see .ci/apt/image.txt)")
    return path


def require_root():
    if os.geteuid() != 0:
        missing("the boot tests need root (network namespaces, tap devices)")


def require_file(path, how):
    if not Path(path).exists():
        missing(f"{path} does not exist: {how}")
    return Path(path)


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


def wait_for(what, predicate, timeout, interval=0.5):
    """Call predicate until it returns something true; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"({path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


class Process:
    """A started process: its PID, its log, and how to stop it."""

    def __init__(self, name, popen, log):
        self.name = name
        self.popen = popen
        self.log = Path(log)

    @property
    def pid(self):
        return self.popen.pid

    def running(self):
        return self.popen.poll() is None

    def stop(self, grace=3.0):
        """SIGTERM to the process group, SIGKILL after `grace` seconds."""
        if self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines=40):
        return tail(self.log, lines)


# Whatever a test leaves running when the interpreter ends (SIGTERM from
# run-lanes' time limit, an error outside a test) is stopped here: every
# started process by its PID, every namespace deleted.
_LIVE = []


def _stop_everything():
    for item in reversed(_LIVE):
        try:
            item.close() if hasattr(item, "close") else item.stop_all()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


atexit.register(_stop_everything)
signal.signal(signal.SIGTERM, _on_sigterm)


def track(item):
    """Stop/close ITEM at exit if the test's own cleanup did not."""
    _LIVE.append(item)
    return item


class Processes:
    """The processes of one test, stopped in reverse order by `stop_all`."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.procs = []
        self.socket_dirs = []
        track(self)

    def socket_dir(self, prefix):
        """A short directory for Unix sockets (the test's own directory
        may be longer than a socket path can be: 104 bytes for Kamailio,
        108 for the kernel), removed with the processes."""
        path = Path(tempfile.mkdtemp(prefix=f"ssboot-{prefix}-"))
        self.socket_dirs.append(path)
        return path

    def start(self, name, cmd, env=None):
        log = self.dir / f"{name}.log"
        out = open(log, "ab")
        try:
            popen = subprocess.Popen(
                [str(c) for c in cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )
        finally:
            out.close()
        proc = Process(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
        for path in self.socket_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self.socket_dirs.clear()


def test_dir(test):
    """A fresh scratch directory for one test (by its id)."""
    path = WORK_DIR / test.id().split(".", 1)[-1]
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def drop_images(directory):
    """Remove a test's disk images (card copies, update sticks: hundreds of
    MB each), keeping its logs; SIPSENSOR_BOOT_KEEP=1 keeps them too."""
    if os.environ.get("SIPSENSOR_BOOT_KEEP") == "1":
        return
    for path in Path(directory).glob("*.img"):
        path.unlink()


def copy_sparse(src, dst):
    run(["cp", "--sparse=always", src, dst], timeout=300)


def cost(seconds):
    """Mark a test with its rough duration, for run-lanes' scheduling."""
    def mark(fn):
        fn.boot_cost = seconds
        return fn
    return mark
