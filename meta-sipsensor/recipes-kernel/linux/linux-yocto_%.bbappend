# BeagleBone (beaglebone-yocto): the options the sensors, the real-time
# sender and the A/B updates need.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"

SRC_URI:append:beaglebone-yocto = " \
    file://sipsensor.cfg \
    file://sipsensor-beaglebone.cfg \
"
