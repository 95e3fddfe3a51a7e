use super::*;

fn config(flow: Option<Target>) -> TrustConfig {
    TrustConfig {
        flow,
        callers: vec![],
        realm: "s1@example.net".into(),
        aor: "sip:s1@example.net".into(),
        allow_md5: false,
        clock: WallClock::new(Instant::now(), 1_800_000_000),
    }
}

#[test]
fn the_flow_is_a_connection_to_the_proxy_not_its_address() {
    let proxy: std::net::SocketAddr = "192.0.2.20:5060".parse().unwrap();
    let tcp = Target::new(sipsensor_protocol::Transport::Tcp, proxy);
    let udp = Target::new(sipsensor_protocol::Transport::Udp, proxy);
    let trust = Trust::flow_only(&config(Some(tcp)));
    assert!(trust.is_flow(tcp));
    assert!(!trust.is_flow(udp));
    // A UDP "flow" in the config is ignored: a datagram's source is free
    // for anyone to write.
    let trust = Trust::flow_only(&config(Some(udp)));
    assert!(!trust.is_flow(udp));
}
