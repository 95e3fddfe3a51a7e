SUMMARY = "sipsensor update bundle"
DESCRIPTION = "Signed RAUC bundle in verity format that writes \
               sipsensor-image to the inactive root filesystem slot."
HOMEPAGE = "https://github.com/sipsensor/sipsensor"
BUGTRACKER = "https://github.com/sipsensor/sipsensor/issues"
SECTION = "images"
LICENSE = "MIT"
CVE_PRODUCT = "sipsensor"

# Nothing to fetch: the bundle is made from sipsensor-image.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "${SIPSENSOR_RAUC_COMPATIBLE}"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "sipsensor ${DISTRO_VERSION} for ${MACHINE}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "sipsensor-image"
# The slot takes the ext4 image (IMAGE_FSTYPES also lists wic).
RAUC_SLOT_rootfs[fstype] = "ext4"

RAUC_KEY_FILE = "${SIPSENSOR_RAUC_KEY_FILE}"
RAUC_CERT_FILE = "${SIPSENSOR_RAUC_CERT_FILE}"
# rauc checks the new signature against the devices' keyring: a bundle
# they would refuse fails the build instead.
BUNDLE_ARGS += "--keyring=${SIPSENSOR_RAUC_KEYRING_FILE}"
do_bundle[file-checksums] += "${SIPSENSOR_RAUC_KEYRING_FILE}:False"
