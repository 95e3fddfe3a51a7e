# U-Boot in the sipsensor distribution: every command the A/B boot script
# runs (sipsensor-boot-script.cfg), and the machine's storage and boot
# command (sipsensor-board.cfg, found in the directory named after
# MACHINE). u-boot-configure.inc merges *.cfg files after the defconfig.
FILESEXTRAPATHS:prepend:sipsensor := "${THISDIR}/files:"

SRC_URI:append:sipsensor = " file://sipsensor-boot-script.cfg file://sipsensor-board.cfg"
