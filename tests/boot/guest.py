"""A QEMU guest and its serial console.

The console is QEMU's first serial port, connected to a Unix socket that
the test reads from a background thread into a buffer (and a log file);
every wait on it has a time limit. Commands run in the guest's root shell
between unique markers, so their output and exit status are read back
exactly, whatever the kernel prints in between.
"""

import base64
import itertools
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from common import require_tool, wait_for

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-Za-z]|\r")


class ConsoleTimeout(AssertionError):
    pass


class Console:
    """The guest's serial console through QEMU's socket chardev."""

    def __init__(self, path, log_path, connect_timeout=20):
        self.log = open(log_path, "ab")
        self.buf = bytearray()
        self.pos = 0
        self.lock = threading.Condition()
        self.closed = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_for(f"QEMU's console socket {path}", lambda: self._try_connect(path),
                 connect_timeout, 0.1)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ids = itertools.count(1)

    def _try_connect(self, path):
        try:
            self.sock.connect(str(path))
            return True
        except OSError:
            return False

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            with self.lock:
                if not data:
                    self.closed = True
                    self.lock.notify_all()
                    return
                self.log.write(data)
                self.log.flush()
                self.buf += ANSI.sub(b"", data)
                self.lock.notify_all()

    def mark(self):
        """Forget everything received so far (expect only what follows);
        returns the position, for `text_since`."""
        with self.lock:
            self.pos = len(self.buf)
            return self.pos

    def expect(self, pattern, timeout, what=None):
        """Wait for a regular expression (bytes or str) in what arrived
        since the last match; returns the match and moves past it."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = regex.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    recent = bytes(self.buf[max(self.pos, len(self.buf) - 3000):])
                    state = "the console closed" if self.closed else f"{timeout} s passed"
                    raise ConsoleTimeout(
                        f"{state} waiting for {what or pattern!r}; the console showed:\n"
                        + recent.decode(errors="replace"))
                self.lock.wait(min(left, 1.0))

    def expect_any(self, patterns, timeout):
        """Wait for the first of several patterns; returns (index, match)."""
        alternatives = b"|".join(
            b"(" + (p.encode() if isinstance(p, str) else p) + b")" for p in patterns)
        m = self.expect(alternatives, timeout, what=f"one of {patterns}")
        for i in range(len(patterns)):
            if m.group(i + 1) is not None:
                return i, m
        return -1, m

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def text_since(self, start):
        with self.lock:
            return bytes(self.buf[start:]).decode(errors="replace")

    def login(self, timeout, password):
        """Log in as root on the getty with PASSWORD (the image's console
        is locked until the technician's console-password sets one) and
        prepare the shell for `sh`."""
        self.expect(r"login: $", timeout, "the login prompt")
        self.send("root\n")
        self.expect(r"Password: $", 30, "the password prompt")
        self.send(f"{password}\n")
        self.expect(r"# $", 60, "the root shell prompt")
        # No echo, no colours, no kernel messages on this console: what
        # comes back is the commands' output.
        self.send("stty -echo; export TERM=dumb SYSTEMD_COLORS=0 SYSTEMD_PAGER= PAGER=cat; "
                  "dmesg -n 1\n")
        self.sh("true", timeout=30)

    def sh(self, command, timeout=60, check=True):
        """Run a shell command in the guest; returns (status, output).

        The markers end their lines: an echo of the typed line (before
        `stty -echo` took effect) has a quote after them and never matches;
        the prompt may stand in front of them."""
        n = next(self.ids)
        self.send(f"echo '@@{n}<'; {command}; echo \"@@{n}>$?@@\"\n")
        self.expect(rf"@@{n}<$", 30, f"the start of command {n}: {command}")
        start = self.pos
        m = self.expect(rf"@@{n}>(\d+)@@$", timeout, f"the end of `{command}`")
        with self.lock:
            output = bytes(self.buf[start:m.start()]).decode(errors="replace").strip("\n")
        status = int(m.group(1))
        if check and status != 0:
            raise AssertionError(f"`{command}` exited {status} in the guest:\n{output}")
        return status, output

    def write_file(self, path, text, mode="0644"):
        """Create a file in the guest (base64 over the console, in lines
        short enough for the terminal's line buffer)."""
        data = base64.b64encode(text.encode() if isinstance(text, str) else text).decode()
        self.sh(f"rm -f {path}.b64")
        for i in range(0, len(data), 512):
            self.sh(f"echo '{data[i:i + 512]}' >> {path}.b64")
        self.sh(f"base64 -d {path}.b64 > {path} && rm {path}.b64 && chmod {mode} {path}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.reader.join(timeout=5)
        self.log.close()


class Qemu:
    """One QEMU process in a network namespace (or none), with its console.

    `kill()` is a power cut (SIGKILL); the process is also stopped by the
    test's Processes cleanup."""

    def __init__(self, name, argv, directory, netns=None, procs=None):
        self.dir = Path(directory)
        self.sockdir = Path(tempfile.mkdtemp(prefix="ssboot-"))
        console_sock = self.sockdir / "console"
        full = list(argv) + [
            "-display", "none", "-monitor", "none",
            "-chardev", f"socket,id=console,path={console_sock},server=on,wait=off",
            "-serial", "chardev:console",
        ]
        if netns is not None:
            self.proc = netns.start(name, full)
        else:
            self.proc = procs.start(name, full)
        self.started = time.monotonic()
        try:
            self.console = Console(console_sock, self.dir / f"{name}.console.log")
        except AssertionError as e:
            raise AssertionError(f"{e}\nQEMU log:\n{self.proc.log_tail()}") from None

    def kill(self):
        """Pull the plug: SIGKILL, no chance to flush anything."""
        self.proc.stop(grace=0)

    def wait_exit(self, timeout):
        wait_for("QEMU to exit", lambda: not self.proc.running(), timeout)

    def close(self):
        self.proc.stop()
        self.console.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)


def qemu_arm_virt(card, uboot, extra_drives=(), mac=None):
    """qemu-system-arm arguments: the `virt` machine (Cortex-A15, 512 MiB
    like a BeagleBone Black) started by U-Boot from the card on virtio,
    under TCG, with a virtio network card on the namespace's tap device."""
    binary = require_tool("qemu-system-arm", "qemu-system-arm")
    argv = [
        binary, "-M", "virt", "-cpu", "cortex-a15", "-m", "512", "-smp", "1",
        "-accel", "tcg", "-bios", uboot, "-no-user-config", "-nodefaults",
    ]
    # QEMU gives the first virtio-mmio device the transport U-Boot probes
    # last: the extra drives (update "USB sticks") go first so that the
    # card is U-Boot's virtio 0, where its distro boot looks for boot.scr.
    for i, drive in enumerate(extra_drives):
        argv += ["-drive", f"if=none,file={drive},format=raw,id=extra{i},readonly=on",
                 "-device", f"virtio-blk-device,drive=extra{i}"]
    argv += ["-drive", f"if=none,file={card},format=raw,id=card",
             "-device", "virtio-blk-device,drive=card"]
    if mac is not None:
        argv += ["-netdev", "tap,id=net0,ifname=tap0,script=no,downscript=no",
                 "-device", f"virtio-net-device,netdev=net0,mac={mac}"]
    else:
        argv += ["-nic", "none"]
    return argv
