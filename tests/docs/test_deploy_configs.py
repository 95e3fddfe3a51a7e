"""The proxy configurations in deploy/ against their documentation.

OpenSIPS is not packaged in Debian 12, so deploy/opensips/opensips.cfg cannot
be run here: these tests check its structure instead (routes, modules,
functions, flags, placeholders, db_text tables). The Kamailio configuration
runs in the interop tests; here its documented defines, files and registrar
limits are compared with the file, and `kamailio -c` checks its syntax.

Run: python3 -m unittest discover -s tests/docs -v   (make test-docs)
"""

import os
import re
import shutil
import subprocess
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(*path):
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


def strip_comments(cfg):
    """The script without `#` comments (outside strings) and /* */ blocks."""
    cfg = re.sub(r"/\*.*?\*/", "", cfg, flags=re.S)
    out = []
    for line in cfg.splitlines():
        in_str = False
        for i, c in enumerate(line):
            if c == '"':
                in_str = not in_str
            elif c == "#" and not in_str:
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def md_table(doc, first_header):
    """Rows (lists of cells) of the markdown table whose first header cell is
    `first_header`."""
    rows, in_table = [], False
    for line in doc.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_table:
            in_table = cells[0] == first_header
            continue
        if not line.startswith("|---"):
            rows.append(cells)
    return rows


# Where each function the OpenSIPS script may call comes from, per the
# OpenSIPS 3.4 module documentation. A function not listed here fails the
# test: a typo, or a module to add (with its documentation checked).
OPENSIPS_FUNCTIONS = {
    "core": {
        "force_rport", "is_myself", "setflag", "isflagset", "resetflag",
        "setbflag", "isbflagset", "resetbflag", "xlog", "route", "exit",
        "return", "drop",
    },
    "signaling": {"send_reply"},
    "sl": {"sl_send_reply", "sl_reply_error"},
    "tm": {
        "t_relay", "t_check_trans", "t_newtran", "t_reply", "t_on_failure",
        "t_on_reply", "t_on_branch", "t_check_status", "t_was_cancelled",
    },
    "rr": {"record_route", "loose_route", "add_rr_param", "check_route_param"},
    "maxfwd": {"mf_process_maxfwd_header"},
    "sipmsgops": {
        "has_totag", "is_method", "remove_hf", "append_hf", "sipmsg_validate",
    },
    "registrar": {"save", "lookup"},
    "auth": {"www_challenge", "proxy_challenge", "consume_credentials"},
    "auth_db": {"www_authorize", "proxy_authorize"},
    "nathelper": {"fix_nated_contact", "fix_nated_register", "nat_uac_test"},
    "dispatcher": {"ds_select_dst", "ds_next_dst", "ds_mark_dst"},
}
KEYWORDS = {"if", "else", "switch", "case", "while", "route", "exit", "return"}


class OpenSipsConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.raw = read("deploy", "opensips", "opensips.cfg")
        cls.cfg = strip_comments(cls.raw)
        cls.doc = read("docs", "deploy-opensips.md")
        cls.modules = set(re.findall(r'^loadmodule\s+"([a-z_0-9]+)\.so"', cls.cfg, re.M))
        # The routing part: everything from the first route block on.
        start = re.search(r"^route\s*\{", cls.cfg, re.M)
        assert start, "no main route block"
        cls.script = cls.cfg[start.start():]

    def test_braces_balance(self):
        depth = 0
        for c in re.sub(r'"(\\.|[^"\\])*"', '""', self.script):
            depth += {"{": 1, "}": -1}.get(c, 0)
            self.assertGreaterEqual(depth, 0, "a } closes nothing")
        self.assertEqual(depth, 0, "unclosed {")

    def test_every_route_used_is_defined_and_every_defined_route_is_used(self):
        kinds = {
            "route": r"\broute\((\w+)\)",
            "failure_route": r'\bt_on_failure\("(\w+)"\)',
            "onreply_route": r'\bt_on_reply\("(\w+)"\)',
            "branch_route": r'\bt_on_branch\("(\w+)"\)',
        }
        for kind, call in kinds.items():
            defined = re.findall(r"^%s\[(\w+)\]\s*\{" % kind, self.script, re.M)
            self.assertEqual(len(defined), len(set(defined)), f"{kind} defined twice")
            used = set(re.findall(call, self.script))
            self.assertEqual(
                used - set(defined), set(), f"{kind}s called but not defined"
            )
            self.assertEqual(
                set(defined) - used, set(), f"{kind}s defined but never used"
            )
        self.assertIn("registrar", re.findall(r"\broute\((\w+)\)", self.script))

    def test_every_function_belongs_to_a_loaded_module(self):
        owner = {f: m for m, fs in OPENSIPS_FUNCTIONS.items() for f in fs}
        body = re.sub(r'"(\\.|[^"\\])*"', '""', self.script)
        called = set(re.findall(r"\b([a-z_][a-z_0-9]*)\s*\(", body)) - KEYWORDS
        unknown = called - set(owner)
        self.assertEqual(unknown, set(), "functions of no known module")
        missing = {f: owner[f] for f in called if owner[f] not in self.modules | {"core"}}
        self.assertEqual(missing, {}, "functions whose module is not loaded")
        # Every loaded module is used: by a function, a modparam, a socket
        # (transports) or a db_url (database driver).
        used = {owner[f] for f in called}
        used |= set(re.findall(r'^modparam\("([a-z_0-9]+)"', self.cfg, re.M))
        used |= {"proto_" + p for p in re.findall(r"^socket=(\w+):", self.cfg, re.M)}
        if re.search(r'"text://', self.cfg):
            used.add("db_text")
        self.assertEqual(self.modules - used, set(), "modules loaded for nothing")

    def test_the_required_features_are_there(self):
        s = self.script
        for what, pattern in {
            "registrar": r'save\("location"\)',
            "location lookup": r'lookup\("location"',
            "digest for REGISTER": r'www_authorize\("[^"]*", "subscriber"\)',
            "digest for other requests": r'proxy_authorize\("[^"]*", "subscriber"\)',
            "record-route": r"record_route\(\)",
            "loose routing": r"loose_route\(\)",
            "dispatcher with failover": r'ds_select_dst\(1, 4, "f"\)',
            "failover to the next collector": r"ds_next_dst\(\)",
        }.items():
            self.assertRegex(s, pattern, what)
        # Media is not proxied: no RTP relay module, SDP left alone.
        for m in ("rtpproxy", "rtpengine", "mediaproxy"):
            self.assertNotIn(m, self.modules)
        self.assertNotIn("fix_nated_sdp", s)

    def test_modparams_name_loaded_modules(self):
        for m in re.findall(r'^modparam\("([a-z_0-9|]+)"', self.cfg, re.M):
            for part in m.split("|"):
                self.assertIn(part, self.modules, f"modparam for {part}")

    def test_flags_tested_are_set(self):
        s = self.cfg
        for kind in ("flag", "bflag"):
            tested = set(re.findall(r"\bis%sset\((\w+)\)" % kind, s))
            set_ = set(re.findall(r"\bset%s\((\w+)\)" % kind, s))
            self.assertTrue(tested, kind)
            # nat_bflag: usrloc sets NAT on branches of NATed contacts.
            if kind == "bflag":
                set_ |= set(re.findall(r'"nat_bflag", "(\w+)"', s))
            self.assertEqual(tested - set_, set(), f"{kind}s tested, never set")
        # Flags handed to modules by name are set by the script.
        for name in re.findall(r'"(?:tcp_persistent_flag|sipping_bflag)", "(\w+)"', s):
            self.assertRegex(s, r"\bset(b)?flag\(%s\)" % name)

    def test_placeholders_match_the_doc(self):
        in_cfg = set(re.findall(r"@([A-Z_]+)@", self.raw))
        rows = md_table(self.doc, "Placeholder")
        in_table = {r[0].strip("`").strip("@") for r in rows}
        self.assertEqual(in_cfg, in_table, "placeholders: cfg vs docs table")
        sed = set(re.findall(r"s\|@([A-Z_]+)@\|", self.doc))
        self.assertEqual(in_cfg, sed, "placeholders: cfg vs the doc's sed command")
        for r in rows:
            self.assertTrue(r[1] and r[2], r)

    def test_db_text_tables(self):
        db = os.path.join(ROOT, "deploy", "opensips", "db")
        tables = sorted(f for f in os.listdir(db) if f != "version")
        lines = read("deploy", "opensips", "db", "version").splitlines()
        self.assertTrue(lines[0].startswith("table_name(string) table_version(int)"))
        versioned = sorted(l.split(":")[0] for l in lines[1:] if l.strip())
        self.assertEqual(tables, versioned, "db/version lists every table")
        # The tables the modules read are shipped.
        self.assertIn("subscriber", tables)
        self.assertIn("dispatcher", tables)
        # The doc's example rows have as many columns as the tables.
        for table, section in (
            ("subscriber", "## Users"),
            ("dispatcher", "## Several collectors"),
        ):
            header = read("deploy", "opensips", "db", table).split()
            block = re.search(
                r"```\n(.*?)```", self.doc.split(section, 1)[1], re.S
            ).group(1)
            for row in block.strip().splitlines():
                fields = re.split(r"(?<!\\):", row)
                self.assertEqual(len(fields), len(header), f"{table} row {row!r}")

    def test_doc_names_every_loaded_module_and_says_it_is_untested(self):
        for m in self.modules:
            self.assertIn(f"`{m}`", self.doc, m)
        self.assertIn("not packaged in Debian 12", self.doc)
        self.assertIn("has **not been run** here", self.doc)


