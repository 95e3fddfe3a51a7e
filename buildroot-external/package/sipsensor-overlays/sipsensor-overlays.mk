################################################################################
#
# sipsensor-overlays
#
################################################################################

# The overlays live next to this tree in the sipsensor repository and
# change together with it, so they are built from there.
SIPSENSOR_OVERLAYS_VERSION = local
SIPSENSOR_OVERLAYS_SITE = $(BR2_EXTERNAL_SIPSENSOR_PATH)/../overlays
SIPSENSOR_OVERLAYS_SITE_METHOD = local
SIPSENSOR_OVERLAYS_LICENSE = BSD-2-Clause
SIPSENSOR_OVERLAYS_DEPENDENCIES = host-dtc
SIPSENSOR_OVERLAYS_INSTALL_TARGET = NO
SIPSENSOR_OVERLAYS_INSTALL_IMAGES = YES

ifeq ($(BR2_PACKAGE_SIPSENSOR_OVERLAYS_RASPBERRYPI),y)
SIPSENSOR_OVERLAYS_FAMILY = raspberrypi
else
SIPSENSOR_OVERLAYS_FAMILY = beaglebone
endif

define SIPSENSOR_OVERLAYS_BUILD_CMDS
	$(MAKE) -C $(@D) DTC=$(HOST_DIR)/bin/dtc \
		FAMILY=$(SIPSENSOR_OVERLAYS_FAMILY) O=out
endef

define SIPSENSOR_OVERLAYS_INSTALL_IMAGES_CMDS
	mkdir -p $(BINARIES_DIR)/sipsensor-overlays
	$(INSTALL) -m 0644 -t $(BINARIES_DIR)/sipsensor-overlays $(@D)/out/*.dtbo
endef

$(eval $(generic-package))
