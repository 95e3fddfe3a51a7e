//! The Contact we give names a listener the peer can reach over the
//! transport the dialog uses: a TLS-only sensor has no UDP to send its
//! ACK and BYE to (found by loadgen's SRTP benchmark: every call over TLS
//! ended after 64*T1 without its ACK).

use super::*;

const SENSOR_TLS: &str = "203.0.113.7:40001";

fn collector_with_tls_listener() -> UserAgent {
    let local = LocalEndpoint::new(Transport::Udp, COLLECTOR.parse().unwrap());
    let mut config = UaConfig::new(local, "sip:collector@example.net");
    config.tls_local = Some(LocalEndpoint::new(
        Transport::Tls,
        "192.0.2.9:5061".parse().unwrap(),
    ));
    UserAgent::new(config, IdGenerator::seeded(4), Box::new(LiteralsOnly)).unwrap()
}

fn invite(transport: &str) -> Vec<u8> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 203.0.113.7\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\nm=application 40000 RTP/AVP 96\r\n";
    format!(
        "INVITE sip:collector@example.net SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {SENSOR_TLS};branch=z9hG4bKc1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:s1@example.net>;tag=f1\r\n\
         To: <sip:collector@example.net>\r\n\
         Call-ID: contact-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:s1@{SENSOR_TLS};transport={transport}>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// The Contact of the 2xx the collector sends to an INVITE that came over
/// `transport`.
fn contact_of_2xx(transport: Transport) -> String {
    let mut ua = collector_with_tls_listener();
    let now = crate::test_clock::base();
    let source = Target::new(transport, SENSOR_TLS.parse().unwrap());
    ua.handle_input(&invite(transport.token()), source, now);
    let mut session = None;
    while let Some(o) = ua.poll_output() {
        if let Output::Event(UaEvent::IncomingCall { session: s, .. }) = o {
            session = Some(s);
        }
    }
    let session = session.expect("the INVITE reached the TU");
    ua.accept(session, b"v=0\r\n".to_vec(), now).unwrap();
    while let Some(o) = ua.poll_output() {
        if let Output::Transmit { bytes, .. } = o {
            let text = String::from_utf8(bytes).unwrap();
            if text.starts_with("SIP/2.0 200") {
                return text
                    .lines()
                    .find(|l| l.starts_with("Contact:"))
                    .expect("a 2xx to INVITE has a Contact (12.1.1)")
                    .to_owned();
            }
        }
    }
    panic!("no 200 sent");
}

#[test]
fn a_2xx_over_tls_names_the_tls_listener_and_over_udp_the_udp_one() {
    assert_eq!(
        contact_of_2xx(Transport::Tls),
        "Contact: <sips:192.0.2.9:5061>"
    );
    assert_eq!(
        contact_of_2xx(Transport::Udp),
        "Contact: <sip:192.0.2.9:5060>"
    );
}

#[test]
fn our_request_to_a_sips_contact_names_the_tls_listener() {
    let ua = collector_with_tls_listener();
    assert_eq!(
        ua_config_contact(&ua, Transport::Tls),
        "sips:192.0.2.9:5061"
    );
    assert_eq!(ua_config_contact(&ua, Transport::Udp), "sip:192.0.2.9:5060");
}

fn ua_config_contact(ua: &UserAgent, transport: Transport) -> String {
    ua.config.contact_for(transport)
}
