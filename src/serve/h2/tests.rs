//! HTTP/2 over in-memory streams and socket pairs, with the h2 crate's own
//! client; WebSocket echo with tungstenite's client.

use std::os::unix::net::UnixStream;
use std::sync::Arc;

use bytes::Bytes;
use h2::client::SendRequest;

use super::*;
use crate::apps::{App, Body, Request, Response};
use crate::routing::{Mount, Site};
use crate::serve::http::tests::dest;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Sends one request and reads its whole answer: (status, body).
async fn ask(client: &mut SendRequest<Bytes>, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut client = client.clone().ready().await.unwrap();
    let request = http::Request::builder().method(method).uri(format!("http://h.test{path}")).body(()).unwrap();
    let (response, mut send) = client.send_request(request, body.is_empty()).unwrap();
    if !body.is_empty() {
        send.send_data(Bytes::copy_from_slice(body), true).unwrap();
    }
    let response = response.await.unwrap();
    let status = response.status().as_u16();
    let mut recv = response.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.unwrap();
        let _ = recv.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    (status, got)
}

#[test]
fn the_preface_is_recognised_from_its_first_byte() {
    assert!(starts_preface(b"P"));
    assert!(starts_preface(b"PRI * HTTP/2.0\r\n"));
    assert!(starts_preface(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0"));
    assert!(!starts_preface(b""));
    assert!(!starts_preface(b"POST / HTTP/1.1\r\n"));
}

#[test]
fn concurrent_streams_reach_the_apps_with_their_bodies() {
    let dest = dest(&["http://h.test -> static:200 root", "http://h.test/echo -> echo"]);
    runtime().block_on(async {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move { connection(theirs, &dest).await });
        let (client, conn) = h2::client::handshake(ours).await.unwrap();
        tokio::spawn(async move { conn.await.unwrap() });
        let mut asks = Vec::new();
        for i in 0..20 {
            let mut client = client.clone();
            asks.push(tokio::spawn(async move {
                let body = format!("body {i}");
                let (status, echoed) = ask(&mut client, "POST", &format!("/echo/{i}?n={i}"), body.as_bytes()).await;
                let (root_status, root) = ask(&mut client, "GET", "/", b"").await;
                (i, status, String::from_utf8(echoed).unwrap(), root_status, root)
            }));
        }
        for handle in asks {
            let (i, status, echoed, root_status, root) = handle.await.unwrap();
            assert_eq!((status, root_status, root.as_slice()), (200, 200, &b"root"[..]));
            let v: serde_json::Value = serde_json::from_str(&echoed).unwrap();
            assert_eq!((v["body"].as_str(), v["path_info"].as_str()), (Some(format!("body {i}").as_str()), Some(format!("/{i}").as_str())));
            assert_eq!(v["query"], format!("n={i}"));
            // :authority reaches the app as Host.
            assert_eq!(v["headers"][0], serde_json::json!(["host", "h.test"]));
        }
        drop(client);
        server.await.unwrap();
    });
}

/// Reads its whole request body on a blocking thread and answers a large
/// streamed body of that many repetitions of the body.
struct Repeat;
impl App for Repeat {
    fn call(&self, req: &mut Request<'_>) -> Response {
        let mut body = Vec::new();
        req.body.read_to_end(&mut body).unwrap();
        let big = body.repeat(200_000);
        let len = big.len() as u64;
        Response {
            status: 200,
            headers: vec![],
            body: Body::Stream { reader: Box::new(std::io::Cursor::new(big)), len: Some(len) },
            ..Default::default()
        }
    }
}

#[test]
fn blocking_apps_stream_bodies_both_ways_under_flow_control() {
    let t = dest(&["http://h.test -> echo"]);
    let mounts = vec![Mount { prefix: String::new(), route: "R".into(), app: Arc::new(Repeat) }];
    let site = Site { scheme: t.site.scheme, host: t.site.host.clone(), port: 80, mounts, forward: None };
    let dest = crate::routing::Destination { site: Arc::new(site), ..t };
    runtime().block_on(async {
        let (ours, theirs) = tokio::io::duplex(16 * 1024);
        tokio::spawn(async move { connection(theirs, &dest).await });
        let (client, conn) = h2::client::handshake(ours).await.unwrap();
        tokio::spawn(async move { conn.await.unwrap() });
        let asks: Vec<_> = ["ab", "xyz", "q"]
            .into_iter()
            .map(|word| {
                let mut client = client.clone();
                tokio::spawn(async move { (word, ask(&mut client, "PUT", "/r", word.as_bytes()).await) })
            })
            .collect();
        for handle in asks {
            let (word, (status, body)) = handle.await.unwrap();
            assert_eq!(status, 200);
            // Far past the client's 64 KiB window: it arrives as the window opens.
            assert_eq!(body.len(), word.len() * 200_000);
            assert!(body == word.repeat(200_000).as_bytes());
        }
    });
}

#[test]
fn h2c_with_prior_knowledge_on_an_http_connection() {
    let dest = dest(&["http://h.test -> static:201 made"]);
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || crate::serve::serve_plain(server_end, &dest, Vec::new()));
    runtime().block_on(async {
        client_end.set_nonblocking(true).unwrap();
        let socket = tokio::net::UnixStream::from_std(client_end).unwrap();
        let (mut client, conn) = h2::client::handshake(socket).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        assert_eq!(ask(&mut client, "GET", "/", b"").await, (201, b"made".to_vec()));
        assert_eq!(ask(&mut client, "HEAD", "/", b"").await, (201, Vec::new()));
        drop(client);
    });
    server.join().unwrap();
}

