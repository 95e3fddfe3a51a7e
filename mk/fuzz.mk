# Fuzzing the protocol parsers with cargo-fuzz (needs a nightly toolchain
# and `cargo install cargo-fuzz`). Not part of `make test`: there,
# protocol/tests/fuzz_corpus.rs replays every fuzz/corpus/<target>/ file.
#   make fuzz FUZZ_TARGET=sip_inspect FUZZ_SECONDS=120
# New inputs go to fuzz/corpus-work/ (git-ignored); copy a fixed crasher
# from fuzz/artifacts/ into fuzz/corpus/<target>/.
FUZZ_TARGET ?= sip_inspect
FUZZ_SECONDS ?= 120

.PHONY: fuzz
fuzz:
	cd fuzz && mkdir -p corpus-work && \
	  $(CARGO) +nightly fuzz run $(FUZZ_TARGET) corpus-work corpus/$(FUZZ_TARGET) -- \
	  -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	  $(if $(wildcard fuzz/$(FUZZ_TARGET).dict),-dict=$(FUZZ_TARGET).dict)
