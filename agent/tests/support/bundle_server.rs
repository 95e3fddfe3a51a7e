//! A bundle server for the updater's tests: HTTPS with a throw-away CA's
//! certificate for 127.0.0.1, single byte ranges (docs/protocol.md 12.5),
//! and per connection a way to misbehave (drop, ignore the range, 416,
//! 404, a flipped byte) or to take its time.

#![allow(dead_code)] // each test crate uses a part of it
#![allow(clippy::unwrap_used)] // test code: a failed setup step should panic

use sipsensor_runtime::sip_transport::tls::{Identity, server_config_from_pem};
use sipsensor_testkit::pki::TestCa;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How the server answers one connection.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// Honour the range (206), or 200 without one.
    Honour,
    /// As `Honour`, but close after this many body bytes.
    DropAfter(usize),
    /// 200 with the whole file whatever the range.
    IgnoreRange,
    Unsatisfiable,
    NotFound,
    /// As `Honour` with one byte of the body flipped.
    Corrupt,
    /// As `Honour`, the body in `chunks` parts with `pause` after each:
    /// a download that lasts.
    Paced {
        chunks: usize,
        pause: Duration,
    },
}

pub struct Server {
    pub addr: SocketAddr,
    /// The `Range` header of each request (`None`: none).
    pub ranges: Arc<Mutex<Vec<Option<String>>>>,
}

pub async fn serve(ca: &TestCa, bundle: Arc<Vec<u8>>, answers: Vec<Answer>) -> Server {
    let leaf = ca.issue(&["127.0.0.1"]);
    let config = server_config_from_pem(
        Identity {
            certificate: leaf.certificate.as_bytes(),
            private_key: leaf.private_key.as_bytes(),
        },
        None,
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    let mut answers: VecDeque<Answer> = answers.into();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let answer = answers.pop_front().unwrap_or(Answer::Honour);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_string();
            let range = head
                .lines()
                .find_map(|l| l.strip_prefix("range: ").or(l.strip_prefix("Range: ")))
                .map(str::to_owned);
            seen.lock().unwrap().push(range.clone());
            let from: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let len = bundle.len();
            let (status, extra, mut body) = match answer {
                Answer::NotFound => ("404 Not Found", String::new(), Vec::new()),
                Answer::Unsatisfiable => (
                    "416 Range Not Satisfiable",
                    format!("Content-Range: bytes */{len}\r\n"),
                    Vec::new(),
                ),
                Answer::IgnoreRange => ("200 OK", String::new(), bundle.to_vec()),
                _ if range.is_some() => (
                    "206 Partial Content",
                    format!("Content-Range: bytes {from}-{}/{len}\r\n", len - 1),
                    bundle[from..].to_vec(),
                ),
                _ => ("200 OK", String::new(), bundle.to_vec()),
            };
            if let Answer::Corrupt = answer {
                let last = body.len() - 1;
                body[last] ^= 0xff;
            }
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = tls.write_all(head.as_bytes()).await;
            let cut = match answer {
                Answer::DropAfter(n) => n.min(body.len()),
                _ => body.len(),
            };
            match answer {
                Answer::Paced { chunks, pause } => {
                    for part in body[..cut].chunks(cut.div_ceil(chunks.max(1)).max(1)) {
                        let _ = tls.write_all(part).await;
                        let _ = tls.flush().await;
                        tokio::time::sleep(pause).await;
                    }
                }
                _ => {
                    let _ = tls.write_all(&body[..cut]).await;
                }
            }
            let _ = tls.flush().await;
            if cut < body.len() {
                // A dropped connection, not a clean close.
                drop(tls);
                continue;
            }
            let _ = tls.shutdown().await;
        }
    });
    Server { addr, ranges }
}
