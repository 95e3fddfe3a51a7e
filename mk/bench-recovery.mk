# Issue #15's benchmarks (gap-free data), printed and never asserted; the
# figures go to docs/benchmarks.md from runs on a quiet machine. Release
# agents and collector behind Kamailio, as the e2e scenarios run them
# (e2e/src/bin/sipsensor-bench-recovery).
#
#   make bench-recovery-spool              agent CPU/RSS with the spool vs without, 60 s
#   make bench-recovery-catch-up           one sensor's backfill of a 1-hour outage
#   make bench-recovery-catch-up OUTAGE_SECONDS=600

SPOOL_BENCH_SECONDS ?= 60
OUTAGE_SECONDS ?= 3600
RECOVERY_BENCH = $(or $(CARGO_TARGET_DIR),target)/release/sipsensor-bench-recovery

.PHONY: bench-recovery-build bench-recovery-spool bench-recovery-catch-up
bench-recovery-build:
	$(CARGO) build --release --locked -p sipsensor-agent -p sipsensor-collector -p sipsensor-e2e --bins

bench-recovery-spool: bench-recovery-build
	SIPSENSOR_BIN_DIR=$(dir $(RECOVERY_BENCH)) $(RECOVERY_BENCH) spool-cost --seconds $(SPOOL_BENCH_SECONDS)

bench-recovery-catch-up: bench-recovery-build
	SIPSENSOR_BIN_DIR=$(dir $(RECOVERY_BENCH)) $(RECOVERY_BENCH) catch-up --outage-seconds $(OUTAGE_SECONDS)
