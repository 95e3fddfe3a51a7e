"""The sensor's LAN behind a NAT, as in the field (issue #16, boot tests).

The guest's tap device sits in a namespace of its own, the sensor's LAN
(LAN_SUBNET, private addresses that exist only inside it), which is also
the NAT box: a veth pair joins it to the peers' namespace (Netns, where
Kamailio and the collector run on HOST_IP) with NAT_PUBLIC_IP on the
peers' side, and nftables masquerades what leaves through it. Nothing is
forwarded inwards: the forward chain passes new connections from the LAN
only, replies by conntrack state, so the guest is reachable only on the
flows it opened itself (its TLS flow to Kamailio, RFC 5626). The SIP
conntrack helper (the "SIP ALG") is never attached (no `ct helper` rule;
the kernel assigns none by itself), and the SIP runs over TLS anyway.
"""

import re

from common import require_tool, run
from netns import HOST_IP, SUBNET_PREFIX, TAP, Netns

LAN_PREFIX = "10.77.0"
LAN_SUBNET = f"{LAN_PREFIX}.0/24"
LAN_ROUTER_IP = f"{LAN_PREFIX}.1"
LAN_GUEST_IP = f"{LAN_PREFIX}.10"
# The NAT's address on the peers' network: the "public" address every
# packet of the guest's arrives from.
NAT_PUBLIC_IP = f"{SUBNET_PREFIX}.2"
WAN_PEERS = "wan0"
WAN_NAT = "wan1"

_RULES = f"""\
table ip sipsensor_nat {{
  counter tcp_in {{ }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{WAN_NAT}" masquerade
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname "{WAN_NAT}" ip protocol tcp counter name "tcp_in"
    ct state established,related accept
    iifname "{TAP}" oifname "{WAN_NAT}" accept
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{WAN_NAT}" ct state new drop
  }}
}}
"""


class SensorLan(Netns):
    """The namespace of the guest's tap (LAN_ROUTER_IP on it, DHCP with
    `start_dhcp(ip=LAN_GUEST_IP)`) behind a masquerading NAT to PEERS (a
    Netns made with `tap=False`), whose end of the veth gets HOST_IP.
    Closed (deleted) by `close()`, like PEERS; deleting either removes
    the veth pair."""

    def __init__(self, peers: Netns):
        nft = require_tool("nft", "nftables")
        super().__init__(peers.dir, peers.procs, address=f"{LAN_ROUTER_IP}/24")
        self.peers = peers
        run(["ip", "link", "add", WAN_PEERS, "netns", peers.name, "type", "veth",
             "peer", "name", WAN_NAT, "netns", self.name])
        peers.run(["ip", "addr", "add", f"{HOST_IP}/24", "dev", WAN_PEERS])
        peers.run(["ip", "link", "set", WAN_PEERS, "up"])
        self.run(["ip", "addr", "add", f"{NAT_PUBLIC_IP}/24", "dev", WAN_NAT])
        self.run(["ip", "link", "set", WAN_NAT, "up"])
        self.run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        self.run([nft, "-f", "-"], input=_RULES)

    def tcp_bytes_in(self, reset=False):
        """Bytes of TCP the NAT has let into the LAN (IP packets, headers
        included) since it started or the last reset: what the guest
        downloaded, give or take its SIP flow."""
        nft = require_tool("nft", "nftables")
        verb = "reset" if reset else "list"
        out = self.run([nft, verb, "counter", "ip", "sipsensor_nat", "tcp_in"]).stdout
        m = re.search(r"bytes (\d+)", out)
        if m is None:
            raise AssertionError(f"nft {verb} counter: {out}")
        return int(m.group(1))

    def start_dhcp(self, mac=None, ip=LAN_GUEST_IP):
        return super().start_dhcp(**({"mac": mac} if mac else {}), ip=ip)


_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as e:
    print(type(e).__name__, e)
    sys.exit(1)
"""


def can_connect(netns, ip, port, timeout=3.0):
    """Whether a TCP connection from NETNS to IP:PORT is accepted."""
    result = netns.run(["python3", "-c", _CONNECT, ip, str(port), str(timeout)],
                       timeout=timeout + 30, check=False)
    return result.returncode == 0


def routed_to_lan(peers):
    """Route the LAN's private subnet through the NAT's public address in
    PEERS, as an attacker on the NAT's outside would (without it the
    private address is simply unknown there): what stops a connection
    then is the NAT's forward chain, not a missing route."""
    peers.run(["ip", "route", "replace", LAN_SUBNET, "via", NAT_PUBLIC_IP])
