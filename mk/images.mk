# Appliance images: Buildroot tree, Yocto layer, overlays, SD-card layout,
# RAUC (issue "The appliance image"). See docs/building-images.md.
#
#   make test-images          the image validation of `make test`
#   make check-images-deep BUILDROOT=... OECORE=... BITBAKE=... META_RAUC=... \
#        META_RPI=... META_YOCTO=... UBOOT=... KERNEL=... KERNEL_RPI=...
#                             defconfigs, check-package, bitbake -p / -g,
#                             U-Boot commands and kernel options in the
#                             boards' final .config
#   make dist                 the agent's source for the Buildroot and Yocto
#                             builds, from this working tree: target/dist/
#   make images-refresh       regenerate the crates include, the license
#                             checksums and the agent package's .hash

IMAGES_VENV ?= target/images-venv
IMAGES_PY := $(IMAGES_VENV)/bin/python
PYTHON ?= python3

TEST_TARGETS += test-images

.PHONY: test-images images-venv check-images-deep dist images-refresh

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

# The agent's crates (with their dependencies vendored), images/ and
# overlays/, stamped with the commit (scripts/mk-dist): what Buildroot's
# sipsensor-agent package and the Yocto recipes build.
dist:
	scripts/mk-dist

images-refresh:
	scripts/images-refresh
