//! `echo`: answers 200 with a JSON description of the request, or accepts
//! a WebSocket upgrade (RFC 6455) and sends every message back as it came,
//! text and binary, answering pings and the close handshake.

use std::io::{Read, Write};

use base64::Engine;
use tungstenite::protocol::{Message, Role, WebSocket};

use super::app::{App, Body, Duplex, Request, Response};

/// Answers with a JSON description of the request.
pub struct Echo;

/// Echo bodies are held in memory to be quoted back; this caps them.
const ECHO_MAX_BODY: u64 = 16 << 20;

impl App for Echo {
    fn answers_from_memory(&self) -> bool {
        true
    }

    fn call(&self, req: &mut Request<'_>) -> Response {
        if let Some(accept) = websocket_accept(req) {
            return Response {
                status: 101,
                headers: vec![
                    ("Upgrade".into(), "websocket".into()),
                    ("Connection".into(), "Upgrade".into()),
                    ("Sec-WebSocket-Accept".into(), accept),
                ],
                body: Body::Upgrade(Box::new(echo_messages)),
                ..Default::default()
            };
        }
        let mut body = Vec::new();
        if let Err(e) = req.body.take(ECHO_MAX_BODY + 1).read_to_end(&mut body) {
            return Response::text(400, &format!("could not read the request body: {e}"));
        }
        if body.len() as u64 > ECHO_MAX_BODY {
            return Response::text(413, "the echo app quotes bodies up to 16 MiB");
        }
        let headers: Vec<_> = req.headers.iter().map(|(n, v)| serde_json::json!([n, v])).collect();
        let mut out = serde_json::json!({
            "method": req.method,
            "scheme": req.scheme,
            "host": req.host,
            "port": req.port,
            "script_name": req.script_name,
            "path_info": req.path_info,
            "query": req.query,
            "headers": headers,
        });
        match String::from_utf8(body) {
            Ok(text) => out["body"] = text.into(),
            Err(e) => {
                out["body"] = base64::engine::general_purpose::STANDARD.encode(e.as_bytes()).into();
                out["body_encoding"] = "base64".into();
            }
        }
        Response::new(200, "application/json", one_field_per_line(&out))
    }
}

/// JSON with one top-level field per line, each value compact: readable in
/// a terminal without spreading every header over four lines.
fn one_field_per_line(object: &serde_json::Value) -> Vec<u8> {
    let fields: Vec<String> = object
        .as_object()
        .map(|o| o.iter().map(|(k, v)| format!("  {}: {v}", serde_json::Value::from(k.as_str()))).collect())
        .unwrap_or_default();
    format!("{{\n{}\n}}\n", fields.join(",\n")).into_bytes()
}

/// The `Sec-WebSocket-Accept` for a valid WebSocket upgrade request (RFC
/// 6455 section 4.2.1); None for any other request.
fn websocket_accept(req: &Request<'_>) -> Option<String> {
    let has = |name: &str, token: &str| {
        req.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    let wanted = req.method == "GET" && has("Upgrade", "websocket") && has("Connection", "upgrade") && has("Sec-WebSocket-Version", "13");
    let key = req.header("Sec-WebSocket-Key").filter(|_| wanted)?;
    Some(tungstenite::handshake::derive_accept_key(key.trim().as_bytes()))
}

/// The close code RFC 6455 (§7.4.1) gives a client's protocol error:
/// 1007 for text that is not UTF-8, 1009 for a frame or message over the
/// limit (tungstenite's: 16 MiB a frame, 64 MiB a message), 1002 for any
/// other breach; None when the client just went away.
fn close_code(e: &tungstenite::Error) -> Option<u16> {
    use tungstenite::Error;
    match e {
        Error::Utf8(_) => Some(1007),
        Error::Capacity(_) => Some(1009),
        Error::Protocol(_) | Error::AttackAttempt => Some(1002),
        _ => None,
    }
}

/// Sends every message back until the client closes (or goes away).
fn echo_messages(socket: &mut dyn Duplex) {
    let mut ws = WebSocket::from_raw_socket(socket, Role::Server, None);
    loop {
        let sent = match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => ws.send(message),
            // Pongs to pings, and the reply to a close, are queued by the
            // read: flushing sends them.
            Ok(_) => ws.flush(),
            Err(e) => {
                if let Some(code) = close_code(&e) {
                    // The state machine stops at a protocol error: the close
                    // frame (server frames are unmasked) goes out as bytes.
                    let [high, low] = code.to_be_bytes();
                    let _ = ws.get_mut().write_all(&[0x88, 2, high, low]);
                    let _ = ws.get_mut().flush();
                }
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
