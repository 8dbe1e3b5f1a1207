//! Recording: the request relayed to the real origin around every hook
//! ([`Via::Real`]: a routed host is reached for real, never looped back),
//! TLS re-originated with rustls, the whole answer read, given to the
//! client as it came, and kept as an [`Entry`] with secrets redacted.

use std::io::Read;
use std::time::Instant;

use super::file::Entry;
use super::replay::Asked;
use crate::apps::app::{Body, Response};
use crate::apps::origin::{self, Origin, Outgoing, Via};

/// Headers whose values never reach the file, unless kept by name.
pub const SECRET: [&str; 5] = ["authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"];

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Relays the request; the answer for the client and the entry to keep.
pub fn relay(asking: &Asked<'_>, keep: &[String]) -> Result<(Response, Entry), String> {
    let origin = Origin { tls: asking.scheme == "https", host: asking.host.to_string(), port: asking.port, prefix: String::new() };
    let started = (crate::journal::now(), Instant::now());
    let request = Outgoing { method: asking.method, target: asking.target, headers: asking.headers, body: asking.body };
    let mut answer = origin::exchange(&origin, &request, Via::Real).map_err(|e| format!("cannot reach {}: {e}", origin.authority()))?;
    let mut body = Vec::new();
    answer.body.read_to_end(&mut body).map_err(|e| format!("{}: the answer broke off: {e}", origin.authority()))?;
    let entry = Entry {
        method: asking.method.to_string(),
        scheme: asking.scheme.to_string(),
        host: asking.host.to_ascii_lowercase(),
        port: asking.port,
        path: asking.path.to_string(),
        query: asking.query.to_vec(),
        request_headers: redact(asking.headers, keep),
        request_body: asking.body.to_vec(),
        status: answer.status,
        reason: answer.reason.clone().unwrap_or_default(),
        headers: redact(&answer.headers, keep),
        body: body.clone(),
        body_as_sent: true,
        started: started.0,
        millis: started.1.elapsed().as_secs_f64() * 1000.0,
    };
    let response =
        Response { status: answer.status, reason: answer.reason, headers: answer.headers, body: Body::Bytes(body), ..Default::default() };
    Ok((response, entry))
}

/// The headers with every secret's value replaced, but those in `keep`.
pub fn redact(headers: &[(String, String)], keep: &[String]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            let secret = SECRET.iter().any(|s| s.eq_ignore_ascii_case(n)) && !keep.iter().any(|k| k.eq_ignore_ascii_case(n));
            (n.clone(), if secret { REDACTED.to_string() } else { v.clone() })
        })
        .collect()
}
