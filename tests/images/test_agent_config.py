"""The configuration files the images ship load in the agent.

`sipsensor-agent check-config` (the agent of this tree) checks each image's
/etc/sipsensor/agent.yaml followed by the boot partition's sipsensor.yaml
template and a filled-in site file, in the order the image passes them:
unknown keys, wrong types or a template that does not parse fail here.
The image files alone are incomplete by design (the site's registrar and
sensors come from the boot partition), and the agent must say so.
"""

import os
import tempfile
import unittest
from pathlib import Path

from common import IMAGES, ROOT, require, run
from test_prepare_data import make_ca

CONFIGS = [
    IMAGES / "rootfs-overlay/etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/beagleboard/beaglebone/rootfs-overlay/etc/sipsensor/agent.yaml",
    ROOT / "buildroot-external/board/raspberrypi/raspberrypi4-64/rootfs-overlay/etc/sipsensor/agent.yaml",
]
TEMPLATE = IMAGES / "boot" / "sipsensor.yaml"
SITE = ROOT / "tests" / "images" / "fixtures" / "site.yaml"


class CheckConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cargo = os.environ.get("CARGO", "cargo")
        # The same selection as `make test-rust`, so that its build is reused.
        run([cargo, "build", "--workspace", "--all-features", "--bins", "--locked", "-q"],
            cwd=ROOT, timeout=1800)
        cls.agent = ROOT / "target" / "debug" / "sipsensor-agent"

    def check(self, *files):
        return run([self.agent, "check-config", *files], check=False)

    def test_image_configs_with_the_template_and_a_site_file(self):
        for config in CONFIGS:
            with self.subTest(config=str(config.relative_to(ROOT))):
                result = self.check(config, TEMPLATE, SITE)
                self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
                self.assertIn("identity: sip:sensor-0001@example.net", result.stdout)

    def test_the_templates_example_is_a_valid_tls_site(self):
        # The example the technician uncomments: SIP over TLS with no
        # inbound port, checked against a CA where the image's link
        # (/etc/sipsensor/ca.pem) would point.
        require("openssl", "openssl")
        text = TEMPLATE.read_text()
        example = text.split("# Example (remove the # signs and fill in):\n", 1)[1]
        lines = [line[2:] if line.startswith("# ") else line.lstrip("#")
                 for line in example.splitlines()]
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            make_ca(tmp, "site CA")
            (tmp / "example.yaml").write_text("\n".join(lines) + "\n")
            (tmp / "ca.yaml").write_text(f"sip:\n  ca_file: {tmp / 'site CA.pem'}\n")
            result = self.check(CONFIGS[0], tmp / "example.yaml", tmp / "ca.yaml")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("transport: tls", "\n".join(lines))

    def test_unconfigured_image_asks_for_the_site_settings(self):
        result = self.check(CONFIGS[0], TEMPLATE)
        self.assertEqual(result.returncode, 1)
        self.assertIn("identity.aor: missing", result.stderr)
        self.assertNotIn("unknown", result.stderr)


if __name__ == "__main__":
    unittest.main()
