"""images/rauc/boot-slot-hook, the boot slot's post-install hook, against
fakes of mount and umount (no root, no vfat driver): each half of the boot
region is a directory named by its byte offset on the card.

RAUC runs the hook after writing the new boot partition into the free half
and before moving p1's MBR entry there; the hook must copy the technician's
files from the running half (found from RAUC's variables, not from p1) into
the new one, leave the running half alone, and fail (so that RAUC never
switches) when it cannot.
"""

import os
import shutil
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, fake_commands, layout, run, size_bytes

HOOK = IMAGES / "rauc" / "boot-slot-hook"
CARD = "/dev/disk/sipsensor-card"
TECHNICIAN = {"sipsensor.yaml": "identity:\n  aor: sip:sensor-7@example.org\n",
              "bootenv.txt": "overlays=sipsensor-bme280\n",
              "ca.pem": "-----BEGIN CERTIFICATE-----\nsite\n-----END CERTIFICATE-----\n"}


class BootSlotHook(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir)
        lay = layout()
        self.start = size_bytes(lay["SIPSENSOR_BOOT_OFFSET"])
        self.half = size_bytes(lay["SIPSENSOR_BOOT_SIZE"])
        self.halves = self.dir / "halves"
        self.log = self.dir / "mounts"
        bin_dir = self.dir / "bin"
        bin_dir.mkdir()
        # mount -t vfat -o OPTIONS DEVICE TARGET: TARGET becomes a link to
        # the half at offset= of OPTIONS (a read-only one made so). Like
        # util-linux, a loop device overlapping one already set up on the
        # same device is refused (without sizelimit= it runs to the end).
        fake_commands(bin_dir, {
            "mount": f"""set -eu
opts=$4; dev=$5; target=$6
echo "$dev $opts" >> {self.log}
off=$(echo "$opts" | tr , '\\n' | sed -n 's/^offset=//p')
limit=$(echo "$opts" | tr , '\\n' | sed -n 's/^sizelimit=//p')
end=$((off + ${{limit:-{1 << 40}}}))
while read -r s e; do
    if [ "$off" -lt "$e" ] && [ "$s" -lt "$end" ]; then
        echo "mount: overlapping loop device exists for $dev" >&2; exit 32
    fi
done < {self.dir}/loops
echo "$off $end" >> {self.dir}/loops
[ -d "{self.halves}/$off" ] || {{ echo "mount: wrong fs type on $dev at $off" >&2; exit 32; }}
case ,$opts, in *,ro,*) chmod -R a-w "{self.halves}/$off" ;; esac
rmdir "$target" && ln -s "{self.halves}/$off" "$target"
""",
            "umount": f'''if [ ! -L "$1" ]; then exit 32; fi
off=$(basename "$(readlink "$1")")
grep -v "^$off " {self.dir}/loops > {self.dir}/loops.new || :
mv {self.dir}/loops.new {self.dir}/loops
rm "$1" && mkdir "$1"''',
        })
        (self.dir / "loops").write_text("")
        self.env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}",
                        TMPDIR=str(self.dir), RAUC_SLOT_CLASS="boot", RAUC_SLOT_DEVICE=CARD,
                        RAUC_BOOT_PARTITION_SIZE=str(self.half))

    def half_dir(self, index, files):
        path = self.halves / str(self.start + index * self.half)
        path.mkdir(parents=True)
        for name, text in files.items():
            (path / name).write_text(text)
        return path

    def run_hook(self, activating, *args):
        env = dict(self.env, RAUC_BOOT_PARTITION_ACTIVATING=str(activating),
                   RAUC_BOOT_PARTITION_START=str(self.start + activating * self.half))
        return run([HOOK, *(args or ["slot-post-install"])], env=env, check=False)

    def make_writable(self):
        for path in self.halves.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.halves.chmod(0o755)

    def test_technician_files_are_copied_into_the_new_half_either_way(self):
        for running, new in ((0, 1), (1, 0)):
            with self.subTest(running=running):
                shutil.rmtree(self.halves, ignore_errors=True)
                self.log.write_text("")
                (self.dir / "loops").write_text("")
                old = self.half_dir(running, {**TECHNICIAN, "boot.scr": "old script\n"})
                fresh = self.half_dir(new, {"boot.scr": "new script\n",
                                            "bootenv.txt": "# the image's default\n",
                                            "sipsensor.yaml": "# template\n"})
                result = self.run_hook(new)
                self.make_writable()
                self.assertEqual(result.returncode, 0, result.stderr)
                for name, text in TECHNICIAN.items():
                    self.assertEqual((fresh / name).read_text(), text, name)
                    self.assertIn(f"kept {name}", result.stdout)
                # The new boot script stays; the running half is untouched.
                self.assertEqual((fresh / "boot.scr").read_text(), "new script\n")
                self.assertEqual((old / "boot.scr").read_text(), "old script\n")
                self.assertNotIn("kept config.txt", result.stdout)
                mounts = self.log.read_text().splitlines()
                self.assertIn(f"{CARD} ro,loop,offset={self.start + running * self.half},"
                              f"sizelimit={self.half}", mounts)
                self.assertIn(f"{CARD} loop,offset={self.start + new * self.half},"
                              f"sizelimit={self.half}", mounts)
                self.assertEqual(sorted(p.name for p in self.dir.glob("sipsensor-boot-slot.*")), [],
                                 "the hook left its scratch directory")

    def test_an_unreadable_new_half_fails_so_rauc_does_not_switch(self):
        self.half_dir(0, TECHNICIAN)
        result = self.run_hook(1)
        self.make_writable()
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("wrong fs type", result.stderr)

    def test_an_unknown_half_is_refused(self):
        env = dict(self.env, RAUC_BOOT_PARTITION_ACTIVATING="2",
                   RAUC_BOOT_PARTITION_START=str(self.start))
        result = run([HOOK, "slot-post-install"], env=env, check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("not 0 or 1", result.stderr)
        self.assertFalse(self.log.exists() and self.log.read_text(), "mounted something")

    def test_other_hooks_and_slots_do_nothing(self):
        self.half_dir(0, TECHNICIAN)
        for args, slot_class in ((["slot-pre-install"], "boot"), (["slot-post-install"], "rootfs")):
            with self.subTest(args=args, slot_class=slot_class):
                self.env["RAUC_SLOT_CLASS"] = slot_class
                result = self.run_hook(1, *args)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertFalse(self.log.exists() and self.log.read_text(), "mounted something")


if __name__ == "__main__":
    unittest.main()
