# mkimage-arch: arm
# QEMU "virt" machine, 32-bit (qemu-system-arm -M virt -bios u-boot.bin):
# QEMU generates the device tree and U-Boot passes it on.
setenv sipsensor_kernel /boot/zImage
setenv sipsensor_boot 'bootz ${kernel_addr_r} - ${sipsensor_fdt_addr}'
setenv sipsensor_fdt builtin
setenv sipsensor_fdtfile
setenv sipsensor_console ttyAMA0,115200
setenv sipsensor_bootargs
