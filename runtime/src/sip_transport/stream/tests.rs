use super::*;
use sipsensor_protocol::{FrameError, KEEPALIVE_PONG};
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);
const MSG: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";

async fn transport(
    addr: &str,
    tweak: impl FnOnce(&mut NetConfig),
) -> (
    StreamTransport,
    mpsc::Receiver<Incoming>,
    Arc<StreamCounters>,
) {
    let mut config = NetConfig::default();
    tweak(&mut config);
    let (tx, rx) = mpsc::channel(8);
    let counters = Arc::new(StreamCounters::default());
    let t = StreamTransport::bind(
        Some(addr.parse().unwrap()),
        None,
        &config,
        tx,
        counters.clone(),
    )
    .await
    .unwrap();
    (t, rx, counters)
}

async fn recv(rx: &mut mpsc::Receiver<Incoming>) -> Incoming {
    timeout(WAIT, rx.recv()).await.unwrap().unwrap()
}

/// Poll a condition every 20 ms for up to 5 s.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..250 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn reuses_one_connection_both_ways_v4_and_v6() {
    for host in ["127.0.0.1:0", "[::1]:0"] {
        let (a, mut a_rx, a_count) = transport(host, |_| {}).await;
        let (b, mut b_rx, b_count) = transport(host, |_| {}).await;
        a.send(MSG, b.local_addr().unwrap()).await.unwrap();
        a.send(MSG, b.local_addr().unwrap()).await.unwrap();
        let first = recv(&mut b_rx).await;
        let second = recv(&mut b_rx).await;
        assert_eq!(first, second);
        let peer = first.source();
        assert_eq!(
            peer.ip(),
            a.local_addr().unwrap().ip(),
            "left from the listener's IP"
        );
        // b answers on the accepted connection; a sees it from b's listener.
        b.send_existing(MSG, peer).await.unwrap();
        b.send(MSG, peer).await.unwrap();
        assert_eq!(recv(&mut a_rx).await.source(), b.local_addr().unwrap());
        assert_eq!(recv(&mut a_rx).await.source(), b.local_addr().unwrap());
        assert_eq!(a_count.snapshot().connected, 1);
        assert_eq!(b_count.snapshot().accepted, 1);
        assert_eq!(b_count.snapshot().connected, 0);
    }
}

#[tokio::test]
async fn frames_a_split_stream_and_answers_pings() {
    let (b, mut b_rx, counters) = transport("127.0.0.1:0", |_| {}).await;
    let mut raw = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
    raw.write_all(b"\r\n\r\nOPTIONS sip:x SIP/2.0\r\nContent-Le")
        .await
        .unwrap();
    let mut pong = [0u8; 2];
    timeout(WAIT, raw.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, KEEPALIVE_PONG);
    raw.write_all(b"ngth: 5\r\n\r\nhel").await.unwrap();
    raw.write_all(b"lo").await.unwrap();
    let Incoming::Message { data, .. } = recv(&mut b_rx).await else {
        panic!("not a message")
    };
    assert_eq!(data, MSG);
    assert_eq!(counters.snapshot().pings_answered, 1);
}

#[tokio::test]
async fn our_ping_gets_a_pong() {
    let (a, _a_rx, a_count) = transport("[::1]:0", |_| {}).await;
    let (b, mut b_rx, _) = transport("[::1]:0", |_| {}).await;
    a.send(MSG, b.local_addr().unwrap()).await.unwrap();
    recv(&mut b_rx).await;
    a.ping(b.local_addr().unwrap()).await.unwrap();
    assert!(eventually(|| a_count.snapshot().pongs == 1).await);
    assert!(matches!(
        a.ping("[::1]:9".parse().unwrap()).await,
        Err(NetError::NoConnection(Transport::Tcp, _))
    ));
}

#[tokio::test]
async fn missing_content_length_rejects_and_closes() {
    let (b, mut b_rx, counters) = transport("127.0.0.1:0", |_| {}).await;
    let mut raw = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
    let head = b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
    raw.write_all(head).await.unwrap();
    let got = recv(&mut b_rx).await;
    assert_eq!(
        got,
        Incoming::Rejected {
            source: raw.local_addr().unwrap(),
            transport: Transport::Tcp,
            error: FrameError::MissingContentLength {
                head: head.to_vec()
            }
        }
    );
    let mut rest = Vec::new();
    let n = timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed without a reply");
    assert_eq!(counters.snapshot().stream_errors, 1);
    assert!(eventually(|| b.connections().is_empty()).await);
}

