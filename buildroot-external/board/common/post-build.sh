#!/bin/sh
# Buildroot post-build script of the sipsensor boards.
#   $1  target directory (Buildroot passes it)
#   $2  board: beaglebone | raspberrypi4-64 | qemu-arm-virt
# Installs what images/ cannot hold as plain files: the RAUC system
# configuration rendered for this board, the RAUC keyring, the fstab
# entries, the mount points and the kernel's device trees under
# /boot/dtbs where the A/B boot script looks for them.
set -eu

target=$1
board=${2:?board name missing from BR2_ROOTFS_POST_SCRIPT_ARGS}
images=$BR2_EXTERNAL_SIPSENSOR_PATH/../images

# BR2_* values of this build.
# shellcheck disable=SC1090 # the build's .config
. "$BR2_CONFIG"

if [ "${BR2_SIPSENSOR_SYSTEM:-}" != y ]; then
	echo "post-build.sh: BR2_SIPSENSOR_SYSTEM is not enabled" >&2
	exit 1
fi

# RAUC: system.conf for this board and the keyring it trusts.
mkdir -p "$target/etc/rauc"
"$images/scripts/render-system-conf" "$BR2_SIPSENSOR_RAUC_COMPATIBLE" \
	"$target/etc/rauc/system.conf"
keyring=${BR2_SIPSENSOR_RAUC_KEYRING:-}
if [ "${BR2_SIPSENSOR_RAUC_RELEASE:-}" = y ]; then
	"$images/rauc/check-release-keys" "$keyring"
elif [ -z "$keyring" ]; then
	"$images/scripts/mk-dev-keys" "$BASE_DIR/sipsensor-dev-keys"
	keyring=$BASE_DIR/sipsensor-dev-keys/ca.cert.pem
	echo "post-build.sh: WARNING: trusting the development CA in $BASE_DIR/sipsensor-dev-keys;" \
		"set BR2_SIPSENSOR_RAUC_KEYRING for devices you ship" >&2
fi
install -m 0644 "$keyring" "$target/etc/rauc/keyring.pem"

# Boot and data partitions (noauto: mounted by S11sipsensor-storage once
# udev has made the by-partuuid links).
mkdir -p "$target/boot/firmware" "$target/data"
if ! grep -q 'sipsensor partitions' "$target/etc/fstab"; then
	cat "$images/fstab.append" >> "$target/etc/fstab"
fi

# SSH: root's authorized_keys and dropbear's host keys persist on the data
# partition (prepare-data creates the directories), so that a device keeps
# its host key across boots and updates.
mkdir -p "$target/root"
ln -sfn /data/sipsensor/ssh "$target/root/.ssh"
rm -rf "$target/etc/dropbear"
ln -s /data/sipsensor/dropbear "$target/etc/dropbear"

# Device trees next to the kernel, where boot.scr loads them from the slot.
mkdir -p "$target/boot/dtbs"
for dtb in "$target"/boot/*.dtb; do
	[ -e "$dtb" ] || continue
	mv "$dtb" "$target/boot/dtbs/"
done

# What this image is, for support and for the bundle version.
version=$(git -C "$BR2_EXTERNAL_SIPSENSOR_PATH" describe --always --dirty 2> /dev/null || echo unknown)
printf 'SIPSENSOR_BOARD=%s\nSIPSENSOR_VERSION=%s\n' "$board" "$version" \
	> "$target/etc/sipsensor-release"
# The image's own os-release: VERSION_ID is what the agent reports to the
# fleet (docs/protocol.md 12.3) and a rollout compares with the bundle's
# version (post-image.sh gives the bundle this same $version). Buildroot's
# names its own release there; /etc's file overrides /usr/lib's
# (os-release(5)), so Buildroot's link is replaced by a file.
rm -f "$target/etc/os-release"
{
	echo "NAME=sipsensor"
	echo "ID=sipsensor"
	echo "ID_LIKE=buildroot"
	echo "PRETTY_NAME=\"sipsensor $version ($board)\""
	echo "VERSION_ID=\"$version\""
	echo "VERSION=\"$version\""
} > "$target/etc/os-release"
