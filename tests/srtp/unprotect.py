#!/usr/bin/env python3
"""Unprotect SRTP and SRTCP packets with libsrtp (pylibsrtp), independently
of the Rust code that protected them (agent/tests/srtp_libsrtp.rs).

Reads JSON on stdin: {"suite": <a=crypto suite>, "key": <inline key||salt,
base64>, "rtp": [hex...], "rtcp": [hex...]}; writes the plaintexts in the
same shape to stdout. Any packet that fails authentication (or a replay)
ends the run with exit status 1 and the reason on stderr.
"""

import base64
import json
import sys

import pylibsrtp

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
}


def main():
    request = json.load(sys.stdin)
    policy = pylibsrtp.Policy(
        key=base64.b64decode(request["key"], validate=True),
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=PROFILES[request["suite"]],
    )
    session = pylibsrtp.Session(policy=policy)
    try:
        rtp = [session.unprotect(bytes.fromhex(p)).hex() for p in request["rtp"]]
        rtcp = [session.unprotect_rtcp(bytes.fromhex(p)).hex() for p in request["rtcp"]]
    except pylibsrtp.Error as e:
        print(f"libsrtp refused a packet: {e}", file=sys.stderr)
        return 1
    json.dump({"rtp": rtp, "rtcp": rtcp}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
