//! What a stubs route was asked, in WireMock's request journal shape
//! (`/__admin/requests`): one JSON line per request in the run's list,
//! with the stub that answered it, and read back as a [`Seen`] to count,
//! find and measure near misses against.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Map, Value, json};

use super::mapping::{Mapping, random_uuid};
use super::seen::Seen;
use crate::apps::app::query_pairs;

/// A journal entry for `seen`, answered by `stub` (None: no stub matched)
/// with `status`.
pub fn entry(seen: &Seen, scheme: &str, host: &str, port: u16, stub: Option<&Mapping>, status: u16) -> Value {
    let now = SystemTime::now();
    let millis = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let default_port = if scheme == "https" { 443 } else { 80 };
    let authority = if port == default_port { host.to_string() } else { format!("{host}:{port}") };
    let mut headers = Map::new();
    for (name, value) in &seen.headers {
        match headers.get_mut(name) {
            Some(Value::Array(values)) => values.push(value.clone().into()),
            Some(one) => *one = json!([one.take(), value]),
            None => {
                headers.insert(name.clone(), value.clone().into());
            }
        }
    }
    let mut query = Map::new();
    for (name, value) in &seen.query {
        let slot = query.entry(name.clone()).or_insert_with(|| json!({ "key": name, "values": [] }));
        if let Some(values) = slot["values"].as_array_mut() {
            values.push(value.clone().into());
        }
    }
    let cookies: Map<String, Value> = seen.cookies.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect();
    let mut logged = json!({
        "id": random_uuid(),
        "request": {
            "url": seen.url,
            "absoluteUrl": format!("{scheme}://{authority}{}", seen.url),
            "method": seen.method,
            "clientIp": "127.0.0.1",
            "headers": headers,
            "cookies": cookies,
            "browserProxyRequest": false,
            "loggedDate": millis,
            "loggedDateString": crate::journal::rfc3339(now),
            "body": seen.body,
            "scheme": scheme,
            "host": host,
            "port": port,
            "queryParams": query,
        },
        "wasMatched": stub.is_some(),
    });
    // Only the stub's id: `full` adds the mapping when the journal is read,
    // so a request's line stays small and cheap to write.
    match stub {
        Some(m) => logged["stubId"] = m.id.clone().into(),
        None => logged["responseDefinition"] = json!({ "status": status }),
    }
    logged
}

/// An entry as WireMock's journal shows it: with its body in base64 and
/// the mapping that answered (found by id among `mappings`).
pub fn full(mut logged: Value, mappings: &[Mapping]) -> Value {
    let body = logged["request"]["body"].as_str().unwrap_or_default().to_string();
    logged["request"]["bodyAsBase64"] = base64::engine::general_purpose::STANDARD.encode(body.as_bytes()).into();
    if let Some(id) = logged.get("stubId").and_then(Value::as_str).map(str::to_string)
        && let Some(m) = mappings.iter().find(|m| m.id == id)
    {
        logged["stubMapping"] = m.source.clone();
        logged["responseDefinition"] = m.source.get("response").cloned().unwrap_or_else(|| json!({}));
    }
    logged
}

/// The request of a journal entry (or of a body such as `POST
/// /__admin/near-misses/request` sends) as the matchers see it.
pub fn seen_of(request: &Value) -> Seen {
    let text = |k: &str| request.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let url = match text("url") {
        u if u.is_empty() => "/".to_string(),
        u => u,
    };
    let (path, query) = url.split_once('?').map_or((url.as_str(), ""), |(p, q)| (p, q));
    let mut headers = Vec::new();
    if let Some(map) = request.get("headers").and_then(Value::as_object) {
        for (name, value) in map {
            match value {
                Value::Array(values) => headers.extend(values.iter().map(|v| (name.clone(), super::matcher::as_text(v)))),
                other => headers.push((name.clone(), super::matcher::as_text(other))),
            }
        }
    }
    let cookies = request
        .get("cookies")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(n, v)| (n.clone(), super::matcher::as_text(v))).collect())
        .unwrap_or_default();
    let body = match request.get("bodyAsBase64").and_then(Value::as_str) {
        Some(b) if request.get("body").is_none() => {
            base64::engine::general_purpose::STANDARD.decode(b).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
        }
        _ => text("body"),
    };
    Seen {
        method: text("method").to_ascii_uppercase(),
        path: path.to_string(),
        query: query_pairs(query),
        url: url.clone(),
        headers,
        cookies,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_as_the_request_it_logged() {
        let seen = Seen {
            method: "POST".into(),
            path: "/todo".into(),
            url: "/todo?a=1&a=2".into(),
            query: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            headers: vec![("X-A".into(), "1".into()), ("X-A".into(), "2".into()), ("Host".into(), "api.test".into())],
            cookies: vec![("s".into(), "v".into())],
            body: "{\"x\":1}".into(),
        };
        let logged = entry(&seen, "http", "api.test", 80, None, 404);
        assert_eq!(logged["request"]["absoluteUrl"], "http://api.test/todo?a=1&a=2");
        assert_eq!(logged["request"]["queryParams"]["a"]["values"], json!(["1", "2"]));
        assert_eq!(logged["wasMatched"], false);
        assert_eq!(full(logged.clone(), &[])["request"]["bodyAsBase64"], "eyJ4IjoxfQ==");
        let back = seen_of(&logged["request"]);
        assert_eq!((back.method.as_str(), back.path.as_str(), back.body.as_str()), ("POST", "/todo", "{\"x\":1}"));
        assert_eq!(back.query, seen.query);
        assert_eq!(back.headers.iter().filter(|(n, _)| n == "X-A").count(), 2);
        assert_eq!(back.cookies, seen.cookies);
    }
}
