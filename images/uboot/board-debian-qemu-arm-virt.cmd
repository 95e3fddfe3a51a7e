# mkimage-arch: arm
# The Debian-based image (images/debian/) on QEMU's "virt" machine, 32-bit
# (qemu-system-arm -M virt -bios u-boot.bin from Debian's u-boot-qemu).
# Debian's armmp kernel has ext4, virtio and the MMC drivers as modules, so
# the slot also carries the initramfs that loads them (/boot/initrd.img,
# made by initramfs-tools); it is loaded after the kernel, into the scratch
# area the boot state no longer needs. QEMU generates the device tree.
setenv sipsensor_kernel /boot/zImage
setenv sipsensor_boot 'load ${devtype} ${devnum}:${sipsensor_part} ${ramdisk_addr_r} /boot/initrd.img && bootz ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${sipsensor_fdt_addr}'
setenv sipsensor_fdt builtin
setenv sipsensor_fdtfile
setenv sipsensor_console ttyAMA0,115200
setenv sipsensor_bootargs
