SUMMARY = "sipsensor device agent"
DESCRIPTION = "Reads sensors (IIO, I2C, GPIO, 1-Wire), registers with a SIP \
               registrar, sets up a session with a collector and streams the \
               samples over RTP from a real-time thread."
SECTION = "net"

require recipes-sipsensor/sipsensor-source.inc
require sipsensor-agent-crates.inc

inherit cargo cargo-update-recipe-crates systemd

# The archive holds the agent's Cargo workspace: build its agent/ member
# against the root Cargo.lock. sipsensor-agent-crates.inc lists the crates
# of that lock; `make images-refresh` in the repository regenerates it and
# `make test` fails when it is stale.
CARGO_SRC_DIR = "agent"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

do_configure:prepend() {
    # The archive carries the crates vendored too, for Buildroot; here
    # bitbake fetches them, so cargo must not find that copy.
    rm -rf ${S}/.cargo ${S}/VENDOR
}

do_compile:prepend() {
    # `sipsensor-agent --version` names the commit make dist packed.
    export SIPSENSOR_AGENT_BUILD="$(cat ${S}/SIPSENSOR_BUILD)"
}

SYSTEMD_SERVICE:${PN} = "sipsensor-agent.service"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/images/systemd/sipsensor-agent.service ${D}${systemd_system_unitdir}/

    install -d ${D}${libexecdir}/sipsensor
    install -m 0755 ${S}/images/rootfs-overlay/usr/libexec/sipsensor/agent-exec ${D}${libexecdir}/sipsensor/

    install -d ${D}${sysconfdir}/default ${D}${sysconfdir}/sipsensor
    install -m 0644 ${S}/images/rootfs-overlay/etc/default/sipsensor ${D}${sysconfdir}/default/
    install -m 0644 ${S}/images/rootfs-overlay/etc/sipsensor/agent.yaml ${D}${sysconfdir}/sipsensor/
    # Credentials and state live on the data partition: the root
    # filesystem is read-only and replaced by every update.
    ln -sf /data/sipsensor/secrets.yaml ${D}${sysconfdir}/sipsensor/secrets.yaml
    # The site CA, copied there from the boot partition's ca.pem by
    # prepare-data (sipsensor-system).
    ln -sf /data/sipsensor/ca.pem ${D}${sysconfdir}/sipsensor/ca.pem
    install -d ${D}${localstatedir}/lib
    ln -sf /data/sipsensor/state ${D}${localstatedir}/lib/sipsensor
}

FILES:${PN} += "${libexecdir}/sipsensor ${localstatedir}/lib/sipsensor"
CONFFILES:${PN} = "${sysconfdir}/default/sipsensor ${sysconfdir}/sipsensor/agent.yaml"
