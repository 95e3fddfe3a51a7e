# The commands a person runs. Each area adds its own targets in mk/*.mk and
# hooks them into `test` through TEST_TARGETS.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

TEST_TARGETS := test-rust

include $(sort $(wildcard mk/*.mk))

.PHONY: help test test-rust lint demo
help:
	@echo "make demo    start a collector and simulated sensors on this machine"
	@echo "make test    every test of the project (what CI runs)"
	@echo "make cross   release agent binaries for armv7 and aarch64"

## Everything CI runs. Order: cheap and broad first.
test: lint $(TEST_TARGETS)
	@echo "make test: all test groups passed: $(TEST_TARGETS)"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features --locked -- -D warnings

# The collector's tests need its page-test npm packages: test-collector
# (mk/collector.mk) runs them after installing those.
test-rust:
	$(CARGO) test --workspace --all-features --locked --exclude sipsensor-collector
