//! A stub's answer: its status, headers and body (a `response-template` one
//! rendered with Handlebars over WireMock's request model), after its delay,
//! or its fault instead.
//!
//! The template model: `request.method`, `request.url`, `request.path`,
//! `request.path.[n]` (or `request.pathSegments.[n]`), `request.path.NAME`
//! (a `urlPathTemplate`'s parameter), `request.query.NAME`,
//! `request.headers.NAME`, `request.cookies.NAME`, `request.body`; the
//! helpers are in `helpers.rs`.

use std::time::Duration;

use handlebars::{Context, Handlebars, RenderContext, Renderable, StringOutput};
use serde_json::{Map, Value, json};

use super::mapping::{Delay, Fault, Mapping, UrlMatch};
use super::seen::Seen;
use crate::apps::app::{Body, Response};
use crate::log_error;

pub fn answer(m: &Mapping, seen: &Seen) -> Response {
    let mut response = respond(m, seen);
    if m.response.reason.is_some() {
        response.reason = m.response.reason.clone();
    }
    if let (Some((chunks, total)), Body::Bytes(bytes)) = (m.response.dribble, &mut response.body) {
        let bytes = std::mem::take(bytes);
        let len = bytes.len() as u64;
        response.body = Body::Stream { reader: Box::new(Dribble { bytes, at: 0, chunks, pause: total / chunks }), len: Some(len) };
    }
    response.journal.push(("stub", Value::String(m.label.clone())));
    response
}

/// A body given out in `chunks` pieces, a pause before each but the first.
struct Dribble {
    bytes: Vec<u8>,
    at: usize,
    chunks: u32,
    pause: Duration,
}

impl std::io::Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.bytes.len() {
            return Ok(0);
        }
        if self.at > 0 {
            std::thread::sleep(self.pause);
        }
        let piece = self.bytes.len().div_ceil(self.chunks as usize).max(1);
        let n = piece.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn respond(m: &Mapping, seen: &Seen) -> Response {
    let r = &m.response;
    std::thread::sleep(delay(&r.delay));
    if let Some(base) = &r.proxy {
        return super::proxy::forward(base, seen);
    }
    if let Some(fault) = r.fault {
        let body = if fault == Fault::ConnectionResetByPeer { Body::Reset } else { Body::Raw(fault_bytes(fault)) };
        return Response { status: r.status, headers: Vec::new(), body, ..Default::default() };
    }
    if !r.template {
        return Response { status: r.status, headers: r.headers.clone(), body: Body::Bytes(r.body.clone()), ..Default::default() };
    }
    let model = model(m, seen);
    let headers: Result<Vec<(String, String)>, String> = r.headers.iter().map(|(n, v)| Ok((n.clone(), render(v, &model)?))).collect();
    let rendered = headers.and_then(|h| Ok((h, render(&String::from_utf8_lossy(&r.body), &model)?.into_bytes())));
    match rendered {
        Ok((headers, body)) => Response { status: r.status, headers, body: Body::Bytes(body), ..Default::default() },
        // As WireMock answers a template it cannot render.
        Err(e) => {
            log_error!("stub {}: {e}", m.label);
            let body = Body::Bytes(format!("{e}\n").into_bytes());
            Response { status: 500, headers: vec![("Content-Type".into(), "text/plain".into())], body, ..Default::default() }
        }
    }
}

fn delay(d: &Delay) -> Duration {
    match d {
        Delay::None => Duration::ZERO,
        Delay::Fixed(d) => *d,
        Delay::Uniform { lower, upper } => {
            let (lo, hi) = (lower.as_millis() as u64, upper.as_millis().max(lower.as_millis()) as u64);
            Duration::from_millis(fastrand::u64(lo..=hi))
        }
        Delay::LogNormal { median, sigma } => {
            // exp(sigma * a standard normal), by Box-Muller. The `libm`
            // crate's functions, not the system's: libm.so.6 is then not
            // loaded into every process under the shim.
            let (u1, u2) = (fastrand::f64().max(f64::MIN_POSITIVE), fastrand::f64());
            let normal = (-2.0 * libm::log(u1)).sqrt() * libm::cos(2.0 * std::f64::consts::PI * u2);
            median.mul_f64(libm::exp(sigma * normal).min(1_000.0))
        }
    }
}

/// What a fault writes before the connection closes (RFC-free bytes).
fn fault_bytes(fault: Fault) -> Vec<u8> {
    match fault {
        Fault::EmptyResponse | Fault::ConnectionResetByPeer => Vec::new(),
        Fault::MalformedResponseChunk => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nlskdu018973t09sylgasjkfg1][]'./.sdlv".to_vec()
        }
        Fault::RandomDataThenClose => (0..64).map(|_| fastrand::u8(..)).collect(),
    }
}

/// WireMock's request model for templates.
fn model(m: &Mapping, seen: &Seen) -> Value {
    let segments: Vec<&str> = seen.path.split('/').filter(|s| !s.is_empty()).collect();
    let map = |pairs: &[(String, String)], fold: bool| -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in pairs {
            let k = if fold { k.to_ascii_lowercase() } else { k.clone() };
            m.entry(k).or_insert_with(|| Value::String(v.clone()));
        }
        m
    };
    let parameters = match &m.request.url {
        UrlMatch::PathTemplate(t) => map(&t.values(&seen.path).unwrap_or_default(), false),
        _ => Map::new(),
    };
    let mut headers = map(&seen.headers, true);
    // Templates name headers as sent (`request.headers.X-Id`): both spellings.
    for (k, v) in &seen.headers {
        headers.entry(k.clone()).or_insert_with(|| Value::String(v.clone()));
    }
    json!({
        "request": {
            "method": seen.method,
            "url": seen.url,
            "path": seen.path,
            "pathSegments": segments,
            "pathParameters": parameters,
            "query": map(&seen.query, false),
            "headers": headers,
            "cookies": map(&seen.cookies, false),
            "body": seen.body,
        }
    })
}

/// The one Handlebars registry, with WireMock's helpers: made on the first
/// templated answer, not once per answer.
pub(super) fn render(template: &str, model: &Value) -> Result<String, String> {
    static REGISTRY: std::sync::OnceLock<Handlebars<'static>> = std::sync::OnceLock::new();
    let hb = REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        super::helpers::register(&mut hb);
        hb
    });
    let template = super::template::compile(&paths_named(template))?;
    let context = Context::wraps(model).map_err(|e| format!("template error: {e}"))?;
    let mut out = StringOutput::new();
    template.render(hb, &context, &mut RenderContext::new(None), &mut out).map_err(|e| format!("template error: {e}"))?;
    out.into_string().map_err(|e| format!("template error: {e}"))
}

/// WireMock's `request.path` is the path, and also its segments
/// (`request.path.[0]`) and a template's parameters (`request.path.id`);
/// one JSON value cannot be all three, so those two spellings are read as
/// `request.pathSegments.[0]` and `request.pathParameters.id`.
fn paths_named(template: &str) -> std::borrow::Cow<'_, str> {
    static PATH: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| regex::Regex::new(r"request\.path\.(\[[0-9]+\]|[A-Za-z_$][A-Za-z0-9_$-]*)").expect("a fixed pattern"));
    path.replace_all(template, |c: &regex::Captures<'_>| {
        let kind = if c[1].starts_with('[') { "pathSegments" } else { "pathParameters" };
        format!("request.{kind}.{}", &c[1])
    })
}
