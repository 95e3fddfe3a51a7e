# mkimage-arch: arm
# BeagleBone Black/Green (AM335x): zImage and the board's device tree from
# the slot, overlays applied by U-Boot from bootenv.txt. U-Boot's findfdt
# sets ${fdtfile} from the board EEPROM (Black or Green); the Black's tree
# is the fallback.
setenv sipsensor_kernel /boot/zImage
setenv sipsensor_boot 'bootz ${kernel_addr_r} - ${sipsensor_fdt_addr}'
setenv sipsensor_fdt file
setenv sipsensor_fdtfile am335x-boneblack.dtb
setenv sipsensor_console ttyS0,115200n8
setenv sipsensor_bootargs
