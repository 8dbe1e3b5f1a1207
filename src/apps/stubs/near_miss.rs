//! How a request measures up against a stub, field by field — the one
//! comparison that both picks the stub that answers (every field at
//! distance 0) and, when none does, writes the near-miss report: the
//! request as received, then the closest stubs (by the mean distance of
//! their fields) and, for each, the fields that differed, expected against
//! actual.

use base64::Engine;

use super::mapping::{Mapping, RequestPattern, UrlMatch};
use super::matcher::{Matcher, text_distance};
use super::seen::Seen;
use crate::apps::app::query_pairs;

/// One field of a stub's request pattern against the request.
pub struct Field {
    pub name: String,
    pub expected: String,
    pub actual: String,
    /// 0 when it matches, up to 1.
    pub distance: f64,
}

/// How many of the closest stubs a report shows.
const CLOSEST: usize = 3;

/// Every field the pattern names, measured against the request.
pub fn fields(p: &RequestPattern, seen: &Seen) -> Vec<Field> {
    let mut out = Vec::new();
    let mut push = |name: String, expected: String, actual: String, distance: f64| out.push(Field { name, expected, actual, distance });
    if let Some(m) = &p.method {
        push("method".into(), m.clone(), seen.method.clone(), if *m == seen.method { 0.0 } else { 1.0 });
    }
    match &p.url {
        UrlMatch::Any => {}
        UrlMatch::Url(u) => push("URL".into(), u.clone(), seen.url.clone(), text_distance(u, &seen.url)),
        UrlMatch::Path(u) => push("URL path".into(), u.clone(), seen.path.clone(), text_distance(u, &seen.path)),
        UrlMatch::Pattern(m) => push("URL".into(), m.describe(), seen.url.clone(), m.distance(Some(&seen.url))),
        UrlMatch::PathPattern(m) => push("URL path".into(), m.describe(), seen.path.clone(), m.distance(Some(&seen.path))),
        UrlMatch::PathTemplate(t) => {
            let distance = if t.values(&seen.path).is_some() { 0.0 } else { text_distance(&t.text, &seen.path) };
            push("URL path".into(), format!("{} [urlPathTemplate]", t.text), seen.path.clone(), distance);
        }
    }
    let mut named = |kind: &str, pattern: &[(String, Matcher)], values: &[(String, String)], fold_case: bool| {
        for (name, m) in pattern {
            let found = values_of(values, name, fold_case);
            let actual = if found.is_empty() { "(absent)".to_string() } else { found.join(", ") };
            push(format!("{kind} {name}"), m.describe(), actual, m.distance_all(&found));
        }
    };
    if let UrlMatch::PathTemplate(t) = &p.url {
        named("path parameter", &p.path_params, &t.values(&seen.path).unwrap_or_default(), false);
    }
    named("query", &p.query, &seen.query, false);
    named("header", &p.headers, &seen.headers, true);
    named("cookie", &p.cookies, &seen.cookies, false);
    if !p.form.is_empty() {
        named("form parameter", &p.form, &query_pairs(&seen.body), false);
    }
    if let Some((user, password)) = &p.basic_auth {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let actual =
            seen.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("Authorization")).map_or("(absent)".into(), |(_, v)| v.clone());
        let distance = if actual == expected { 0.0 } else { 1.0 };
        push("basic auth".into(), format!("{user}:{password}"), actual, distance);
    }
    for m in &p.body {
        push("body".into(), m.describe(), seen.body.clone(), m.distance(Some(&seen.body)));
    }
    out
}

/// Whether the request matches every field of the pattern: the same test
/// as [`fields`] at distance 0, without measuring how far a miss is.
pub fn matches(p: &RequestPattern, seen: &Seen) -> bool {
    if p.method.as_ref().is_some_and(|m| *m != seen.method) {
        return false;
    }
    let url = match &p.url {
        UrlMatch::Any => true,
        UrlMatch::Url(u) => *u == seen.url,
        UrlMatch::Path(u) => *u == seen.path,
        UrlMatch::Pattern(m) => m.matches(Some(&seen.url)),
        UrlMatch::PathPattern(m) => m.matches(Some(&seen.path)),
        UrlMatch::PathTemplate(t) => match t.values(&seen.path) {
            Some(values) => p.path_params.iter().all(|(name, m)| m.distance_all(&values_of(&values, name, false)) == 0.0),
            None => false,
        },
    };
    let named = |pattern: &[(String, Matcher)], values: &[(String, String)], fold_case: bool| {
        pattern.iter().all(|(name, m)| m.distance_all(&values_of(values, name, fold_case)) == 0.0)
    };
    url && named(&p.query, &seen.query, false)
        && named(&p.headers, &seen.headers, true)
        && named(&p.cookies, &seen.cookies, false)
        && p.basic_auth.as_ref().is_none_or(|(user, password)| {
            let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
            seen.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("Authorization") && *v == expected)
        })
        && p.body.iter().all(|m| m.matches(Some(&seen.body)))
        && (p.form.is_empty() || named(&p.form, &query_pairs(&seen.body), false))
}

/// The values named `name` (in any case, with `fold_case`).
fn values_of<'a>(values: &'a [(String, String)], name: &str, fold_case: bool) -> Vec<&'a str> {
    let same = |n: &str| if fold_case { n.eq_ignore_ascii_case(name) } else { n == name };
    values.iter().filter(|(n, _)| same(n)).map(|(_, v)| v.as_str()).collect()
}

/// How far a pattern is from a request: the mean distance of its fields
/// (0 when it has none).
pub fn score(fields: &[Field]) -> f64 {
    if fields.is_empty() { 0.0 } else { fields.iter().map(|f| f.distance).sum::<f64>() / fields.len() as f64 }
}

/// The 404 body, and the closest stub's name for the one stderr line.
pub struct Report {
    pub text: String,
    pub closest: Option<String>,
}

/// The report over `mappings`; `noun` names what they are ("stub",
/// "recorded entry").
pub fn report(mappings: &[Mapping], seen: &Seen, noun: &str) -> Report {
    let mut text = format!("No {noun} matched this request.\n\n");
    text.push_str(&format!("{} {}\n", seen.method, seen.url));
    for (name, value) in &seen.headers {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if !seen.body.is_empty() {
        text.push_str(&format!("\n{}\n", seen.body));
    }
    let mut scored: Vec<(f64, &Mapping, Vec<Field>)> = mappings
        .iter()
        .map(|m| {
            let fields = fields(&m.request, seen);
            (score(&fields), m, fields)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (score, m, fields) in scored.iter().take(CLOSEST) {
        let matching = fields.iter().filter(|f| f.distance == 0.0).count();
        text.push_str(&format!("\nClosest {noun}: {} ({matching} of {} fields match, distance {score:.2})\n", m.label, fields.len()));
        for f in fields.iter().filter(|f| f.distance > 0.0) {
            text.push_str(&format!("  {}: expected {}\n  {}  but was {}\n", f.name, f.expected, " ".repeat(f.name.len()), f.actual));
        }
        if fields.iter().all(|f| f.distance == 0.0) {
            text.push_str("  every field matches: its scenario is in another state\n");
        }
    }
    Report { text, closest: scored.first().map(|(_, m, _)| m.label.clone()) }
}
