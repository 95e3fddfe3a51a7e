//! A plain sensor and an SRTP sensor on one address (behind one NAT, or a
//! fleet half migrated): one registers over TLS and streams SRTP, the other
//! over UDP and streams plain RTP, to one collector. Both are stored whole;
//! before the fix the SRTP layer claimed every packet from the address and
//! the plain sensor got a session but no stored sample.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_loadgen::pump::MediaPump;
use sipsensor_loadgen::sensor::{SensorConfig, SimSensor, standard_stream};
use sipsensor_loadgen::sockets::SharedSocket;
use sipsensor_runtime::sip_transport::{TlsConfig, tls};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[test]
fn a_plain_and_an_srtp_sensor_from_one_address_are_both_stored_whole() {
    runtime().block_on(async {
        let files = tempfile::tempdir().unwrap();
        let (section, port, ca) = tls_listener(files.path());
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut c = start(&[("s1", "pw-1"), ("s2", "pw-2")], &sip_section(&section)).await;
        let pump = MediaPump::start().unwrap();
        let client = tls::client_config_from_pem(ca.certificate_pem().as_bytes(), None).unwrap();
        let secure = SimSensor::start_over_tls(
            SensorConfig {
                aor: format!("sip:s1@{DOMAIN}"),
                username: "s1".into(),
                password: "pw-1".into(),
                sip_ip: loopback,
                registrar: Some(format!("sip:127.0.0.1:{port};transport=tls")),
                collector: Some(format!("sip:collector@127.0.0.1:{port};transport=tls")),
                expires: 600,
                capabilities: standard_stream(3, 10, 1),
                seed: 11,
            },
            TlsConfig {
                client: Some(client),
                ..TlsConfig::default()
            },
            SharedSocket::bind(loopback).unwrap(),
            pump.clone(),
        )
        .await
        .unwrap();
        let plain = sensor(&c, &pump, "s2", "pw-2", 22).await;
        secure.register().await.unwrap();
        plain.register().await.unwrap();
        assert!(secure.call().await.unwrap().srtp.is_some(), "SRTP over TLS");
        assert!(plain.call().await.unwrap().srtp.is_none(), "plain over UDP");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        secure.hangup().await;
        plain.hangup().await;

        for (s, aor) in [
            (&secure, "sip:s1@example.net"),
            (&plain, "sip:s2@example.net"),
        ] {
            let sent = s.counters.packets();
            assert!(sent >= 10, "{aor} sent {sent}");
            let id = c.sensor(aor).await.id;
            let stored = c.wait_samples(id, sent as usize * 3).await;
            assert_eq!(stored.len() as u64, sent * 3, "{aor}");
            check_exact(&stored, s);
        }
        assert_eq!(c.rejected("unauthenticated"), 0.0);
        c.stop().await;
    });
}
