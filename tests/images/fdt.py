"""A reader for flattened device-tree blobs (DTB/DTBO), enough for the tests.

The format (devicetree specification, chapter 5): a header, a structure
block of tokens (BEGIN_NODE name, PROP len nameoff value, END_NODE, NOP,
END) and a strings block with the property names. dtc/fdtget could answer
each question with one process per property; reading the blob once is
faster and lets the tests follow phandles.
"""

import struct

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE, FDT_END_NODE, FDT_PROP, FDT_NOP, FDT_END = 1, 2, 3, 4, 9


class FdtError(Exception):
    """The blob is not a well-formed flattened device tree."""


class Node:
    def __init__(self, path):
        self.path = path
        self.props = {}
        self.children = {}

    def cells(self, name):
        """Property as big-endian 32-bit cells."""
        raw = self.props[name]
        if len(raw) % 4:
            raise FdtError(f"{self.path}:{name} is not a cell list")
        return list(struct.unpack(f">{len(raw) // 4}I", raw))

    def strings(self, name):
        """Property as a list of NUL-terminated strings."""
        raw = self.props[name]
        return raw.rstrip(b"\0").decode().split("\0") if raw else []

    def string(self, name):
        return self.strings(name)[0]


class Fdt:
    def __init__(self, data):
        if len(data) < 40:
            raise FdtError("too short for a header")
        (magic, totalsize, off_struct, off_strings, _off_rsv, _version, _last,
         _boot_cpu, size_strings, size_struct) = struct.unpack(">10I", data[:40])
        if magic != FDT_MAGIC or totalsize > len(data):
            raise FdtError("bad magic or size")
        self._strings = data[off_strings:off_strings + size_strings]
        self.root = self._parse(data[off_struct:off_struct + size_struct])
        self.nodes = {}
        self._index(self.root)

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls(f.read())

    def _name(self, off):
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode()

    def _parse(self, blob):
        pos = 0
        stack = []
        root = None
        while pos + 4 <= len(blob):
            (token,) = struct.unpack(">I", blob[pos:pos + 4])
            pos += 4
            if token == FDT_BEGIN_NODE:
                end = blob.index(b"\0", pos)
                name = blob[pos:end].decode()
                pos = (end + 4) & ~3
                if stack:
                    parent = stack[-1]
                    path = (parent.path.rstrip("/") + "/" + name)
                    node = Node(path)
                    parent.children[name] = node
                else:
                    node = root = Node("/")
                stack.append(node)
            elif token == FDT_END_NODE:
                stack.pop()
            elif token == FDT_PROP:
                length, nameoff = struct.unpack(">II", blob[pos:pos + 8])
                pos += 8
                stack[-1].props[self._name(nameoff)] = blob[pos:pos + length]
                pos = (pos + length + 3) & ~3
            elif token == FDT_NOP:
                continue
            elif token == FDT_END:
                break
            else:
                raise FdtError(f"unknown token {token:#x}")
        if root is None or stack:
            raise FdtError("unbalanced structure block")
        return root

    def _index(self, node):
        self.nodes[node.path] = node
        for child in node.children.values():
            self._index(child)

    def node(self, path):
        return self.nodes[path]

    def by_phandle(self, phandle):
        for node in self.nodes.values():
            if "phandle" in node.props and node.cells("phandle")[0] == phandle:
                return node
        raise KeyError(f"no node with phandle {phandle:#x}")

    def symbols(self):
        sym = self.nodes.get("/__symbols__")
        if sym is None:
            return {}
        return {name: sym.string(name) for name in sym.props}
