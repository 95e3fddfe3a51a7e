# SIP interop against a real Kamailio (deploy/kamailio/kamailio.cfg), SIPp
# and our own user agent, every exchange captured by tshark and checked for
# malformed packets. Needs kamailio, sip-tester, tshark (.ci/apt/interop.txt);
# the tests skip without them unless SIPSENSOR_CI=1.
#
# They run in `make test` with the rest of the workspace (test-rust builds
# with --all-features); this target runs just them.

.PHONY: test-interop
test-interop:
	$(CARGO) test --locked -p sipsensor-runtime \
		--test kamailio_interop --test ua_through_kamailio
