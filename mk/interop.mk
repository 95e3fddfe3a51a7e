# SIP transport sockets (protocol feature `tokio`) and interop with a real
# Kamailio running deploy/kamailio/kamailio.cfg, driven by SIPp and our own
# transport, every exchange captured by tshark and checked for malformed
# packets. Needs kamailio, sip-tester, tshark (.ci/apt/interop.txt); the
# tests skip without them unless SIPSENSOR_CI=1.
# The harness's own tests (tests/harness) run in test-rust with the workspace.

TEST_TARGETS += test-interop

.PHONY: test-interop lint-interop
lint-interop:
	$(CARGO) clippy --locked -p sipsensor-protocol --features tokio --all-targets -- -D warnings

test-interop: lint-interop
	$(CARGO) test --locked -p sipsensor-protocol --features tokio --lib sip::transport::net
	$(CARGO) test --locked -p sipsensor-protocol --features tokio --test kamailio_interop
