SUMMARY = "sipsensor A/B system integration"
DESCRIPTION = "RAUC system configuration and keyring, U-Boot environment \
               access for the boot counter, the boot and data partition \
               mounts, the health check that marks a new slot good once \
               the agent has registered, the agent's user and its device \
               groups, and the watchdog systemd feeds."
SECTION = "base"

require recipes-sipsensor/sipsensor-source.inc

# "1" for devices you ship: the keyring must be the release CA, never one
# made by mk-dev-keys (docs/building-images.md, "Release keys").
SIPSENSOR_RAUC_RELEASE ??= "0"
# check-release-keys reads the certificates with openssl.
DEPENDS += "${@'openssl-native' if d.getVar('SIPSENSOR_RAUC_RELEASE') == '1' else ''}"

inherit systemd useradd

# system.conf names the machine (RAUC compatible), so the package does too.
PACKAGE_ARCH = "${MACHINE_ARCH}"
INHIBIT_DEFAULT_DEPS = "1"

SYSTEMD_SERVICE:${PN} = "sipsensor-data.service sipsensor-health.service data.mount boot-firmware.mount \
                         sipsensor-reboot.path"

# The agent's own user (the same uid/gid 950 as the Buildroot and Debian
# images, so that its files on the data partition keep their owner), in
# the groups the udev rules give the sensor buses to.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system i2c; --system gpio; --system iio"
USERADD_PARAM:${PN} = "--system --uid 950 --user-group --groups i2c,gpio,iio \
                       --home-dir / --no-create-home --shell /sbin/nologin \
                       --comment 'sipsensor agent' sipsensor"

# The keyring is read from outside the layer: let a change of it rebuild.
do_install[file-checksums] += "${SIPSENSOR_RAUC_KEYRING_FILE}:False"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    if [ ! -f "${SIPSENSOR_RAUC_KEYRING_FILE}" ]; then
        bbfatal "No RAUC keyring at ${SIPSENSOR_RAUC_KEYRING_FILE}. For a development CA run \
images/scripts/mk-dev-keys ${SIPSENSOR_RAUC_KEY_DIR} in the sipsensor repository; \
for devices you ship set SIPSENSOR_RAUC_KEYRING_FILE."
    fi

    if [ "${SIPSENSOR_RAUC_RELEASE}" = "1" ]; then
        ${S}/images/rauc/check-release-keys ${SIPSENSOR_RAUC_KEYRING_FILE} ||
            bbfatal "SIPSENSOR_RAUC_RELEASE = \"1\" needs the release keyring in SIPSENSOR_RAUC_KEYRING_FILE"
    fi

    overlay=${S}/images/rootfs-overlay

    install -d ${D}${sysconfdir}/rauc
    ${S}/images/scripts/render-system-conf ${SIPSENSOR_RAUC_COMPATIBLE} ${D}${sysconfdir}/rauc/system.conf
    install -m 0644 ${SIPSENSOR_RAUC_KEYRING_FILE} ${D}${sysconfdir}/rauc/keyring.pem
    install -m 0644 $overlay/etc/fw_env.config ${D}${sysconfdir}/fw_env.config

    install -d ${D}${libexecdir}/sipsensor
    for f in health-check prepare-data rauc-pre-install unlock-console; do
        install -m 0755 $overlay/usr/libexec/sipsensor/$f ${D}${libexecdir}/sipsensor/
    done

    install -d ${D}${systemd_system_unitdir}
    for u in ${SYSTEMD_SERVICE:${PN}} sipsensor-reboot.service; do
        install -m 0644 ${S}/images/systemd/$u ${D}${systemd_system_unitdir}/
    done
    # Who may talk to RAUC: root, and the agent's group for installing.
    install -d ${D}${sysconfdir}/dbus-1/system.d
    install -m 0644 $overlay/etc/dbus-1/system.d/sipsensor-rauc.conf ${D}${sysconfdir}/dbus-1/system.d/

    install -d ${D}${sysconfdir}/udev/rules.d
    install -m 0644 $overlay/etc/udev/rules.d/60-sipsensor-devices.rules ${D}${sysconfdir}/udev/rules.d/
    install -m 0644 $overlay/etc/udev/rules.d/61-sipsensor-card.rules ${D}${sysconfdir}/udev/rules.d/
    install -d ${D}${systemd_system_unitdir}/dropbearkey.service.d
    install -m 0644 ${S}/images/systemd/dropbearkey-sipsensor.conf \
        ${D}${systemd_system_unitdir}/dropbearkey.service.d/sipsensor.conf
    install -d ${D}${systemd_unitdir}/system.conf.d
    install -m 0644 ${S}/images/systemd/watchdog.conf ${D}${systemd_unitdir}/system.conf.d/sipsensor-watchdog.conf

    install -d ${D}/data ${D}/boot/firmware
    # root's authorized_keys persist on the data partition.
    install -d ${D}${ROOT_HOME}
    ln -sf /data/sipsensor/ssh ${D}${ROOT_HOME}/.ssh
}

FILES:${PN} += "${libexecdir}/sipsensor /data /boot/firmware ${ROOT_HOME}/.ssh \
                ${systemd_unitdir}/system.conf.d"
# util-linux-mount: the boot slot's bundle hook mounts the card's halves
# with -o loop,offset= (images/rauc/boot-slot-hook).
RDEPENDS:${PN} = "e2fsprogs-e2fsck rauc sipsensor-agent u-boot-fw-utils util-linux-mount"
# Stands in for meta-rauc's example rauc-conf.
RPROVIDES:${PN} += "virtual-rauc-conf"
