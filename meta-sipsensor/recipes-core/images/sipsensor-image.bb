SUMMARY = "sipsensor appliance image"
DESCRIPTION = "The sipsensor agent on a read-only root filesystem that RAUC \
               updates in A/B slots, laid out by sipsensor-sdcard.wks.in: \
               boot partition, slots A and B, U-Boot boot state, data."
HOMEPAGE = "https://github.com/sipsensor/sipsensor"
BUGTRACKER = "https://github.com/sipsensor/sipsensor/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "sipsensor"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs ssh-server-dropbear"

IMAGE_INSTALL = "packagegroup-core-boot \
                 kernel-image \
                 kernel-devicetree \
                 i2c-tools \
                 sipsensor-agent \
                 sipsensor-system \
                 ${CORE_IMAGE_EXTRA_INSTALL} \
                 "

# sipsensor-health.service marks slots good, after an update only once the
# agent has registered; RAUC's unconditional marker would defeat that.
BAD_RECOMMENDATIONS += "rauc-mark-good"

# ext4 is what the RAUC bundle carries; the .wic is the SD card.
IMAGE_FSTYPES = "ext4 wic.bz2 wic.bmap"
WKS_FILE = "sipsensor-sdcard.wks.in"
# A slot is 512 MiB (images/layout.env).
IMAGE_ROOTFS_MAXSIZE = "524288"

# Boot partition: boot loader, A/B script, technician files, overlays. The
# kernel is not here: each slot carries its own in /boot.
SIPSENSOR_BOOT_FILES = "boot.scr bootenv.txt sipsensor.yaml sipsensor-overlays/*.dtbo;overlays/"
IMAGE_BOOT_FILES:beaglebone-yocto = "${SPL_BINARY} u-boot.${UBOOT_SUFFIX} ${SIPSENSOR_BOOT_FILES}"
IMAGE_BOOT_FILES:raspberrypi4-64 = "${BOOTFILES_DIR_NAME}/* \
                                    ${@make_dtb_boot_files(d)} \
                                    u-boot.bin;${SDIMG_KERNELIMAGE} \
                                    ${SIPSENSOR_BOOT_FILES} \
                                    "
do_image_wic[depends] += "sipsensor-boot-script:do_deploy sipsensor-overlays:do_deploy"
