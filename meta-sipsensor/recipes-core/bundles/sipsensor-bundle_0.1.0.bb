SUMMARY = "sipsensor update bundle"
DESCRIPTION = "Signed RAUC bundle in verity format that writes \
               sipsensor-image to the inactive root filesystem slot and \
               its boot partition to the boot slot."
HOMEPAGE = "https://github.com/sipsensor/sipsensor"
BUGTRACKER = "https://github.com/sipsensor/sipsensor/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "sipsensor"

# The bundle is made from sipsensor-image; the boot slot's hook is
# images/rauc/boot-slot-hook (files/boot-slot-hook links to it).
SRC_URI = "file://boot-slot-hook"

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "${SIPSENSOR_RAUC_COMPATIBLE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "sipsensor ${DISTRO_VERSION} for ${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "sipsensor-image"
# The slot takes the ext4 image (IMAGE_FSTYPES also lists wic).
RAUC_SLOT_rootfs[fstype] = "ext4"

# The boot partition (sipsensor-image's sipsensor_boot_vfat) for the boot
# slot, after the root filesystem: a power cut while the root filesystem
# is written leaves the boot files as they were. The hook copies the
# technician's files into the new boot partition before RAUC switches to it.
RAUC_BUNDLE_SLOTS += "boot"
RAUC_SLOT_boot = "sipsensor-image"
RAUC_SLOT_boot[fstype] = "boot.vfat"
RAUC_SLOT_boot[rename] = "boot.vfat"
RAUC_SLOT_boot[hooks] = "post-install"
RAUC_BUNDLE_HOOKS[file] = "boot-slot-hook"

RAUC_KEY_FILE = "${SIPSENSOR_RAUC_KEY_FILE}"
RAUC_CERT_FILE = "${SIPSENSOR_RAUC_CERT_FILE}"
# rauc checks the new signature against the devices' keyring: a bundle
# they would refuse fails the build instead.
BUNDLE_ARGS += "--keyring=${SIPSENSOR_RAUC_KEYRING_FILE}"
do_bundle[file-checksums] += "${SIPSENSOR_RAUC_KEYRING_FILE}:False"
