# Raspberry Pi 4: the options the sensors, the real-time sender and the A/B
# updates need.
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"

SRC_URI:append:raspberrypi4-64 = " \
    file://sipsensor.cfg \
    file://sipsensor-raspberrypi4-64.cfg \
"
