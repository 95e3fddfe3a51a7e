# mkimage-arch: arm
# The Debian-based image (images/debian/) on the BeagleBone Black/Green:
# Debian's u-boot-omap (am335x_evm), the armmp kernel with its initramfs
# (ext4 and the MMC host driver are modules there) and the board's device
# tree from the slot, overlays applied by U-Boot from bootenv.txt. U-Boot's
# findfdt sets ${fdtfile} from the board EEPROM (Black or Green); the
# Black's tree is the fallback. The initramfs is loaded after the device
# tree, into the scratch area the boot state no longer needs.
setenv sipsensor_kernel /boot/zImage
setenv sipsensor_boot 'load ${devtype} ${devnum}:${sipsensor_part} ${ramdisk_addr_r} /boot/initrd.img && bootz ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${sipsensor_fdt_addr}'
setenv sipsensor_fdt file
setenv sipsensor_fdtfile am335x-boneblack.dtb
setenv sipsensor_console ttyS0,115200n8
setenv sipsensor_bootargs