class KamailioConfig(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cfg = read("deploy", "kamailio", "kamailio.cfg")
        cls.doc = read("docs", "deploy-kamailio.md")

    def test_defines_table_matches_the_defaults(self):
        defaults = dict(
            re.findall(r"^#!ifndef (\w+)\n#!define \1 (.+)$", self.cfg, re.M)
        )
        switches = set(re.findall(r"^#!ifdef (\w+)$", self.cfg, re.M))
        code = {k: v.strip() for k, v in defaults.items()}
        for s in switches:
            code.setdefault(s, None)
        doc = {r[0].strip("`"): r[1] for r in md_table(self.doc, "Define")}
        self.assertEqual(set(doc), set(code), "defines: docs vs kamailio.cfg")
        for name, default in code.items():
            if default is None:
                self.assertIn(doc[name], ("none", "off"), name)
            else:
                self.assertEqual(doc[name].strip("`"), default, name)

    def test_files_table_lists_shipped_files(self):
        for row in md_table(self.doc, "File"):
            for path in re.findall(r"`([^`]+)`", row[0]):
                if not path.startswith("deploy/"):
                    path = "deploy/kamailio/" + path
                self.assertTrue(os.path.exists(os.path.join(ROOT, path)), path)

    def test_documented_limits_are_the_configured_ones(self):
        def param(module, name):
            m = re.search(r'^modparam\("%s", "%s", (\S+)\)' % (module, name), self.cfg, re.M)
            self.assertIsNotNone(m, f"{module} {name}")
            return m.group(1)

        self.assertEqual(param("registrar", "min_expires"), "60")
        self.assertEqual(param("registrar", "max_expires"), "3600")
        self.assertEqual(param("registrar", "default_expires"), "600")
        self.assertEqual(param("registrar", "max_contacts"), "10")
        self.assertIn("between 60 and 3600 s (600 by default", self.doc)
        self.assertIn("up to 10 contacts", self.doc)
        self.assertEqual(param("auth", "nonce_expire"), "300")
        self.assertIn("nonces live 300 s", self.doc)
        self.assertIn("tcp_connection_lifetime=610", self.cfg)
        self.assertIn("after 610 s of silence", self.doc)
        self.assertIn("t_set_fr(30000, 1000)", self.cfg)
        self.assertIn("within 1 s (not even\nwith `100 Trying`)", self.doc)

    def test_syntax(self):
        kamailio = shutil.which("kamailio") or (
            "/usr/sbin/kamailio" if os.path.exists("/usr/sbin/kamailio") else None
        )
        if kamailio is None:
            if os.environ.get("SIPSENSOR_CI") == "1":
                self.fail("kamailio is not installed (.ci/apt/interop.txt)")
            self.skipTest("kamailio is not installed")
        for extra in ([], ["-A", "WITH_DISPATCHER"]):
            r = subprocess.run(
                [kamailio, "-c", "-f", os.path.join(ROOT, "deploy/kamailio/kamailio.cfg")]
                + extra,
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
