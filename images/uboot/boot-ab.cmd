# sipsensor A/B boot with boot counting (RAUC "uboot" bootloader backend).
#
# images/scripts/mk-boot-script puts the layout values (sipsensor_disk,
# sipsensor_attempts) and one board-*.cmd in front of this file. A board
# file sets:
#   sipsensor_kernel    path of the kernel inside a slot (/boot/zImage)
#   sipsensor_boot      command that boots ${kernel_addr_r} with the device
#                       tree at ${sipsensor_fdt_addr} (bootz or booti)
#   sipsensor_fdt       where the device tree comes from:
#                         file      /boot/dtbs/ in the booted slot, plus the
#                                   overlays named in bootenv.txt
#                         firmware  ${fdt_addr}, prepared by the board's
#                                   firmware (Raspberry Pi: config.txt)
#                         builtin   ${fdtcontroladdr} (QEMU's own tree)
#   sipsensor_fdtfile   device tree to use when U-Boot's ${fdtfile} is not
#                       in the slot (file mode)
#   sipsensor_console   console= argument for the kernel
#   sipsensor_bootargs  further kernel arguments of the board
#
# Boot state: BOOT_ORDER ("A B" or "B A"), BOOT_A_LEFT and BOOT_B_LEFT live
# in a CRC-protected environment in partition 5, the same format that
# fw_setenv/fw_printenv use through /etc/fw_env.config, so RAUC reads and
# writes it from Linux. This script never touches U-Boot's own saved
# environment and works with any U-Boot build that has env import/export,
# part, setexpr and load (Debian's, Buildroot's, Yocto's).
#
# Each boot of a slot costs one attempt, counted down here before the
# kernel starts. Userspace refills the counter ("rauc status mark-good")
# once the system is healthy; a slot whose counter reaches 0 is skipped, so
# after ${sipsensor_attempts} failed boots of a new slot the board returns
# to the old one.

test -n "${devtype}" || setenv devtype mmc
test -n "${devnum}" || setenv devnum 0
setenv sipsensor_scratch ${ramdisk_addr_r}

# ---- read the boot state ------------------------------------------------
setenv sipsensor_state_ok
if part start ${devtype} ${devnum} 5 sipsensor_state_start; then
	if ${devtype} dev ${devnum}; then
		if ${devtype} read ${sipsensor_scratch} ${sipsensor_state_start} 0x20; then
			setenv sipsensor_state_ok 1
			if env import -c ${sipsensor_scratch} 0x4000 BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT; then
				echo "sipsensor: boot state: order ${BOOT_ORDER}, A ${BOOT_A_LEFT} left, B ${BOOT_B_LEFT} left"
			else
				echo "sipsensor: no valid boot state yet, starting from defaults"
			fi
		fi
	fi
fi
if test -z "${sipsensor_state_ok}"; then
	echo "sipsensor: cannot read partition 5 of ${devtype} ${devnum}; boot counting is off for this boot"
fi

setenv sipsensor_store_state 'if test -n "${sipsensor_state_ok}"; then env export -c -s 0x4000 ${sipsensor_scratch} BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT && ${devtype} write ${sipsensor_scratch} ${sipsensor_state_start} 0x20; fi'

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT ${sipsensor_attempts}
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT ${sipsensor_attempts}

# ---- technician settings from the boot partition ------------------------
# bootenv.txt holds "overlays=..." and "extra_bootargs=..." lines; -r
# accepts the CRLF line ends of a file edited on Windows.
setenv overlays
setenv extra_bootargs
if load ${devtype} ${devnum}:1 ${sipsensor_scratch} /bootenv.txt; then
	env import -t -r ${sipsensor_scratch} ${filesize} overlays extra_bootargs
fi

