################################################################################
#
# sipsensor-agent
#
################################################################################

# The agent of the very tree this BR2_EXTERNAL belongs to. `make dist` in
# the repository unpacks, into target/dist/sipsensor, its crates with
# their vendored dependencies (VENDOR/ and .cargo/config.toml, as
# Buildroot's cargo vendoring lays them out) and a stamp naming the commit,
# and records the version (the commit) next to it. A local site: nothing
# is downloaded, so there is no archive hash to check; cargo checks the
# vendored crates against the checksums of Cargo.lock.
SIPSENSOR_AGENT_DIST_DIR = $(BR2_EXTERNAL_SIPSENSOR_PATH)/../target/dist
SIPSENSOR_AGENT_VERSION = $(strip $(shell cat $(SIPSENSOR_AGENT_DIST_DIR)/sipsensor.version 2>/dev/null))
SIPSENSOR_AGENT_SITE = $(SIPSENSOR_AGENT_DIST_DIR)/sipsensor
SIPSENSOR_AGENT_SITE_METHOD = local
SIPSENSOR_AGENT_LICENSE = BSD-2-Clause
SIPSENSOR_AGENT_LICENSE_FILES = LICENSE

# The tree is a Cargo workspace; the agent is its agent/ member.
SIPSENSOR_AGENT_SUBDIR = agent

# Keep the workspace's size-minded release profile (LTO, one codegen unit)
# whatever BR2_ENABLE_LTO says for the rest of the system: the agent is
# one static-Rust binary and these settings cut it by a third.
# SIPSENSOR_AGENT_BUILD names the commit in `sipsensor-agent --version`.
SIPSENSOR_AGENT_CARGO_ENV = \
	CARGO_PROFILE_RELEASE_LTO=true \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
	SIPSENSOR_AGENT_BUILD="$$(cat $(@D)/SIPSENSOR_BUILD)"

# Refuse a tree made from another commit than the repository's (when it
# is a git checkout): the image carries the agent of the commit built.
define SIPSENSOR_AGENT_CHECK_DIST
	@if [ ! -f $(SIPSENSOR_AGENT_SITE)/SIPSENSOR_BUILD ]; then \
		echo "sipsensor-agent: nothing in $(SIPSENSOR_AGENT_SITE):" \
			"run 'make dist' in the sipsensor repository" >&2; \
		exit 1; \
	fi
	@head=$$(git -C $(BR2_EXTERNAL_SIPSENSOR_PATH) rev-parse HEAD 2>/dev/null | cut -c1-12); \
	built=$$(cut -c1-12 $(SIPSENSOR_AGENT_SITE)/SIPSENSOR_BUILD); \
	if [ -n "$$head" ] && [ "$$head" != "$$built" ]; then \
		echo "sipsensor-agent: $(SIPSENSOR_AGENT_SITE) is of commit $$built," \
			"the repository is at $$head: run 'make dist' there" >&2; \
		exit 1; \
	fi
endef
SIPSENSOR_AGENT_PRE_RSYNC_HOOKS += SIPSENSOR_AGENT_CHECK_DIST

$(eval $(cargo-package))
