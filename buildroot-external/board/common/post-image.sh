#!/bin/sh
# Buildroot post-image script of the sipsensor boards.
#   $1  images directory (Buildroot passes it)
#   $2  board: beaglebone | raspberrypi4-64 | qemu-arm-virt
# Gathers the boot partition, lays out the SD card with genimage from
# images/genimage (images/scripts/mk-sdcard) and signs a RAUC bundle of the
# root filesystem and the boot partition (images/scripts/mk-bundle --boot).
set -eu

binaries=$1
board=${2:?board name missing from BR2_ROOTFS_POST_SCRIPT_ARGS}
images=$BR2_EXTERNAL_SIPSENSOR_PATH/../images

# shellcheck disable=SC1090 # the build's .config
. "$BR2_CONFIG"

stage=$binaries/sipsensor-boot
rm -rf "$stage"
mkdir -p "$stage/overlays"

# Boot partition: the A/B script, the technician's files, the overlays.
"$images/scripts/mk-boot-script" "$board" "$stage/boot.scr"
cp "$images/boot/bootenv.txt" "$images/boot/sipsensor.yaml" "$stage/"
if [ -d "$binaries/sipsensor-overlays" ]; then
	cp "$binaries"/sipsensor-overlays/*.dtbo "$stage/overlays/"
fi

case $board in
beaglebone)
	layout=beaglebone
	cp "$binaries/MLO" "$binaries/u-boot.img" "$stage/"
	;;
raspberrypi4-64)
	layout=raspberrypi4-64
	fw=$binaries/rpi-firmware
	cp "$fw/start4.elf" "$fw/fixup4.dat" "$fw/config.txt" "$fw/cmdline.txt" "$stage/"
	cp "$binaries"/bcm2711-*.dtb "$stage/"
	# The firmware's own overlays (disable-bt, ...) next to ours.
	if [ -d "$fw/overlays" ]; then
		cp -R "$fw/overlays/." "$stage/overlays/"
	fi
	cp "$binaries/u-boot.bin" "$stage/"
	;;
qemu-arm-virt)
	layout=qemu
	;;
*)
	echo "post-image.sh: unknown board '$board'" >&2
	exit 1
	;;
esac

ln -sf "$binaries/rootfs.ext4" "$stage/rootfs.ext4"
"$images/scripts/mk-sdcard" "$layout" "$stage" "$binaries" "$BUILD_DIR/sipsensor-genimage"

# Signed update bundle of this root filesystem.
cert=${BR2_SIPSENSOR_RAUC_CERT:-}
key=${BR2_SIPSENSOR_RAUC_KEY:-}
if [ "${BR2_SIPSENSOR_RAUC_RELEASE:-}" = y ]; then
	if [ -z "$cert" ] || [ -z "$key" ]; then
		echo "post-image.sh: release build without a signing key: sign" \
			"$binaries/rootfs.ext4 offline (docs/building-images.md, \"Release keys\")"
		exit 0
	fi
	"$images/rauc/check-release-keys" "$TARGET_DIR/etc/rauc/keyring.pem" "$cert"
elif [ -z "$cert" ] || [ -z "$key" ]; then
	"$images/scripts/mk-dev-keys" "$BASE_DIR/sipsensor-dev-keys"
	cert=$BASE_DIR/sipsensor-dev-keys/signing.cert.pem
	key=$BASE_DIR/sipsensor-dev-keys/signing.key.pem
	echo "post-image.sh: WARNING: signing the bundle with the development key" >&2
fi
# shellcheck disable=SC1091 # written by post-build.sh
. "$TARGET_DIR/etc/sipsensor-release"
# It carries the boot partition too (RAUC's boot slot), so a fix to the
# boot script or the overlays reaches boards in the field.
"$images/scripts/mk-bundle" --boot "$binaries/boot.vfat" "$binaries/rootfs.ext4" \
	"$BR2_SIPSENSOR_RAUC_COMPATIBLE" "$SIPSENSOR_VERSION" "$cert" "$key" \
	"$binaries/sipsensor-$board-$SIPSENSOR_VERSION.raucb" \
	"$TARGET_DIR/etc/rauc/keyring.pem"

echo "post-image.sh: SD card: $binaries/sipsensor-sdcard.img"
echo "post-image.sh: update bundle: $binaries/sipsensor-$board-$SIPSENSOR_VERSION.raucb"
