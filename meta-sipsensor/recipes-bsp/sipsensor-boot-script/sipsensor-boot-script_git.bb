SUMMARY = "sipsensor A/B boot script for U-Boot and the technician's boot files"
DESCRIPTION = "boot.scr picks root filesystem slot A or B with boot counting \
               (RAUC's U-Boot backend); bootenv.txt and sipsensor.yaml are \
               the files a technician edits on the boot partition."
SECTION = "bootloaders"

require recipes-sipsensor/sipsensor-source.inc

DEPENDS += "u-boot-mkimage-native"
PROVIDES += "u-boot-default-script"

inherit deploy nopackages

COMPATIBLE_MACHINE = "^(beaglebone-yocto|raspberrypi4-64)$"
SIPSENSOR_BOOT_BOARD = "beaglebone"
SIPSENSOR_BOOT_BOARD:raspberrypi4-64 = "raspberrypi4-64"

do_configure[noexec] = "1"

do_compile() {
    ${S}/images/scripts/mk-boot-script ${SIPSENSOR_BOOT_BOARD} ${B}/boot.scr
}

do_deploy() {
    install -d ${DEPLOYDIR}
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/
    install -m 0644 ${S}/images/boot/bootenv.txt ${S}/images/boot/sipsensor.yaml ${DEPLOYDIR}/
}

addtask deploy after do_compile before do_build
