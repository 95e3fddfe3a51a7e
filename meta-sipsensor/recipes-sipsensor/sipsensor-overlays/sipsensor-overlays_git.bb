SUMMARY = "sipsensor device-tree overlays for the supported sensors"
DESCRIPTION = "BME280, ADS1115, DS18B20 and GPIO (motion, door, status LED) \
               overlays for the BeagleBone and Raspberry Pi headers, \
               deployed for the boot partition's overlays/ directory."
SECTION = "kernel"

require recipes-sipsensor/sipsensor-source.inc

DEPENDS += "dtc-native"

inherit deploy nopackages

COMPATIBLE_MACHINE = "^(beaglebone-yocto|raspberrypi4-64)$"
SIPSENSOR_OVERLAY_FAMILY = "beaglebone"
SIPSENSOR_OVERLAY_FAMILY:raspberrypi4-64 = "raspberrypi"

do_configure[noexec] = "1"

do_compile() {
    oe_runmake -C ${S}/overlays FAMILY=${SIPSENSOR_OVERLAY_FAMILY} O=${B}/dtbo DTC=dtc
}

do_deploy() {
    install -d ${DEPLOYDIR}/sipsensor-overlays
    install -m 0644 ${B}/dtbo/*.dtbo ${DEPLOYDIR}/sipsensor-overlays/
}

addtask deploy after do_compile before do_build
