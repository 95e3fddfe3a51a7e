# Cross builds of the agent with Debian's cross toolchains (linkers in
# .cargo/config.toml, packages in .ci/apt/cross.txt, Rust targets in
# .ci/setup.d/cross.sh).
#
#   make cross        release sipsensor-agent for armv7 and aarch64
#   make test-cross   (in `make test`) the armv7 build under qemu-arm-static:
#                     --version, check-config on every example, a short
#                     stream to 127.0.0.1 checked packet by packet, and the
#                     stripped binary's size (limit 4 MB)
#
# test-cross takes about 4 minutes on 2 busy cores, most of it the armv7
# release build (LTO); the emulated run itself takes seconds.

CROSS_TARGETS ?= armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu
CROSS_ARMV7 := armv7-unknown-linux-gnueabihf
CROSS_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
ARMV7_RELEASE := $(CROSS_TARGET_DIR)/$(CROSS_ARMV7)/release
QEMU_ARM ?= qemu-arm-static
ARMV7_SYSROOT := /usr/arm-linux-gnueabihf
# Emulated commands: the cross libc is the dynamic loader's root; each run
# is bounded.
QEMU_RUN := timeout 120 env QEMU_LD_PREFIX=$(ARMV7_SYSROOT) $(QEMU_ARM)
# The stripped armv7 agent must stay below this (bytes).
AGENT_SIZE_LIMIT := 4000000
CROSS_TOOLS := $(QEMU_ARM) arm-linux-gnueabihf-gcc arm-linux-gnueabihf-strip

.PHONY: cross test-cross test-cross-run
TEST_TARGETS += test-cross

cross:
	@for t in $(CROSS_TARGETS); do \
	  $(CARGO) build --release --locked -p sipsensor-agent --target $$t || exit 1; \
	done
	@for t in $(CROSS_TARGETS); do \
	  f=$(CROSS_TARGET_DIR)/$$t/release/sipsensor-agent; \
	  echo "$$f: $$(stat -c %s $$f) bytes"; \
	done

# Without the tools: a clear skip, or a failure under CI (SIPSENSOR_CI=1).
test-cross:
	@missing=""; \
	for tool in $(CROSS_TOOLS); do \
	  command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; \
	done; \
	[ -e $(ARMV7_SYSROOT)/lib/ld-linux-armhf.so.3 ] || missing="$$missing libc6-dev-armhf-cross"; \
	rustup target list --installed 2>/dev/null | grep -qx $(CROSS_ARMV7) \
	  || missing="$$missing rust-target-$(CROSS_ARMV7)"; \
	if [ -n "$$missing" ]; then \
	  msg="test-cross: missing$$missing (apt-get install \$$(cat .ci/apt/cross.txt | sed 's/#.*//'); bash .ci/setup.d/cross.sh)"; \
	  if [ "$${SIPSENSOR_CI:-}" = 1 ]; then echo "$$msg" >&2; exit 1; fi; \
	  echo "SKIPPED $$msg"; exit 0; \
	fi; \
	$(MAKE) --no-print-directory test-cross-run

test-cross-run:
	$(CARGO) build --release --locked -p sipsensor-agent --features bench --target $(CROSS_ARMV7)
	$(CARGO) build --locked -p sipsensor-agent --features bench --bin sipsensor-bench
	@version="$$($(QEMU_RUN) $(ARMV7_RELEASE)/sipsensor-agent --version)"; \
	echo "armv7: $$version"; \
	case "$$version" in "sipsensor-agent "*) ;; *) echo "test-cross: unexpected --version output" >&2; exit 1;; esac
	@set -e; n=0; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
	  -subj /CN=test-cross -keyout $$tmp/ca.key -out $$tmp/ca.pem 2>/dev/null; \
	for f in agent/examples/*.yaml; do \
	  sed "s|/etc/sipsensor/ca.pem|$$tmp/ca.pem|" $$f > $$tmp/$${f##*/}; \
	done; \
	for f in $$tmp/*.yaml; do \
	  case $$f in \
	    */boot-override.yaml) set -- $$tmp/simulated.yaml $$f;; \
	    *) set -- $$f;; \
	  esac; \
	  out=$$($(QEMU_RUN) $(ARMV7_RELEASE)/sipsensor-agent check-config "$$@" 2>&1) \
	    || { echo "$$out"; echo "test-cross: armv7 check-config $$* failed" >&2; exit 1; }; \
	  n=$$((n + 1)); \
	done; \
	echo "armv7: check-config passed on $$n example configs"
	timeout 300 $(CROSS_TARGET_DIR)/debug/sipsensor-bench check --seconds 3 -- \
	  $(QEMU_ARM) -L $(ARMV7_SYSROOT) $(ARMV7_RELEASE)/sipsensor-bench
	@tmp=$$(mktemp); trap 'rm -f $$tmp' EXIT; \
	cp $(ARMV7_RELEASE)/sipsensor-agent $$tmp; arm-linux-gnueabihf-strip $$tmp; \
	size=$$(stat -c %s $$tmp); \
	echo "armv7 sipsensor-agent: $$size bytes stripped (limit $(AGENT_SIZE_LIMIT))"; \
	[ $$size -lt $(AGENT_SIZE_LIMIT) ] || { echo "test-cross: the armv7 agent is too large" >&2; exit 1; }
