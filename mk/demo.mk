# make demo: a collector with its embedded registrar and simulated sensors
# on 127.0.0.1, over SIP/TLS and SRTP with a throw-away CA; prints the
# page's address and live values; Ctrl-C stops it.
# Debug builds: they compile in a fraction of the release (LTO) time and
# three sensors at 10 Hz need no optimiser.
DEMO_SENSORS ?= 3
DEMO_HTTP_PORT ?= 8080
TEST_TARGETS += test-demo

.PHONY: demo test-demo demo-build
demo-build:
	$(CARGO) build --locked -p sipsensor-agent -p sipsensor-collector -p sipsensor-loadgen

demo: demo-build
	./target/debug/sipsensor-demo --sensors $(DEMO_SENSORS) --http-port $(DEMO_HTTP_PORT)

## The demo itself, for 8 s: every sensor must be streaming by the end,
## over TLS and SRTP (the collector names its TLS listener; the demo fails
## on any clear-text warning in a log).
test-demo: demo-build
	./target/debug/sipsensor-demo --sensors 3 --http-port 0 --seconds 8 | tee target/demo.out
	grep -q '^ 3/3 streaming over TLS+SRTP' target/demo.out
	grep -q '^  collector: *SIP over TLS on 127.0.0.1:' target/demo.out
	grep -q '^stopped' target/demo.out
