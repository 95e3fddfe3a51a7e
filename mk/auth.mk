# Digest authentication, registration client and registrar (protocol crate,
# sip::digest / sip::registration / sip::registrar). Unit tests on a virtual
# clock; no network, no external tools. About 0.2 s once built.
.PHONY: test-auth
# Not in TEST_TARGETS: test-rust runs these with the whole workspace.

test-auth:
	$(CARGO) test -p sipsensor-protocol --lib --locked -- sip::digest sip::registrar sip::registration
