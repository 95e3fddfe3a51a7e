# Raspberry Pi kernels in the sipsensor distribution: the options the
# sensors, the real-time sender and the A/B updates need.
FILESEXTRAPATHS:prepend:sipsensor := "${THISDIR}/files:"

SRC_URI:append:sipsensor = " file://sipsensor.cfg file://sipsensor-watchdog.cfg"
