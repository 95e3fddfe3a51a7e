# Documentation checks that are not Rust tests: the proxy configurations in
# deploy/ against docs/deploy-kamailio.md and docs/deploy-opensips.md
# (tests/docs, about a second). The config reference and troubleshooting
# checks are Rust tests (agent/tests/docs.rs, agent/tests/troubleshooting.rs,
# collector/tests/config_docs.rs) and run with the crates' tests.
TEST_TARGETS += test-docs

.PHONY: test-docs
test-docs:
	python3 -m unittest discover -s tests/docs -v
