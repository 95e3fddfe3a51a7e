# Issue #15's benchmarks (gap-free data), printed and never asserted; the
# figures go to docs/benchmarks.md from runs on a quiet machine. Release
# agents and collector behind Kamailio, as the e2e scenarios run them
# (e2e/src/bin/sipsensor-bench-recovery).
#
#   make bench-recovery-spool              agent CPU/RSS with the spool vs without, 60 s
#   make bench-recovery-catch-up           one sensor's backfill of a 1-hour outage
#   make bench-recovery-catch-up OUTAGE_SECONDS=600
#   make bench-collector-backfill          the collector at 10,000 streams while
#                                          1,000 of them backfill at once (loadgen)

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

# The collector at 10,000 streams while the last 1,000 of them backfill an
# hour each at once (loadgen --backfill-sensors): live loss and CPU.
#   make bench-collector-backfill BACKFILL_BENCH="1000:3600" SIPSENSOR_BENCH_SECONDS=60
BACKFILL_BENCH ?= 1000:3600
.PHONY: bench-collector-backfill
bench-collector-backfill:
	SIPSENSOR_BENCH_SENSORS=$${SIPSENSOR_BENCH_SENSORS:-10000} \
	SIPSENSOR_BENCH_BACKENDS=$${SIPSENSOR_BENCH_BACKENDS:-sqlite} \
	SIPSENSOR_BENCH_SECONDS=$${SIPSENSOR_BENCH_SECONDS:-60} \
	SIPSENSOR_BENCH_BACKFILL=$(BACKFILL_BENCH) CARGO="$(CARGO)" bash loadgen/bench-collector.sh
