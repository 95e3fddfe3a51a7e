# The collector under load (issue 4 "Scale"): N simulated sensors from
# sipsensor-loadgen register, call and stream 3 channels at 10 packets/s
# against a release collector, for SQLite and a throw-away PostgreSQL.
# Prints a markdown table (docs/benchmarks.md, "collector"). Not part of
# `make test`: it takes about 15 minutes with the defaults.
#   make bench-collector SIPSENSOR_BENCH_SENSORS="100 1000" SIPSENSOR_BENCH_SECONDS=10
# SIPSENSOR_BENCH_SRTP=1 signals over TLS and streams SRTP (a throw-away CA,
# a TLS connection per sensor); =both runs plain then SRTP for each N.
#   make bench-collector SIPSENSOR_BENCH_SRTP=both SIPSENSOR_BENCH_BACKENDS=sqlite SIPSENSOR_BENCH_SENSORS=10000 SIPSENSOR_BENCH_SECONDS=60
.PHONY: bench-collector bench-collector-rx
bench-collector:
	CARGO="$(CARGO)" bash loadgen/bench-collector.sh

## The receive loop alone: one shared socket with recvmmsg, one with
## recv_from, or a socket per session on tokio (docs/benchmarks.md).
bench-collector-rx:
	$(CARGO) bench -p sipsensor-collector --bench media_rx --locked
