# mkimage-arch: arm64
# Raspberry Pi 4 (64-bit): the firmware loads the device tree and applies
# the dtoverlay= lines of config.txt before starting U-Boot; the kernel
# Image comes from the slot. config.txt moves Bluetooth off the PL011 so
# that ttyAMA0 is the console on header pins 8/10.
setenv sipsensor_kernel /boot/Image
setenv sipsensor_boot 'booti ${kernel_addr_r} - ${sipsensor_fdt_addr}'
setenv sipsensor_fdt firmware
setenv sipsensor_fdtfile
setenv sipsensor_console ttyAMA0,115200
setenv sipsensor_bootargs
