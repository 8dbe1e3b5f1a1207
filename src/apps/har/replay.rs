//! Replaying recorded entries: whether an entry answers a request (method,
//! scheme, host, port, path, query in any order, and the body when the
//! request has one, JSON compared as JSON), the answer it gives, and each
//! entry as a WireMock stub mapping — what `intercept har2stubs` writes and
//! what the near-miss report of a miss is measured against.

use serde_json::{Map, Value, json};

use super::file::Entry;
use crate::apps::app::{Body, Response};
use crate::apps::origin::is_hop_by_hop;

/// A request as replay compares it and recording relays it.
pub struct Asked<'a> {
    /// The method as received.
    pub method: &'a str,
    /// The route's scheme, `http` or `https`.
    pub scheme: &'a str,
    /// The host the client connected to.
    pub host: &'a str,
    /// The port the client connected to.
    pub port: u16,
    /// Path and query as received.
    pub target: &'a str,
    /// The target's path, percent-encoded, without the query.
    pub path: &'a str,
    /// The target's query, percent-decoded.
    pub query: &'a [(String, String)],
    /// The headers, in the order received.
    pub headers: &'a [(String, String)],
    /// The whole body, empty when there is none.
    pub body: &'a [u8],
}

/// Whether `e` answers `a`: same method, scheme, host (any case), port and
/// path (compared decoded), the same query in any order, and the same body
/// (JSON compared as JSON) when `a` has one.
pub fn matches(e: &Entry, a: &Asked<'_>) -> bool {
    e.method == a.method
        && e.scheme == a.scheme
        && e.host.eq_ignore_ascii_case(a.host)
        && e.port == a.port
        && decoded(&e.path) == decoded(a.path)
        && sorted(&e.query) == sorted(a.query)
        && (a.body.is_empty() || same_body(&e.request_body, a.body))
}

fn decoded(path: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(path).decode_utf8_lossy()
}

fn sorted(query: &[(String, String)]) -> Vec<&(String, String)> {
    let mut q: Vec<_> = query.iter().collect();
    q.sort();
    q
}

/// Equal bytes, or equal JSON documents however they are spaced.
fn same_body(recorded: &[u8], asked: &[u8]) -> bool {
    recorded == asked
        || matches!(
            (serde_json::from_slice::<Value>(recorded), serde_json::from_slice::<Value>(asked)),
            (Ok(a), Ok(b)) if a == b
        )
}

/// The answer an entry gives: its status and headers (less the hop-by-hop
/// ones and HTTP/2 pseudo-headers; the length is the body's), and its body.
/// A body stored decoded (a browser's or mitmproxy's export) goes out
/// without the `Content-Encoding` it arrived with.
pub fn answer(e: &Entry) -> Response {
    let headers = e
        .headers
        .iter()
        .filter(|(n, _)| !n.starts_with(':') && !is_hop_by_hop(n))
        .filter(|(n, _)| e.body_as_sent || !n.eq_ignore_ascii_case("content-encoding"))
        .cloned()
        .collect();
    Response {
        status: e.status,
        reason: Some(e.reason.clone()).filter(|r| !r.is_empty()),
        headers,
        body: Body::Bytes(e.body.clone()),
        ..Default::default()
    }
}

/// How reports and the journal name the entry at `index` (0-based).
pub fn label(e: &Entry, index: usize) -> String {
    format!("entry {} ({} {})", index + 1, e.method, e.url())
}

/// Every entry as a WireMock mapping. Entries for the same request become
/// one scenario answering them in recorded order, the last one repeating,
/// as replay does.
pub fn mappings(entries: &[Entry]) -> Vec<Value> {
    let key = |e: &Entry| {
        let body = serde_json::from_slice::<Value>(&e.request_body).map_or_else(|_| e.request_body.clone(), |v| v.to_string().into_bytes());
        let query: Vec<(String, String)> = sorted(&e.query).into_iter().cloned().collect();
        (e.method.clone(), e.scheme.clone(), e.host.clone(), e.port, e.path.clone(), query, body)
    };
    // Each entry's group of identical requests, in recorded order.
    let mut groups: std::collections::HashMap<_, Vec<usize>> = std::collections::HashMap::new();
    let keys: Vec<_> = entries.iter().map(key).collect();
    for (i, k) in keys.iter().enumerate() {
        groups.entry(k).or_default().push(i);
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let same = &groups[&keys[i]];
            let step = same.iter().position(|&j| j == i).unwrap_or(0);
            let mut m = mapping(e, i);
            if same.len() > 1 {
                let state = |n: usize| if n == 0 { "Started".to_string() } else { format!("answer {}", n + 1) };
                m["scenarioName"] = label(&entries[same[0]], same[0]).into();
                m["requiredScenarioState"] = state(step).into();
                if step + 1 < same.len() {
                    m["newScenarioState"] = state(step + 1).into();
                }
            }
            m
        })
        .collect()
}

/// One entry as a WireMock mapping (no scenario).
pub fn mapping(e: &Entry, index: usize) -> Value {
    let mut request = Map::new();
    request.insert("method".into(), e.method.clone().into());
    request.insert("urlPath".into(), e.path.clone().into());
    if !e.query.is_empty() {
        let mut params = Map::new();
        for (k, v) in &e.query {
            params.entry(k.clone()).or_insert_with(|| json!({"equalTo": v}));
        }
        request.insert("queryParameters".into(), params.into());
    }
    if !e.request_body.is_empty() {
        let pattern = match (serde_json::from_slice::<Value>(&e.request_body), std::str::from_utf8(&e.request_body)) {
            (Ok(json), _) if json.is_object() || json.is_array() => json!({"equalToJson": json}),
            (_, Ok(text)) => json!({"equalTo": text}),
            // No WireMock matcher we read takes bytes: any body matches.
            (_, Err(_)) => Value::Null,
        };
        if !pattern.is_null() {
            request.insert("bodyPatterns".into(), json!([pattern]));
        }
    }
    let answer = answer(e);
    let mut headers = Map::new();
    for (n, v) in &answer.headers {
        match headers.get_mut(n) {
            Some(Value::Array(list)) => list.push(v.clone().into()),
            Some(one) => *one = json!([one.clone(), v]),
            None => drop(headers.insert(n.clone(), v.clone().into())),
        }
    }
    let mut response = Map::new();
    response.insert("status".into(), e.status.into());
    if let Some(reason) = answer.reason {
        response.insert("statusMessage".into(), reason.into());
    }
    if !headers.is_empty() {
        response.insert("headers".into(), headers.into());
    }
    match std::str::from_utf8(&e.body) {
        Ok("") => {}
        Ok(text) => drop(response.insert("body".into(), text.into())),
        Err(_) => {
            use base64::Engine;
            response.insert("base64Body".into(), base64::engine::general_purpose::STANDARD.encode(&e.body).into());
        }
    }
    json!({"name": label(e, index), "request": request, "response": response})
}