#[test]
fn echo_answers_a_websocket_upgrade_and_echoes_each_message() {
    use tungstenite::Message;
    let dest = dest(&["http://h.test -> echo"]);
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || crate::serve::serve_plain(server_end, &dest, Vec::new()));
    let (mut ws, response) = tungstenite::client::client("ws://h.test/chat", client_end).unwrap();
    assert_eq!(response.status(), 101);
    ws.send(Message::text("hello")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 255, 7])).unwrap();
    assert_eq!(ws.read().unwrap(), Message::binary(vec![0u8, 255, 7]));
    ws.send(Message::Ping(Bytes::from_static(b"p"))).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(Bytes::from_static(b"p")));
    ws.close(None).unwrap();
    while ws.read().is_ok() {}
    server.join().unwrap();
}

#[test]
fn websocket_protocol_errors_get_their_close_codes() {
    use std::io::{Read, Write};
    // Masked with the zero key unless said: payloads go as they are.
    let masked = |first: u8, payload: &[u8]| {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => frame.extend_from_slice(&[0x80 | 126, (n >> 8) as u8, n as u8]),
        }
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(payload);
        frame
    };
    let mut huge = vec![0x82, 0x80 | 127];
    huge.extend_from_slice(&100_000_000u64.to_be_bytes());
    huge.extend_from_slice(&[0; 4]);
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("text that is not UTF-8", masked(0x81, &[0xff, 0xfe]), 1007),
        ("an unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("a reserved bit", masked(0xc1, b"hi"), 1002),
        ("a 200-byte ping", masked(0x89, &[7; 200]), 1002),
        ("a 100 MB frame", huge, 1009),
    ];
    for (what, frame, code) in cases {
        let dest = dest(&["http://h.test -> echo"]);
        let (client_end, server_end) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || crate::serve::serve_plain(server_end, &dest, Vec::new()));
        let (mut ws, _) = tungstenite::client::client("ws://h.test/chat", client_end).unwrap();
        let stream = ws.get_mut();
        stream.write_all(&frame).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert_eq!(reply, [0x88, 2, (code >> 8) as u8, code as u8], "{what}");
        server.join().unwrap();
    }
}

/// The whole https path as the shim runs it: a socket pair, the TLS
/// handshake choosing h2 by ALPN, then HTTP/2 inside the session, with
/// bodies far larger than a TLS record and than rustls's buffers.
#[test]
fn h2_inside_tls_carries_large_bodies_both_ways() {
    let dir = crate::testing::temp_dir("h2-tls");
    let dest = dest(&["https://h.test -> echo"]);
    let authority = crate::serve::tls::authority(&dir).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(authority.ca_der.clone()).unwrap();
    let (client_end, server_end) = UnixStream::pair().unwrap();
    let ca_dir = dir.to_path_buf();
    let server = std::thread::spawn(move || crate::serve::serve(server_end, &dest, &ca_dir));
    runtime().block_on(async {
        client_end.set_nonblocking(true).unwrap();
        let socket = tokio::net::UnixStream::from_std(client_end).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("h.test").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, socket).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut client, conn) = h2::client::handshake(tls).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let big: Vec<u8> = (0..3_000_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (status, answer) = ask(&mut client, "POST", "/big", &big).await;
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert!(v["body"].as_str().unwrap().as_bytes() == big.as_slice());
        drop(client);
    });
    server.join().unwrap();
}
