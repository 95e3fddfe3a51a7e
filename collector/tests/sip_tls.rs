//! SIP over TLS with the collector (`sip.tls`): a sensor that keeps no
//! listener registers over its own TLS connection, verifying the
//! collector's certificate against the site CA, and the collector's call
//! reaches it back on that connection (RFC 5923) as a `sips:` request.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sip_support;

use sip_support::*;
use sipsensor_collector::sip::control::{CallRequest, Request, WantedStream};
use sipsensor_protocol::{
    IdGenerator, LiteralsOnly, LocalEndpoint, Password, RegistrationConfig, RegistrationEvent,
    Transport, UaConfig, UaEvent, UserAgent,
};
use sipsensor_runtime::sip_transport::{NetConfig, Network, TlsConfig, tls};
use sipsensor_runtime::ua_driver;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::timeout;

fn wanted() -> WantedStream {
    WantedStream {
        clock_hz: 10,
        rate_hz: Some(10.0),
        samples_per_packet: Some(1),
        channels: vec!["ch0:Cel:-2".parse().unwrap()],
        inputs: vec![],
    }
}

/// The first event matching `want` within 10 s.
async fn until(events: &mut mpsc::Receiver<UaEvent>, want: impl Fn(&UaEvent) -> bool) -> UaEvent {
    loop {
        let event = timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("an event in time")
            .expect("driver running");
        if let UaEvent::Registration(RegistrationEvent::Failed { reason }) = &event {
            panic!("registration failed: {reason}");
        }
        if want(&event) {
            return event;
        }
    }
}

#[test]
fn a_sensor_registers_over_tls_and_is_called_back_on_its_connection() {
    runtime().block_on(async {
        let files = tempfile::tempdir().unwrap();
        let (section, port, ca) = tls_listener(files.path());
        let mut c = start(&[("s1", "pw-1")], &sip_section(&section)).await;

        // The sensor: TLS out only, trusting the site CA.
        let client = tls::client_config_from_pem(ca.certificate_pem().as_bytes(), None).unwrap();
        let (network, incoming) = Network::bind(NetConfig {
            tls: Some(TlsConfig {
                client: Some(client),
                ..TlsConfig::default()
            }),
            ..NetConfig::default()
        })
        .await
        .unwrap();
        // No listener: the Contact names an address nobody answers on, so
        // the collector can only come back on the sensor's connection.
        let local = LocalEndpoint::new(Transport::Tls, "127.0.0.1:9".parse().unwrap());
        let proxy = format!("sip:127.0.0.1:{port};transport=tls");
        let mut config = UaConfig::new(local.clone(), format!("sip:s1@{DOMAIN}"));
        config.outbound_proxy = Some(proxy.clone());
        let ua =
            UserAgent::new(config, IdGenerator::from_entropy(), Box::new(LiteralsOnly)).unwrap();
        let (handle, mut events, _task) = ua_driver::spawn(ua, network, incoming);
        let mut registration = RegistrationConfig::new(
            format!("sip:{DOMAIN}"),
            format!("sip:s1@{DOMAIN}"),
            "s1",
            Password::new("pw-1"),
            local,
        );
        registration.outbound_proxy = Some(proxy);
        handle
            .with(move |ua, now| ua.register(registration, now))
            .await
            .unwrap()
            .unwrap();
        until(&mut events, |e| {
            matches!(
                e,
                UaEvent::Registration(RegistrationEvent::Registered { .. })
            )
        })
        .await;

        let control = c.control.clone();
        let call = tokio::task::spawn_blocking(move || {
            let request = Request::Call(CallRequest {
                aor: format!("sip:s1@{DOMAIN}"),
                stream: Some(wanted()),
            });
            sipsensor_collector::sip::control::request(
                &control,
                &request,
                sipsensor_collector::sip::control::CLIENT_TIMEOUT,
            )
        });
        let UaEvent::IncomingCall { session, offer, .. } =
            until(&mut events, |e| matches!(e, UaEvent::IncomingCall { .. })).await
        else {
            unreachable!()
        };
        // Called over TLS, the offer carries SRTP keys (RFC 4568).
        let offer = String::from_utf8_lossy(&offer);
        assert!(
            offer.contains(" RTP/SAVP ") && offer.contains("a=crypto:"),
            "{offer}"
        );
        handle
            .with(move |ua, now| ua.reject(session, 486, None, now))
            .await
            .unwrap()
            .unwrap();
        let reply = call.await.unwrap().unwrap();
        assert!(!reply.ok && reply.message.contains("486"), "{reply:?}");
        c.stop().await;
    });
}
