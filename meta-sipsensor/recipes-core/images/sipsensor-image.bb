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

# Nothing open by default: root has no password (no empty-root-password),
# so the console is locked until a technician's console-password file on
# the boot partition sets a hash (unlock-console); SSH takes root's keys
# from the boot partition and never a password (sipsensor_ssh_keys_only).
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

# ext4 is what the RAUC bundle carries; the .wic is the SD card. The
# uncompressed .wic stays (sparse) for sipsensor_boot_vfat below.
IMAGE_FSTYPES = "ext4 wic wic.bz2 wic.bmap"
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

# The card's boot partition as <image>.boot.vfat, for the bundle's boot
# slot (sipsensor-bundle: RAUC_SLOT_boot[fstype] = "boot.vfat"): p1 of
# the .wic, wherever the kickstart put it, read from its MBR entry.
IMAGE_POSTPROCESS_COMMAND += "sipsensor_boot_vfat"
sipsensor_boot_vfat[doc] = "Deploy the card's boot partition for the bundle's boot slot"
python sipsensor_boot_vfat() {
    import os
    import struct
    deploy = d.getVar('IMGDEPLOYDIR')
    wic = os.path.join(deploy, d.getVar('IMAGE_NAME') + '.wic')
    out = os.path.join(deploy, d.getVar('IMAGE_NAME') + '.boot.vfat')
    with open(wic, 'rb') as card, open(out, 'wb') as boot:
        # MBR partition entry 1: start and size in 512-byte sectors.
        start, sectors = struct.unpack_from('<II', card.read(512), 446 + 8)
        if start == 0 or sectors == 0:
            bb.fatal('%s has no partition 1' % wic)
        card.seek(start * 512)
        left = sectors * 512
        while left:
            chunk = card.read(min(left, 1 << 20))
            if not chunk:
                bb.fatal('%s ends inside partition 1' % wic)
            boot.write(chunk)
            left -= len(chunk)
    link = os.path.join(deploy, d.getVar('IMAGE_LINK_NAME') + '.boot.vfat')
    if d.getVar('IMAGE_LINK_NAME') and link != out:
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.basename(out), link)
}

# dropbear: root logs in with the keys from the boot partition, never with
# a password (-s instead of OE's -w, which refuses root even with a key);
# the host key is made on the device at its first boot, in the data
# partition where it survives updates (never in the image).
ROOTFS_POSTPROCESS_COMMAND += "sipsensor_ssh_keys_only"
sipsensor_ssh_keys_only[doc] = "dropbear: keys only, host key made on the device"
sipsensor_ssh_keys_only() {
    default=${IMAGE_ROOTFS}${sysconfdir}/default/dropbear
    sed -i -e '/^DROPBEAR_EXTRA_ARGS=/d' -e '/^DROPBEAR_RSAKEY_DIR=/d' $default
    echo 'DROPBEAR_EXTRA_ARGS="-s"' >> $default
    echo 'DROPBEAR_RSAKEY_DIR=/data/sipsensor/dropbear' >> $default
    rm -f ${IMAGE_ROOTFS}${sysconfdir}/dropbear/*_host_key
}