# ---- choose a slot ---------------------------------------------------------
# A slot is taken only if its kernel loads; a slot without one (slot B
# before the first update) is skipped at the cost of one of its attempts.
setenv sipsensor_try_slot 'if load ${devtype} ${devnum}:${sipsensor_part} ${kernel_addr_r} ${sipsensor_kernel}; then setenv sipsensor_slot ${BOOT_SLOT}; else echo "sipsensor: no ${sipsensor_kernel} in slot ${BOOT_SLOT}"; fi'
setenv sipsensor_slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
	if test -n "${sipsensor_slot}"; then
		# a slot is chosen; ignore the rest of the order
	elif test "x${BOOT_SLOT}" = "xA"; then
		if test ${BOOT_A_LEFT} -gt 0; then
			setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
			echo "sipsensor: trying slot A (${BOOT_A_LEFT} attempts left after this one)"
			setenv sipsensor_part 2
			run sipsensor_try_slot
		fi
	elif test "x${BOOT_SLOT}" = "xB"; then
		if test ${BOOT_B_LEFT} -gt 0; then
			setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
			echo "sipsensor: trying slot B (${BOOT_B_LEFT} attempts left after this one)"
			setenv sipsensor_part 3
			run sipsensor_try_slot
		fi
	fi
done

if test -z "${sipsensor_slot}"; then
	echo "sipsensor: no slot left to boot; giving both slots ${sipsensor_attempts} attempts again"
	setenv BOOT_A_LEFT ${sipsensor_attempts}
	setenv BOOT_B_LEFT ${sipsensor_attempts}
	run sipsensor_store_state
	reset
fi

# The attempt is recorded before the kernel runs: a kernel that panics
# (panic=5 reboots it) or hangs (the watchdog resets the board) has used
# it up.
run sipsensor_store_state

# ---- device tree -----------------------------------------------------------
setenv sipsensor_fdt_addr
if test "${sipsensor_fdt}" = "file"; then
	setenv sipsensor_load_fdt 'if test -n "${fdtfile}" && load ${devtype} ${devnum}:${sipsensor_part} ${fdt_addr_r} /boot/dtbs/${fdtfile}; then setenv sipsensor_fdt_addr ${fdt_addr_r}; elif load ${devtype} ${devnum}:${sipsensor_part} ${fdt_addr_r} /boot/dtbs/${sipsensor_fdtfile}; then setenv sipsensor_fdt_addr ${fdt_addr_r}; fi'
	run sipsensor_load_fdt
	if test -n "${sipsensor_fdt_addr}"; then
		fdt addr ${sipsensor_fdt_addr}
		fdt resize 65536
		setenv sipsensor_overlay_failed
		if test -n "${overlays}"; then
			for o in "${overlays}"; do
				if load ${devtype} ${devnum}:1 ${sipsensor_scratch} /overlays/sipsensor-${o}.dtbo; then
					if fdt apply ${sipsensor_scratch}; then
						echo "sipsensor: overlay ${o} applied"
					else
						setenv sipsensor_overlay_failed 1
					fi
				else
					echo "sipsensor: overlay ${o} not found in /overlays on the boot partition"
				fi
			done
		fi
		# A failed "fdt apply" may leave the tree half changed: boot the
		# board's plain tree instead, which at least brings the network up.
		if test -n "${sipsensor_overlay_failed}"; then
			echo "sipsensor: an overlay failed to apply; booting without overlays"
			setenv sipsensor_fdt_addr
			run sipsensor_load_fdt
		fi
	else
		echo "sipsensor: no device tree in slot ${sipsensor_slot}"
	fi
elif test "${sipsensor_fdt}" = "firmware"; then
	setenv sipsensor_fdt_addr ${fdt_addr}
	# Keep what the firmware put on the command line (cmdline.txt, the
	# MAC address, memory carve-outs).
	fdt addr ${fdt_addr}
	fdt get value sipsensor_firmware_bootargs /chosen bootargs
else
	setenv sipsensor_fdt_addr ${fdtcontroladdr}
fi

# ---- boot ------------------------------------------------------------------
setenv bootargs "${sipsensor_firmware_bootargs} console=${sipsensor_console} root=PARTUUID=${sipsensor_disk}-0${sipsensor_part} rootfstype=ext4 ro rootwait panic=5 rauc.slot=${sipsensor_slot} ${sipsensor_bootargs} ${extra_bootargs}"
echo "sipsensor: booting slot ${sipsensor_slot}: ${bootargs}"
run sipsensor_boot
echo "sipsensor: the kernel did not start; resetting"
reset
