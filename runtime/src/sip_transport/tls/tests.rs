//! TLS as an attacker would try it: a server with the wrong CA or the
//! wrong name, a client without the certificate asked for, a plain-TCP
//! peer and a silent one on the TLS port, a key that is not the
//! certificate's.

use super::*;
use crate::sip_transport::{Incoming, NetConfig, Network};
use sipsensor_protocol::Transport;
use sipsensor_testkit::pki::{Issued, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
const MSG: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
const REPLY: &[u8] = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";

fn identity(issued: &Issued) -> Identity<'_> {
    Identity {
        certificate: issued.certificate.as_bytes(),
        private_key: issued.private_key.as_bytes(),
    }
}

/// A network with only a TLS listener on loopback, serving `issued`.
async fn server(
    issued: &Issued,
    client_ca: Option<&TestCa>,
    tweak: impl FnOnce(&mut NetConfig),
) -> (Network, mpsc::Receiver<Incoming>, SocketAddr) {
    let ca_pem = client_ca.map(TestCa::certificate_pem);
    let server = server_config_from_pem(identity(issued), ca_pem.as_deref().map(str::as_bytes))
        .expect("server config");
    let mut config = NetConfig {
        tls: Some(TlsConfig {
            bind: Some("127.0.0.1:0".parse().expect("addr")),
            server: Some(server),
            ..TlsConfig::default()
        }),
        ..NetConfig::default()
    };
    tweak(&mut config);
    let (net, rx) = Network::bind(config).await.expect("bind");
    let addr = net.local_addr(Transport::Tls).expect("listening");
    (net, rx, addr)
}

/// A network that only connects out over TLS, trusting `ca`.
async fn client(
    ca: &TestCa,
    own: Option<&Issued>,
    server_name: Option<&str>,
) -> (Network, mpsc::Receiver<Incoming>) {
    let client = client_config_from_pem(ca.certificate_pem().as_bytes(), own.map(identity))
        .expect("client config");
    let config = NetConfig {
        tls: Some(TlsConfig {
            client: Some(client),
            server_name: server_name.map(str::to_owned),
            ..TlsConfig::default()
        }),
        ..NetConfig::default()
    };
    Network::bind(config).await.expect("bind")
}

async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    timeout(WAIT, rx.recv())
        .await
        .expect("in time")
        .expect("open")
}

#[tokio::test]
async fn a_request_and_its_answer_share_one_verified_connection() {
    let ca = TestCa::new("site CA");
    let (srv, mut srv_rx, addr) = server(&ca.issue(&["127.0.0.1"]), None, |_| {}).await;
    let (cli, mut cli_rx) = client(&ca, None, None).await;
    assert_eq!(cli.local_addr(Transport::Tls), None, "no listener");
    cli.send(MSG, addr, Transport::Tls).await.expect("sent");
    let Incoming::Message {
        data,
        source,
        transport,
    } = recv(&mut srv_rx).await
    else {
        panic!("not a message")
    };
    assert_eq!((data.as_slice(), transport), (MSG, Transport::Tls));
    // RFC 5923: the server reaches the client on the connection it opened.
    srv.send_on_connection(REPLY, source, Transport::Tls)
        .await
        .expect("answered");
    let back = recv(&mut cli_rx).await;
    assert_eq!((back.source(), back.transport()), (addr, Transport::Tls));
    srv.send(MSG, source, Transport::Tls)
        .await
        .expect("request back");
    recv(&mut cli_rx).await;
    assert_eq!(cli.stats().tls.connected, 1);
    assert_eq!(srv.stats().tls.accepted, 1);
    // Our end of the flow is where the server saw us come from.
    assert_eq!(
        cli.connection_local_addr(addr, Transport::Tls),
        Some(source)
    );
    assert_eq!(cli.connection_local_addr(addr, Transport::Tcp), None);
    assert_eq!(srv.stats().tls.connected, 0, "no second connection");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let ours = TestCa::new("site CA");
    let stranger = TestCa::new("stranger CA");
    let (_srv, mut srv_rx, addr) = server(&stranger.issue(&["127.0.0.1"]), None, |_| {}).await;
    let (cli, _cli_rx) = client(&ours, None, None).await;
    let err = cli
        .send(MSG, addr, Transport::Tls)
        .await
        .expect_err("refused");
    assert!(matches!(err, NetError::Handshake { .. }), "{err}");
    assert_eq!(cli.stats().tls.handshakes_failed, 1);
    assert!(
        timeout(Duration::from_millis(200), srv_rx.recv())
            .await
            .is_err(),
        "nothing delivered"
    );
}

