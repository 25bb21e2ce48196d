//! The core's scheme decision as the native transport carries it out: a plain-HTTP
//! loopback registry is probed for TLS once per run, however many requests race to it, and
//! the probe is a bare handshake that never becomes an HTTP request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ferry_core::transport::Transport;
use ferry_native::NativeTransport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts TLS handshakes (connections that open with a TLS record, `0x16`) and HTTP
/// requests; answers requests `200` on kept-alive connections, and handshakes as Go's and
/// hyper's plain servers do, with a `400` and a close.
async fn plain_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (handshakes, requests) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let counters = (handshakes.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (handshakes, requests) = (counters.0.clone(), counters.1.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if buffer[0] == 0x16 {
                        handshakes.fetch_add(1, Ordering::SeqCst);
                        let _ =
                            socket.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n").await;
                        return;
                    }
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        requests.fetch_add(1, Ordering::SeqCst);
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                        if socket.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (base, handshakes, requests)
}

#[tokio::test]
async fn a_plain_loopback_registry_is_probed_once_and_spoken_to_over_http() {
    let (base, handshakes, requests) = plain_server().await;
    let transport = NativeTransport::new().unwrap();
    let sends = (0..8).map(|i| {
        let request = http::Request::get(format!("{base}/v2/r/manifests/{i}")).body(Vec::new()).unwrap();
        transport.send(request)
    });
    for answer in futures_util::future::join_all(sends).await {
        assert_eq!(answer.unwrap().status(), 200);
    }
    let again = http::Request::head(format!("{base}/v2/")).body(Vec::new()).unwrap();
    assert_eq!(transport.send(again).await.unwrap().status(), 200);
    assert_eq!(handshakes.load(Ordering::SeqCst), 1, "one probe for the whole run");
    assert_eq!(requests.load(Ordering::SeqCst), 9, "the probe is not a request");

    // Another run (another transport) decides again.
    let fresh = NativeTransport::new().unwrap();
    let request = http::Request::get(format!("{base}/v2/")).body(Vec::new()).unwrap();
    assert_eq!(fresh.send(request).await.unwrap().status(), 200);
    assert_eq!(handshakes.load(Ordering::SeqCst), 2);
}
