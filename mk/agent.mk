# The agent's real-time sender, measured (not part of `make test`: the
# figures are printed and recorded in docs/benchmarks.md, never asserted).
#
#   make bench-agent                      4 cases × 20 s, about 90 s in all
#   make bench-agent BENCH_SECONDS=60     longer cases
#   make bench-agent BENCH_ARGS="--mlock all --dump /tmp/series"
#
# Root (or CAP_SYS_NICE) for the SCHED_FIFO cases; `setpriv` (util-linux)
# runs the normal-priority cases without CAP_SYS_NICE.

BENCH_SECONDS ?= 20
BENCH_ARGS ?=

.PHONY: bench-agent
bench-agent:
	$(CARGO) build --release --locked -p sipsensor-agent --features bench --bin sipsensor-bench
	$(or $(CARGO_TARGET_DIR),target)/release/sipsensor-bench bench --seconds $(BENCH_SECONDS) $(BENCH_ARGS)
