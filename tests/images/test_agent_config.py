"""The configuration files the images ship load in the agent.

`sipsensor-agent check-config` validates the image's agent.yaml (and each
board's) together with the technician template from the boot partition,
in the order the init script passes them. Skipped, with a notice, while the
agent in this tree has no check-config subcommand yet.
"""

import os
import unittest

from common import IMAGES, ROOT, run

CONFIGS = [
    IMAGES / "rootfs-overlay/etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/beagleboard/beaglebone/rootfs-overlay/etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/raspberrypi/raspberrypi4-64/rootfs-overlay/etc/sipsensor/agent.yaml",
]
OVERRIDE = IMAGES / "boot" / "sipsensor.yaml"


class CheckConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cargo = os.environ.get("CARGO", "cargo")
        run([cargo, "build", "--locked", "-q", "-p", "sipsensor-agent"], cwd=ROOT, timeout=1200)
        cls.agent = ROOT / "target" / "debug" / "sipsensor-agent"
        help_text = run([cls.agent, "--help"], check=False)
        if "check-config" not in help_text.stdout + help_text.stderr:
            raise unittest.SkipTest("the agent has no check-config subcommand yet")

    def test_image_configs_with_the_boot_override(self):
        for config in CONFIGS:
            with self.subTest(config=str(config.relative_to(ROOT))):
                result = run([self.agent, "check-config", config, OVERRIDE], check=False)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
