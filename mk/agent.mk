# The agent's real-time sender, measured (not part of `make test`: the
# figures are printed and recorded in docs/benchmarks.md, never asserted).
#
#   make bench-agent                      4 cases × 20 s, about 90 s in all
#   make bench-agent BENCH_SECONDS=60     longer cases
#   make bench-agent BENCH_ARGS="--mlock all --dump /tmp/series"
#   make bench-agent-srtp                 plain against SRTP, 2 cases × 3
#   make bench-agent-daemon               the whole daemon, TLS+SRTP against
#                                         UDP+plain side by side, 60 s
#
# Root (or CAP_SYS_NICE) for the SCHED_FIFO cases; `setpriv` (util-linux)
# runs the normal-priority cases without CAP_SYS_NICE.

BENCH_SECONDS ?= 20
BENCH_ARGS ?=

.PHONY: bench-agent
bench-agent:
	$(CARGO) build --release --locked -p sipsensor-agent --features bench --bin sipsensor-bench
	$(or $(CARGO_TARGET_DIR),target)/release/sipsensor-bench bench --seconds $(BENCH_SECONDS) $(BENCH_ARGS)

# The same sender plain and under each SRTP suite, side by side in one run
# (issue 14: TLS+SRTP at most 1.2× the plain CPU). Per packet SRTP only:
# the bench's sender has no SIP stack, so TLS keep-alives are not in it.
SRTP_MEDIA = plain,AES_CM_128_HMAC_SHA1_80,AEAD_AES_128_GCM

.PHONY: bench-agent-srtp
bench-agent-srtp:
	$(CARGO) build --release --locked -p sipsensor-agent --features bench --bin sipsensor-bench
	$(or $(CARGO_TARGET_DIR),target)/release/sipsensor-bench bench --seconds $(BENCH_SECONDS) \
		--cases normal-idle,fifo-idle --media $(SRTP_MEDIA) $(BENCH_ARGS)

# The whole daemon (SIP stack, TLS keep-alives, sampler, spool, sender):
# two release agents, one over TLS+SRTP and one over UDP+plain, against one
# release collector, side by side (agent/bench-daemon.sh; needs curl, jq).
BENCH_DAEMON_SECONDS ?= 60

.PHONY: bench-agent-daemon
bench-agent-daemon:
	CARGO="$(CARGO)" SIPSENSOR_BENCH_SECONDS=$(BENCH_DAEMON_SECONDS) bash agent/bench-daemon.sh
