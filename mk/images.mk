# Appliance images: Buildroot tree, Yocto layer, overlays, SD-card layout,
# RAUC (issue "The appliance image"). See docs/building-images.md.
#
#   make test-images          the image validation of `make test`
#   make check-images-deep BUILDROOT=... OECORE=... BITBAKE=... META_RAUC=... \
#        META_RPI=... META_YOCTO=... UBOOT=... KERNEL=... KERNEL_RPI=...
#                             defconfigs, check-package, bitbake -p / -g,
#                             U-Boot commands and kernel options in the
#                             boards' final .config
#   make yocto-crates-inc     regenerate meta-sipsensor's crates include
#   make br-vendor            vendor the crates for a Buildroot build of
#                             this working copy (local.mk override)

IMAGES_VENV ?= target/images-venv
IMAGES_PY := $(IMAGES_VENV)/bin/python
PYTHON ?= python3

TEST_TARGETS += test-images

.PHONY: test-images images-venv check-images-deep yocto-crates-inc br-vendor br-agent-bump

$(IMAGES_VENV)/.stamp: tests/images/requirements.txt
	rm -rf $(IMAGES_VENV)
	$(PYTHON) -m venv $(IMAGES_VENV)
	$(IMAGES_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

images-venv: $(IMAGES_VENV)/.stamp

test-images: $(IMAGES_VENV)/.stamp
	@start=$$(date +%s); \
	PATH="$(CURDIR)/$(IMAGES_VENV)/bin:$$PATH" $(IMAGES_PY) -m unittest discover \
		-s tests/images -p 'test_*.py' -v; status=$$?; \
	echo "test-images: $$(( $$(date +%s) - start )) s"; exit $$status

check-images-deep: $(IMAGES_VENV)/.stamp
	PATH="$(CURDIR)/$(IMAGES_VENV)/bin:$$PATH" tests/images/deep-check

yocto-crates-inc:
	scripts/gen-crates-inc

# Buildroot builds a release of the agent from its site; to build this
# working copy instead, vendor its crates here and point local.mk at it
# (docs/building-images.md, "Building the agent from a working copy").
br-vendor:
	rm -rf target/br-vendor
	mkdir -p target/br-vendor
	$(CARGO) vendor --locked --versioned-dirs --manifest-path agent/Cargo.toml \
		target/br-vendor/crates > target/br-vendor/cargo-config.toml

# Point the Buildroot package (and the Yocto recipes) at another commit and
# recompute the hash of the archive Buildroot makes from it:
#   make br-agent-bump REV=<commit> BUILDROOT=/path/to/buildroot-2026.02.x
br-agent-bump:
	buildroot-external/scripts/bump-agent "$(REV)" "$(BUILDROOT)"
