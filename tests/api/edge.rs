//! The connection edge, below HTTP routing: how long a client may take to send its headers, and how many
//! connections one address may hold. Spoken over raw TCP, since a well-behaved client cannot show either.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{DbKind, TestApp, spawn_app_with};

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Sends `GET /health` on a kept-alive connection and reads one response; the status line, or `None` when the
/// server closed or reset the connection instead of answering.
async fn health_on(stream: &mut TcpStream) -> Option<String> {
    stream.write_all(HEALTH).await.ok()?;
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    // /health answers a short JSON body; stop once the whole of it has arrived.
    while !received.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer or a close within 5 s")
            .ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&received);
    text.lines().next().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_headers_is_disconnected() {
    let app = spawn_app_with(DbKind::Sqlite, &[("HEADER_READ_TIMEOUT_SECONDS", "1")]).await;
    let mut slow = connect(&app).await;

    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;

    assert!(
        closed.is_ok(),
        "the server still holds a connection whose headers never ended"
    );
    // Keep-alive still works for clients that send whole requests.
    let mut quick = connect(&app).await;
    for _ in 0..2 {
        assert_eq!(
            health_on(&mut quick).await.as_deref(),
            Some("HTTP/1.1 200 OK")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_per_address_are_refused_while_the_others_work() {
    let app = spawn_app_with(DbKind::Sqlite, &[("MAX_CONNECTIONS_PER_IP", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&app).await;
        assert_eq!(
            health_on(&mut stream).await.as_deref(),
            Some("HTTP/1.1 200 OK")
        );
        held.push(stream);
    }

    let mut extra = connect(&app).await;
    let refused = health_on(&mut extra).await;

    assert_eq!(
        refused, None,
        "a fourth connection from 127.0.0.1 is served"
    );
    for stream in &mut held {
        assert_eq!(
            health_on(stream).await.as_deref(),
            Some("HTTP/1.1 200 OK"),
            "the connections within the limit keep working"
        );
    }
    // A closed connection frees its place.
    drop(held.pop());
    let freed = TestApp::eventually(|| async {
        let mut again = connect(&app).await;
        health_on(&mut again).await.is_some()
    })
    .await;
    assert!(
        freed,
        "the place of a closed connection is never given back"
    );
}
