################################################################################
#
# sipsensor-agent
#
################################################################################

# A commit of the sipsensor repository; `make br-agent-bump REV=...` in a
# working copy moves this and the hash together.
SIPSENSOR_AGENT_VERSION = 02268cc06eca43a3d865aec9bd74180b939b71d3
SIPSENSOR_AGENT_SITE = $(call github,sipsensor,sipsensor,$(SIPSENSOR_AGENT_VERSION))
SIPSENSOR_AGENT_LICENSE = BSD-2-Clause
SIPSENSOR_AGENT_LICENSE_FILES = LICENSE

# The repository is a Cargo workspace; the agent is the agent/ member and
# Cargo.lock sits at the root. Vendoring (cargo-post-process) resolves the
# whole workspace from agent/Cargo.toml.
SIPSENSOR_AGENT_SUBDIR = agent

# Keep the workspace's size-minded release profile (LTO, one codegen unit)
# whatever BR2_ENABLE_LTO says for the rest of the system: the agent is
# one static-Rust binary and these settings cut it by a third.
SIPSENSOR_AGENT_CARGO_ENV = \
	CARGO_PROFILE_RELEASE_LTO=true \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1

# Building from a working copy (local.mk: SIPSENSOR_AGENT_OVERRIDE_SRCDIR)
# skips the download and so its vendoring: take the crates that
# `make br-vendor` put in the working copy's target/br-vendor instead.
ifneq ($(SIPSENSOR_AGENT_OVERRIDE_SRCDIR),)
SIPSENSOR_AGENT_VENDOR_DIR = $(SIPSENSOR_AGENT_OVERRIDE_SRCDIR)/target/br-vendor
SIPSENSOR_AGENT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude /target
define SIPSENSOR_AGENT_USE_LOCAL_VENDOR
	@if [ ! -f $(SIPSENSOR_AGENT_VENDOR_DIR)/cargo-config.toml ]; then \
		echo "sipsensor-agent: no vendored crates in $(SIPSENSOR_AGENT_VENDOR_DIR);"; \
		echo "run 'make br-vendor' in $(SIPSENSOR_AGENT_OVERRIDE_SRCDIR) first"; \
		exit 1; \
	fi
	mkdir -p $(@D)/.cargo
	sed 's|^directory = .*|directory = "$(SIPSENSOR_AGENT_VENDOR_DIR)/crates"|' \
		$(SIPSENSOR_AGENT_VENDOR_DIR)/cargo-config.toml \
		> $(@D)/.cargo/config.toml
endef
SIPSENSOR_AGENT_POST_RSYNC_HOOKS += SIPSENSOR_AGENT_USE_LOCAL_VENDOR
endif

$(eval $(cargo-package))
