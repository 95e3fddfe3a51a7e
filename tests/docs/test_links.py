"""README.md and docs/*.md: every relative link points to a file of the
repository, and every page in docs/ is reachable from the README."""

import glob
import os
import re
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def pages():
    return [os.path.join(ROOT, "README.md")] + sorted(
        glob.glob(os.path.join(ROOT, "docs", "*.md"))
    )


class Links(unittest.TestCase):
    def test_relative_links_resolve(self):
        checked = 0
        for page in pages():
            with open(page, encoding="utf-8") as f:
                text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
            for target in LINK.findall(text):
                if re.match(r"[a-z]+:", target) or target.startswith("#"):
                    continue
                path = target.split("#", 1)[0]
                full = os.path.normpath(os.path.join(os.path.dirname(page), path))
                self.assertTrue(
                    os.path.exists(full),
                    f"{os.path.relpath(page, ROOT)} links to missing {target}",
                )
                checked += 1
        self.assertGreater(checked, 20)

    def test_every_doc_is_linked_from_the_readme(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            linked = set(LINK.findall(f.read()))
        for page in glob.glob(os.path.join(ROOT, "docs", "*.md")):
            name = "docs/" + os.path.basename(page)
            self.assertIn(name, linked, f"README.md does not link {name}")

    def test_the_readme_starts_with_make_demo_then_make_test(self):
        with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
            text = f.read()
        first_block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
        commands = [l.split("#")[0].strip() for l in first_block.splitlines()]
        self.assertEqual(commands[:2], ["make demo", "make test"])


if __name__ == "__main__":
    unittest.main()
