# End-to-end system tests (issue 5, e2e/): the real agent and collector
# binaries with Kamailio, baresip, PostgreSQL 15 and tshark on loopback,
# one test file per scenario (e2e/tests/sNN_*.rs). Needs the packages of
# .ci/apt/e2e.txt; a missing one skips a test, or fails it with
# SIPSENSOR_CI=1.
#
# They run here, after the binaries they start are built; test-rust (which
# runs the whole workspace) only builds them and says they are deferred.
# One scenario by hand:
#   cargo build -p sipsensor-agent -p sipsensor-collector -p sipsensor-loadgen --bins
#   cargo test -p sipsensor-e2e --test s01_register_and_stream
#
# The scenarios run in E2E_LANES parallel lanes (e2e/run-lanes): those of
# issue #15 mostly wait (a collector down for a minute, a network cut for
# five), so the longest go first, beside the others.

TEST_TARGETS += test-e2e
E2E_LANES ?= 2

.PHONY: test-e2e
test-rust: export SIPSENSOR_E2E_DEFERRED = test-e2e

test-e2e:
	$(CARGO) build --locked -p sipsensor-agent -p sipsensor-collector -p sipsensor-loadgen --bins
	@start=$$(date +%s); \
	$(CARGO) test --locked -p sipsensor-e2e --no-run --message-format=json \
		| e2e/run-lanes $(E2E_LANES); status=$$?; \
	echo "test-e2e: $$(( $$(date +%s) - start )) s in $(E2E_LANES) lanes"; \
	exit $$status
