//! A stub's answer: its status, headers and body (a `response-template` one
//! rendered with Handlebars over WireMock's request model), after its delay,
//! or its fault instead.
//!
//! The template model: `request.method`, `request.url`, `request.path`,
//! `request.pathSegments.[n]`, `request.query.NAME`, `request.headers.NAME`,
//! `request.cookies.NAME`, `request.body`; the helpers `jsonPath` (`{{jsonPath
//! request.body '$.name'}}`), `now` and `randomValue` (`length`, `type`:
//! `ALPHANUMERIC`, `ALPHABETIC`, `NUMERIC`, `HEXADECIMAL`, `UUID`).

use std::time::{Duration, SystemTime};

use handlebars::{Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason, Renderable, StringOutput};
use serde_json::{Map, Value, json};

use super::mapping::{Delay, Fault, Mapping};
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
    let model = model(seen);
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
fn model(seen: &Seen) -> Value {
    let segments: Vec<&str> = seen.path.split('/').filter(|s| !s.is_empty()).collect();
    let map = |pairs: &[(String, String)], fold: bool| -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in pairs {
            let k = if fold { k.to_ascii_lowercase() } else { k.clone() };
            m.entry(k).or_insert_with(|| Value::String(v.clone()));
        }
        m
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
            "query": map(&seen.query, false),
            "headers": headers,
            "cookies": map(&seen.cookies, false),
            "body": seen.body,
        }
    })
}

/// The one Handlebars registry, with WireMock's helpers: made on the first
/// templated answer, not once per answer.
fn render(template: &str, model: &Value) -> Result<String, String> {
    static REGISTRY: std::sync::OnceLock<Handlebars<'static>> = std::sync::OnceLock::new();
    let hb = REGISTRY.get_or_init(|| {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_helper("jsonPath", Box::new(json_path));
        hb.register_helper("now", Box::new(now));
        hb.register_helper("randomValue", Box::new(random_value));
        hb
    });
    let template = super::template::compile(template)?;
    let context = Context::wraps(model).map_err(|e| format!("template error: {e}"))?;
    let mut out = StringOutput::new();
    template.render(hb, &context, &mut RenderContext::new(None), &mut out).map_err(|e| format!("template error: {e}"))?;
    out.into_string().map_err(|e| format!("template error: {e}"))
}

fn json_path(h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output) -> HelperResult {
    let text = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    let path = h.param(1).and_then(|p| p.value().as_str()).ok_or(RenderErrorReason::ParamNotFoundForIndex("jsonPath", 1))?;
    let doc: Value = match &text {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let path = serde_json_path::JsonPath::parse(path).map_err(|e| RenderErrorReason::Other(format!("bad JSONPath `{path}`: {e}")))?;
    if let Some(found) = path.query(&doc).all().first() {
        out.write(&super::matcher::as_text(found))?;
    }
    Ok(())
}

fn now(_: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output) -> HelperResult {
    out.write(&httpdate::fmt_http_date(SystemTime::now()))?;
    Ok(())
}

fn random_value(h: &Helper<'_>, _: &Handlebars<'_>, _: &Context, _: &mut RenderContext<'_, '_>, out: &mut dyn Output) -> HelperResult {
    let length = h.hash_get("length").and_then(|v| v.value().as_u64()).unwrap_or(16) as usize;
    let kind = h.hash_get("type").and_then(|v| v.value().as_str()).unwrap_or("ALPHANUMERIC").to_string();
    let from = |chars: &[u8]| (0..length).map(|_| chars[fastrand::usize(..chars.len())] as char).collect::<String>();
    let value = match kind.as_str() {
        "UUID" => {
            let hex: String = (0..32).map(|_| b"0123456789abcdef"[fastrand::usize(..16)] as char).collect();
            format!("{}-{}-4{}-a{}-{}", &hex[..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
        }
        "NUMERIC" => from(b"0123456789"),
        "ALPHABETIC" => from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        "HEXADECIMAL" => from(b"0123456789abcdef"),
        _ => from(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    };
    out.write(&value)?;
    Ok(())
}