#[tokio::test]
async fn idle_connections_close_and_reopen_on_demand() {
    let idle = Duration::from_millis(300);
    let (a, _a_rx, a_count) = transport("127.0.0.1:0", |c| c.tcp_idle_timeout = idle).await;
    let (b, mut b_rx, _) = transport("127.0.0.1:0", |_| {}).await;
    a.send(MSG, b.local_addr().unwrap()).await.unwrap();
    let peer = recv(&mut b_rx).await.source();
    assert_eq!(a.connections(), [b.local_addr().unwrap()]);
    assert!(eventually(|| a.connections().is_empty()).await);
    assert_eq!(a_count.snapshot().closed_idle, 1);
    // b saw the close too, so a response can no longer use it.
    assert!(eventually(|| b.connections().is_empty()).await);
    assert!(matches!(
        b.send_existing(MSG, peer).await,
        Err(NetError::NoConnection(Transport::Tcp, _))
    ));
    a.send(MSG, b.local_addr().unwrap()).await.unwrap();
    recv(&mut b_rx).await;
    assert_eq!(a_count.snapshot().connected, 2);
}

#[tokio::test]
async fn connection_limit_and_size_limit() {
    let (b, _b_rx, counters) = transport("127.0.0.1:0", |c| {
        c.max_connections = 1;
        c.max_message_size = 64;
    })
    .await;
    let _first = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
    assert!(eventually(|| b.connections().len() == 1).await);
    let mut second = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
    let mut buf = [0u8; 1];
    let n = timeout(WAIT, second.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "refused connection is closed");
    assert_eq!(counters.snapshot().refused_over_limit, 1);
    assert!(matches!(
        b.send(&[b'x'; 65], "127.0.0.1:9".parse().unwrap()).await,
        Err(NetError::TooLarge { len: 65, max: 64 })
    ));
}

#[tokio::test]
async fn connect_failure_is_typed() {
    // A port nobody listens on: bind a listener, note its port, drop it.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (a, _rx, _) = transport("127.0.0.1:0", |_| {}).await;
    let dest: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(matches!(
        a.send(MSG, dest).await,
        Err(NetError::Connect { .. })
    ));
    assert!(a.connections().is_empty());
}

#[tokio::test]
async fn dropping_closes_connections() {
    let (b, _b_rx, _) = transport("[::1]:0", |_| {}).await;
    let mut raw = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
    assert!(eventually(|| b.connections().len() == 1).await);
    drop(b);
    let mut rest = Vec::new();
    let n = timeout(WAIT, raw.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
}

/// A connection from `source` (any port) to `to`.
async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// True if the peer closed `stream` within 5 s (EOF or reset).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn an_idle_flood_from_one_source_is_capped_closed_and_another_source_gets_in() {
    let (b, mut b_rx, counters) = transport("127.0.0.1:0", |c| {
        c.max_connections = 8;
        c.max_connections_per_source = 4;
        c.tcp_idle_timeout = Duration::from_millis(400);
    })
    .await;
    let to = b.local_addr().unwrap();
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(connect_from("127.0.0.1", to).await);
    }
    assert!(eventually(|| counters.snapshot().refused_per_source == 16).await);
    assert_eq!(b.open_connections(), 4);
    // A second source is not starved by the first.
    let mut other = connect_from("127.0.0.2", to).await;
    other.write_all(MSG).await.unwrap();
    assert_eq!(recv(&mut b_rx).await.source().ip().to_string(), "127.0.0.2");
    // The refused are closed at once, the admitted ones once idle.
    for stream in &mut flood {
        assert!(closed(stream).await);
    }
    assert!(eventually(|| b.open_connections() == 0).await);
    assert_eq!(counters.snapshot().closed_idle, 5);
}

#[tokio::test]
async fn a_message_trickled_but_never_completed_is_closed_as_idle() {
    let idle = Duration::from_millis(300);
    let (b, _b_rx, counters) = transport("127.0.0.1:0", |c| c.tcp_idle_timeout = idle).await;
    let mut slow = TcpStream::connect(b.local_addr().unwrap()).await.unwrap();
    // One byte every 100 ms: never a whole message, never idle by bytes.
    let started = Instant::now();
    let mut was_closed = false;
    for byte in b"INVITE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nX: "
        .iter()
        .cycle()
        .take(30)
    {
        if slow.write_all(&[*byte]).await.is_err() {
            was_closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    was_closed = was_closed || closed(&mut slow).await;
    assert!(was_closed, "a trickle does not keep a connection open");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(counters.snapshot().closed_idle, 1);
}

/// A connect-only transport listens nowhere, yet its own connections
/// carry messages both ways (the flows of RFC 5626).
#[tokio::test]
async fn without_accept_nothing_listens_but_own_connections_work() {
    let (quiet, mut quiet_rx, _) = transport("127.0.0.1:0", |c| c.tcp_accept = false).await;
    let quiet_addr = quiet.local_addr().unwrap();
    assert!(tokio::net::TcpStream::connect(quiet_addr).await.is_err());
    let (peer, mut peer_rx, _) = transport("127.0.0.1:0", |_| {}).await;
    let peer_addr = peer.local_addr().unwrap();
    quiet.send(MSG, peer_addr).await.unwrap();
    let Incoming::Message { source, .. } = recv(&mut peer_rx).await else {
        panic!("no message")
    };
    peer.send_existing(MSG, source).await.unwrap();
    assert_eq!(recv(&mut quiet_rx).await.source(), peer_addr);
}
