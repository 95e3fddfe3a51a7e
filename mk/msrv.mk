# protocol, runtime and agent declare rust-version = "1.88" (Buildroot
# 2026.02's rustc): build them with exactly that compiler, in a target dir
# of its own.
MSRV := 1.88
TEST_TARGETS += test-msrv

.PHONY: test-msrv
test-msrv:
	@rustup run $(MSRV) rustc --version >/dev/null 2>&1 || { \
	  echo "Rust $(MSRV) is not installed: rustup toolchain install $(MSRV) --profile minimal"; exit 1; }
	CARGO_TARGET_DIR=target/msrv $(CARGO) +$(MSRV) build --locked \
	  -p sipsensor-protocol -p sipsensor-runtime -p sipsensor-agent --all-features
