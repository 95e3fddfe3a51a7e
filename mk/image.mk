# The Debian-based appliance image and its boot tests (issue "The appliance
# boots"). See docs/building-images.md, "The Debian-based image".
#
#   make image        (root) SD-card images for QEMU virt and the BeagleBone
#                     in target/image/<board>/: sipsensor-sdcard.img, the
#                     slot image rootfs.ext4 and a signed update bundle
#   make run-image    boot the QEMU card on this terminal (Ctrl-A X quits)
#                     CONFIG=file.yaml SECRETS=secrets.yaml CA=ca.pem: the
#                     technician's files for the card's boot partition;
#                     CONSOLE_PASSWORD=file: root's password hash
#                     (openssl passwd -6 > file; else the console is
#                     locked); RESET=1: start
#                     again from the built card
#   make test-boot    (root, in `make test`) the boot tests under QEMU, in
#                     BOOT_LANES (2) parallel lanes; one test alone:
#                     cd tests/boot && python3 -m unittest -v test_armhf.ArmhfImage.test_2_ota_update_to_slot_b
#
# Downloads (Debian packages, the base root file system) are cached in
# target/image-cache/, so a rebuild takes about a minute.

IMAGE_DIR ?= target/image
IMAGE_CACHE ?= target/image-cache
IMAGE_BOARDS ?= qemu-arm-virt beaglebone
IMAGE_TARGET := armv7-unknown-linux-gnueabihf
IMAGE_AGENT := target/$(IMAGE_TARGET)/release/sipsensor-agent
BOOT_AMD64_DIR ?= target/boot-amd64
# Inputs of the image besides the agent: a change rebuilds it.
IMAGE_INPUTS := $(shell find images overlays -type f 2>/dev/null) Cargo.lock
RUN_IMAGE_DIR ?= target/run-image
# 1 (default under SIPSENSOR_CI): fail instead of skipping without root.
IMAGE_ROOT_CHECK = if [ "$$(id -u)" != 0 ]; then \
	  msg="$@: needs root (mmdebstrap, binfmt_misc, network namespaces): run it with sudo"; \
	  if [ "$${SIPSENSOR_CI:-}" = 1 ]; then echo "$$msg" >&2; exit 1; fi; \
	  echo "SKIPPED $$msg"; exit 0; \
	fi

TEST_TARGETS += test-boot

.PHONY: image image-agent run-image test-boot boot-amd64 boot-collector image-clean

image-agent:
	$(CARGO) build --release --locked --target $(IMAGE_TARGET) -p sipsensor-agent

image: image-agent
	@$(IMAGE_ROOT_CHECK); \
	$(MAKE) --no-print-directory $(IMAGE_DIR)/.stamp

$(IMAGE_DIR)/.stamp: $(IMAGE_AGENT) $(IMAGE_INPUTS)
	images/debian/build-image --agent $(IMAGE_AGENT) --out $(IMAGE_DIR) \
		--cache $(IMAGE_CACHE) --boards "$(IMAGE_BOARDS)"
	touch $@

run-image:
	images/debian/run-image --image $(IMAGE_DIR)/qemu-arm-virt --dir $(RUN_IMAGE_DIR) \
		$(if $(CONFIG),--config $(CONFIG)) $(if $(SECRETS),--secrets $(SECRETS)) $(if $(CA),--ca $(CA)) \
		$(if $(CONSOLE_PASSWORD),--console-password $(CONSOLE_PASSWORD)) \
		$(if $(RESET),--reset)

image-clean:
	rm -rf $(IMAGE_DIR) $(IMAGE_CACHE) $(BOOT_AMD64_DIR) $(RUN_IMAGE_DIR)

## The amd64 system of the driver and netem tests (Debian's amd64 kernel).
boot-amd64:
	$(CARGO) build --release --locked -p sipsensor-agent
	tests/boot/mk-amd64-system --agent target/release/sipsensor-agent \
		--out $(BOOT_AMD64_DIR) --cache $(IMAGE_CACHE)/amd64

boot-collector:
	$(CARGO) build --locked -p sipsensor-collector

# Two lanes (two QEMU guests side by side): tests/boot/run-lanes.
BOOT_LANES ?= 2
test-boot:
	@$(IMAGE_ROOT_CHECK); \
	$(MAKE) --no-print-directory image boot-amd64 boot-collector && \
	start=$$(date +%s); \
	SIPSENSOR_IMAGE_DIR=$(CURDIR)/$(IMAGE_DIR) SIPSENSOR_AMD64_DIR=$(CURDIR)/$(BOOT_AMD64_DIR) \
		tests/boot/run-lanes $(BOOT_LANES); status=$$?; \
	echo "test-boot: $$(( $$(date +%s) - start )) s in $(BOOT_LANES) lanes (after building the images)"; \
	exit $$status
