# Fuzzing the network parsers with cargo-fuzz (libFuzzer). Not part of
# `make test`: there, protocol/tests/fuzz_corpus.rs replays every
# fuzz/corpus/<target>/ file through the same harness on stable.
#
# Needs the nightly toolchain (`rustup toolchain install nightly`; cargo-fuzz
# passes -Zsanitizer and sancov flags only nightly accepts) and
# `cargo install cargo-fuzz` (a stable build from crates.io is fine).
#   make fuzz FUZZ_TARGET=sip_inspect                  # 10 million runs
#   make fuzz FUZZ_TARGET=registrar FUZZ_RUNS=100000   # a quick look
#   make fuzz-cmin FUZZ_TARGET=sip_uri                 # keep what it found
# Targets: sip_inspect sdp_parse rtp_parse rtcp_parse payload_parse sip_uri
# stream_framer sip_response registrar user_agent srtp_unprotect
# (fuzz/Cargo.toml, docs/protocol-sip.md).
#
# How it is run here (docs/protocol-sip.md, "Fuzzing", has the counts):
# - `-s none`: no AddressSanitizer. The protocol crate and the harnesses
#   have no `unsafe`, so ASan finds nothing Rust's checks miss, and it
#   halves the rate. cargo-fuzz's default build keeps optimisations and
#   turns on debug assertions and overflow checks.
# - `nice -n 19`, one process: the machines this runs on are shared.
# - New inputs go to fuzz/corpus-work/<target>/ (git-ignored); the corpus
#   in fuzz/corpus/<target>/ is read, not written. Only fuzz-cmin's
#   edge-covering set and fixed crashers from fuzz/artifacts/ go into
#   fuzz/corpus/<target>/.
FUZZ_TARGET ?= sip_inspect
FUZZ_RUNS ?= 10000000
# The SIP targets share the SIP dictionary (tokens, header names, params).
SIP_FUZZ_TARGETS = sip_inspect sip_response registrar stream_framer user_agent
FUZZ_DICT = $(if $(filter $(FUZZ_TARGET),$(SIP_FUZZ_TARGETS)),-dict=sip_inspect.dict)
# The framer's harness limit is 512 bytes a message: longer inputs only
# overrun its backlog, and each costs a byte-by-byte pass.
FUZZ_MAX_LEN = $(if $(filter stream_framer,$(FUZZ_TARGET)),-max_len=1100)

.PHONY: fuzz fuzz-cmin
fuzz:
	cd fuzz && mkdir -p corpus-work/$(FUZZ_TARGET) && \
	  nice -n 19 $(CARGO) +nightly fuzz run -s none $(FUZZ_TARGET) \
	  corpus-work/$(FUZZ_TARGET) corpus/$(FUZZ_TARGET) -- \
	  -runs=$(FUZZ_RUNS) -print_final_stats=1 $(FUZZ_DICT) $(FUZZ_MAX_LEN)

# Adds to fuzz/corpus/<target>/ the inputs of corpus-work/<target>/ that
# reach an edge the corpus does not yet reach (edges only, not hit counts:
# a few dozen to a few hundred small files, not the megabytes of
# corpus-work). Commit what it adds.
fuzz-cmin:
	cd fuzz && nice -n 19 $(CARGO) +nightly fuzz run -s none $(FUZZ_TARGET) \
	  corpus/$(FUZZ_TARGET) corpus-work/$(FUZZ_TARGET) -- \
	  -set_cover_merge=1 -use_counters=0