#[tokio::test]
async fn the_certificate_must_name_the_server() {
    let ca = TestCa::new("site CA");
    let (_srv, _rx, addr) = server(&ca.issue(&["sip.example.net"]), None, |_| {}).await;
    // By IP, the certificate names no IP: refused.
    let (by_ip, _rx1) = client(&ca, None, None).await;
    assert!(by_ip.send(MSG, addr, Transport::Tls).await.is_err());
    // Another name: refused.
    let (wrong, _rx2) = client(&ca, None, Some("other.example.net")).await;
    assert!(wrong.send(MSG, addr, Transport::Tls).await.is_err());
    // The name the URI gave, for this address: accepted.
    let (named, _rx3) = client(&ca, None, None).await;
    named
        .set_tls_server_name(addr.ip(), "sip.example.net")
        .expect("a name");
    named
        .send(MSG, addr, Transport::Tls)
        .await
        .expect("verified by name");
}

#[tokio::test]
async fn a_required_client_certificate_must_come_from_the_ca() {
    let ca = TestCa::new("site CA");
    let (_srv, mut srv_rx, addr) = server(&ca.issue(&["127.0.0.1"]), Some(&ca), |_| {}).await;
    let (anonymous, _rx) = client(&ca, None, None).await;
    // TLS 1.3: the client learns of the refusal on its first read, the
    // server delivers nothing.
    let _ = anonymous.send(MSG, addr, Transport::Tls).await;
    let stranger = TestCa::new("stranger CA").issue(&["sensor-9"]);
    let (forged, _rx2) = client(&ca, Some(&stranger), None).await;
    let _ = forged.send(MSG, addr, Transport::Tls).await;
    assert!(
        timeout(Duration::from_millis(300), srv_rx.recv())
            .await
            .is_err(),
        "nothing from peers without the CA's certificate"
    );
    let (sensor, _rx3) = client(&ca, Some(&ca.issue(&["sensor-1"])), None).await;
    sensor
        .send(MSG, addr, Transport::Tls)
        .await
        .expect("mutual TLS");
    assert_eq!(recv(&mut srv_rx).await.transport(), Transport::Tls);
}

#[tokio::test]
async fn plain_tcp_on_the_tls_port_is_dropped_and_a_silent_peer_times_out() {
    let ca = TestCa::new("site CA");
    let (srv, mut srv_rx, addr) = server(&ca.issue(&["127.0.0.1"]), None, |c| {
        c.tls_handshake_timeout = Duration::from_millis(300);
    })
    .await;
    let mut plain = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    plain.write_all(MSG).await.expect("written");
    let mut rest = Vec::new();
    let read = timeout(WAIT, plain.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    // Closed, at most after a TLS alert; never a SIP answer.
    assert!(read.is_err() || !rest.starts_with(b"SIP/2.0"), "{rest:?}");
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let mut byte = [0u8; 1];
    let n = timeout(WAIT, silent.read(&mut byte))
        .await
        .expect("closed by the handshake timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(srv_rx.try_recv().is_err(), "nothing delivered");
    assert_eq!(srv.stats().tls.handshakes_failed, 2);
    assert_eq!(
        srv.stream(Transport::Tls).expect("tls").open_connections(),
        0
    );
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let ca = TestCa::new("site CA");
    let cert = ca.issue(&["127.0.0.1"]);
    let other = ca.issue(&["127.0.0.1"]);
    let mismatched = Identity {
        certificate: cert.certificate.as_bytes(),
        private_key: other.private_key.as_bytes(),
    };
    assert!(matches!(
        server_config_from_pem(mismatched, None),
        Err(TlsError::Rustls { .. })
    ));
    assert!(matches!(
        server_config_from_pem(
            Identity {
                certificate: cert.private_key.as_bytes(),
                private_key: cert.private_key.as_bytes(),
            },
            None
        ),
        Err(TlsError::NoCertificate(_))
    ));
}

#[test]
fn files_name_themselves_in_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new("site CA");
    let issued = ca.issue(&["127.0.0.1"]);
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &issued.certificate).expect("write");
    std::fs::write(&key, &issued.certificate).expect("write");
    let files = IdentityFiles {
        certificate: cert.clone(),
        private_key: key.clone(),
    };
    let err = server_config(&files, None).expect_err("no key in it");
    assert!(err.to_string().contains("key.pem"), "{err}");
    std::fs::write(&key, &issued.private_key).expect("write");
    server_config(&files, None).expect("good files");
    let missing = dir.path().join("missing-ca.pem");
    let err = client_config(&missing, None).expect_err("missing");
    assert!(matches!(err, TlsError::Read { ref path, .. } if *path == missing));
}
