//! WireMock's stub mapping files: every `*.json` below `mappings/` holds one
//! mapping or `{"mappings": [...]}`; `__files/` holds `bodyFileName`s. A
//! file that does not parse, a matcher or field we do not know, a missing
//! body file: an error naming the file and line, never a silent skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::matcher::Matcher;

/// One stub: what it matches, what it answers, where it came from.
#[derive(Debug, Clone)]
pub struct Mapping {
    /// `id`, else `name`, else `FILE[#N]`: how the journal and reports name it.
    pub label: String,
    /// `id` (or `uuid`), else one made from where the mapping was read:
    /// the same in every process, as the admin API names it.
    pub id: String,
    /// The mapping as written, for the admin API.
    pub source: Value,
    pub priority: i64,
    /// Load order: among equal priorities the most recently loaded wins.
    pub order: usize,
    pub request: RequestPattern,
    pub response: ResponseDef,
    pub scenario: Option<Scenario>,
}

#[derive(Debug, Clone)]
pub struct RequestPattern {
    /// None: any method.
    pub method: Option<String>,
    pub url: UrlMatch,
    pub query: Vec<(String, Matcher)>,
    pub headers: Vec<(String, Matcher)>,
    pub cookies: Vec<(String, Matcher)>,
    pub basic_auth: Option<(String, String)>,
    pub body: Vec<Matcher>,
    /// `formParameters`: the body's `application/x-www-form-urlencoded` fields.
    pub form: Vec<(String, Matcher)>,
    /// `pathParameters`: what a `urlPathTemplate`'s named segments hold.
    pub path_params: Vec<(String, Matcher)>,
}

#[derive(Debug, Clone)]
pub enum UrlMatch {
    Any,
    /// `url`: path and query, exactly.
    Url(String),
    /// `urlPath`: the path alone, exactly.
    Path(String),
    /// `urlPattern`: a pattern over path and query.
    Pattern(Matcher),
    /// `urlPathPattern`: a pattern over the path.
    PathPattern(Matcher),
    /// `urlPathTemplate`: a path whose `{name}` segments match any one segment.
    PathTemplate(PathTemplate),
}

/// A `urlPathTemplate` such as `/contacts/{id}/addresses/{addressId}`.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    /// The template as written.
    pub text: String,
    /// Each segment: its literal text, or the name of a parameter.
    segments: Vec<Result<String, String>>,
}

impl PathTemplate {
    /// Parses a template; a `{` that does not make a whole segment a
    /// parameter is refused.
    pub fn parse(text: &str) -> Result<PathTemplate, String> {
        let segments = text
            .split('/')
            .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Ok(Err(name.to_string())),
                _ if s.contains(['{', '}']) => {
                    Err(format!("`urlPathTemplate` {text}: a parameter must be a whole segment, such as {{id}}"))
                }
                _ => Ok(Ok(s.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(PathTemplate { text: text.to_string(), segments })
    }

    /// The parameters' values, when `path` has the template's shape.
    pub fn values(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Ok(literal) if literal == part => {}
                Err(name) if !part.is_empty() => {
                    values.push((name.clone(), percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned()))
                }
                _ => return None,
            }
        }
        Some(values)
    }

    /// The names of its parameters.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| s.as_ref().err().map(String::as_str))
    }
}

#[derive(Debug, Clone)]
pub struct ResponseDef {
    pub status: u16,
    /// `statusMessage`: the reason phrase.
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Delay,
    /// `chunkedDribbleDelay`: the body in this many pieces over this long.
    pub dribble: Option<(u32, Duration)>,
    pub fault: Option<Fault>,
    pub template: bool,
    /// `proxyBaseUrl`: pass the request on to this server instead.
    pub proxy: Option<String>,
}

impl ResponseDef {
    /// Whether this answer is made at once from memory: no delay, no
    /// dribble, no fault, no proxy.
    pub fn at_once(&self) -> bool {
        self.delay == Delay::None && self.dribble.is_none() && self.fault.is_none() && self.proxy.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delay {
    None,
    Fixed(Duration),
    Uniform { lower: Duration, upper: Duration },
    LogNormal { median: Duration, sigma: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ConnectionResetByPeer,
    EmptyResponse,
    MalformedResponseChunk,
    RandomDataThenClose,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub required: Option<String>,
    pub new_state: Option<String>,
}

/// The state every scenario starts in.
pub const STARTED: &str = "Started";

/// Loads every mapping below `dir/mappings`, in file-name order.
pub fn load(dir: &Path) -> Result<Vec<Mapping>, String> {
    let root = dir.join("mappings");
    let mut files = Vec::new();
    collect(&root, &mut files, &mut Default::default()).map_err(|e| format!("{}: {e}", root.display()))?;
    files.sort();
    let mut mappings = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let at = |line: usize, why: String| format!("{}:{line}: {why}", file.display());
        let doc: Value = serde_json::from_str(&text).map_err(|e| at(e.line(), format!("not JSON: {e}")))?;
        let items: Vec<&Value> = match doc.get("mappings") {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(_) => return Err(at(line_of(&text, "\"mappings\""), "`mappings` must be a list".into())),
            None => vec![&doc],
        };
        let several = items.len() > 1;
        for (i, item) in items.into_iter().enumerate() {
            let rel = file.strip_prefix(dir).unwrap_or(&file).display().to_string();
            let default_label = if several { format!("{rel}#{i}") } else { rel };
            let mapping = parse(item, dir, default_label, mappings.len()).map_err(|(needle, why)| at(line_of(&text, &needle), why))?;
            mappings.push(mapping);
        }
    }
    Ok(mappings)
}

/// One mapping from its JSON (no `bodyFileName`s): how a `har:` route's
/// entries become stubs for `har2stubs` and for its near-miss reports.
pub fn from_json(v: &Value, label: String, order: usize) -> Result<Mapping, String> {
    parse(v, Path::new("."), label, order).map_err(|(_, why)| why)
}

/// One mapping made at run time (the admin API), its `bodyFileName`s
/// read from `dir/__files`.
/// A mapping with no `id` gets a fresh one.
pub fn made(v: &Value, dir: &Path, order: usize) -> Result<Mapping, String> {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut()
        && !o.contains_key("id")
    {
        let id = o.get("uuid").and_then(Value::as_str).map_or_else(random_uuid, str::to_string);
        o.insert("id".into(), Value::String(id));
    }
    let label = v["id"].as_str().unwrap_or_default().to_string();
    parse(&v, dir, label, order).map_err(|(_, why)| why)
}

/// A request pattern alone (the admin API's counts and finds).
pub fn pattern(v: &Value) -> Result<RequestPattern, String> {
    request_pattern(v).map_err(|(_, why)| why)
}

/// Every `*.json` below `dir`, each file once however many links lead to
/// it (a directory reached again through a link, `sub/loop -> ..`, is
/// not walked again).
fn collect(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut std::collections::BTreeSet<PathBuf>) -> std::io::Result<()> {
    if !seen.insert(dir.canonicalize()?) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out, seen)?;
        } else if path.extension().is_some_and(|e| e == "json") && seen.insert(path.canonicalize()?) {
            out.push(path);
        }
    }
    Ok(())
}

/// The 1-based line of the first occurrence of `needle` (1 if absent): a
/// JSON value keeps no positions, so an error points at its key's text.
fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map_or(1, |at| text[..at].matches('\n').count() + 1)
}

/// An error: the text to find its line by, and what is wrong.
type Fail = (String, String);

fn fail(needle: &str, why: impl Into<String>) -> Fail {
    (format!("\"{needle}\""), why.into())
}

fn parse(v: &Value, dir: &Path, default_label: String, order: usize) -> Result<Mapping, Fail> {
    let obj = v.as_object().ok_or_else(|| fail("", "a mapping must be a JSON object"))?;
    known(
        obj,
        &[
            "id",
            "uuid",
            "name",
            "request",
            "response",
            "priority",
            "scenarioName",
            "requiredScenarioState",
            "newScenarioState",
            "persistent",
            "metadata",
            "insertionIndex",
        ],
    )?;
    let given_id = ["id", "uuid"].iter().find_map(|k| obj.get(*k).and_then(Value::as_str)).map(str::to_string);
    let id = given_id.clone().unwrap_or_else(|| uuid_from(&default_label));
    let label = ["id", "name"].iter().find_map(|k| obj.get(*k).and_then(Value::as_str)).map_or(default_label, str::to_string);
    let request = obj.get("request").ok_or_else(|| fail("", "a mapping needs a `request`"))?;
    let response = obj.get("response").map_or(Ok(ResponseDef::default()), |r| response(r, dir))?;
    let scenario = obj.get("scenarioName").and_then(Value::as_str).map(|name| Scenario {
        name: name.to_string(),
        required: obj.get("requiredScenarioState").and_then(Value::as_str).map(str::to_string),
        new_state: obj.get("newScenarioState").and_then(Value::as_str).map(str::to_string),
    });
    let priority =
        obj.get("priority").map_or(Ok(5), |p| p.as_i64().ok_or_else(|| fail("priority", "`priority` must be a whole number")))?;
    let mut source = v.clone();
    if given_id.is_none()
        && let Some(o) = source.as_object_mut()
    {
        o.insert("id".into(), Value::String(id.clone()));
    }
    Ok(Mapping { label, id, source, priority, order, request: request_pattern(request)?, response, scenario })
}

/// A UUID made from `text`: the same text, the same UUID.
pub fn uuid_from(text: &str) -> String {
    format_uuid(crate::run::fnv(text.as_bytes()), crate::run::fnv(format!("{text}#uuid").as_bytes()))
}

/// A fresh random UUID (version 4), for a mapping or request with none.
pub fn random_uuid() -> String {
    format_uuid(fastrand::u64(..), fastrand::u64(..))
}

fn format_uuid(a: u64, b: u64) -> String {
    let a = (a & !0xf000) | 0x4000;
    let b = (b & !(0xc << 60)) | (0x8 << 60);
    format!("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & 0xffff_ffff_ffff)
}

/// Refuses a key we do not know: a typo must not quietly match everything.
fn known(obj: &Map<String, Value>, keys: &[&str]) -> Result<(), Fail> {
    match obj.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(fail(k, format!("unknown field `{k}`"))),
        None => Ok(()),
    }
}

fn matcher(key: &str, v: &Value) -> Result<Matcher, Fail> {
    Matcher::parse(v).map_err(|why| {
        let needle = v.as_object().and_then(|o| o.keys().next()).map_or(key.to_string(), |k| k.clone());
        fail(&needle, format!("{key}: {why}"))
    })
}

fn named_matchers(obj: &Map<String, Value>, key: &str) -> Result<Vec<(String, Matcher)>, Fail> {
    let Some(v) = obj.get(key) else { return Ok(Vec::new()) };
    let map = v.as_object().ok_or_else(|| fail(key, format!("`{key}` must be an object of name: matcher")))?;
    map.iter().map(|(name, m)| Ok((name.clone(), matcher(&format!("{key}.{name}"), m)?))).collect()
}

fn request_pattern(v: &Value) -> Result<RequestPattern, Fail> {
    let obj = v.as_object().ok_or_else(|| fail("request", "`request` must be an object"))?;
    known(
        obj,
        &[
            "method",
            "url",
            "urlPath",
            "urlPattern",
            "urlPathPattern",
            "urlPathTemplate",
            "pathParameters",
            "formParameters",
            "queryParameters",
            "headers",
            "cookies",
            "basicAuthCredentials",
            "bodyPatterns",
        ],
    )?;
    let method = obj.get("method").and_then(Value::as_str).filter(|m| *m != "ANY").map(str::to_ascii_uppercase);
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let pattern =
        |k: &str| -> Result<Option<Matcher>, Fail> { text(k).map(|p| matcher(k, &serde_json::json!({ "matches": p }))).transpose() };
    let url = if let Some(u) = text("url") {
        UrlMatch::Url(u)
    } else if let Some(p) = text("urlPath") {
        UrlMatch::Path(p)
    } else if let Some(m) = pattern("urlPattern")? {
        UrlMatch::Pattern(m)
    } else if let Some(m) = pattern("urlPathPattern")? {
        UrlMatch::PathPattern(m)
    } else if let Some(t) = text("urlPathTemplate") {
        UrlMatch::PathTemplate(PathTemplate::parse(&t).map_err(|e| fail("urlPathTemplate", e))?)
    } else {
        UrlMatch::Any
    };
    let basic_auth = match obj.get("basicAuthCredentials") {
        None => None,
        Some(b) => {
            let field = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
            Some(
                (field("username").zip(field("password")))
                    .ok_or_else(|| fail("basicAuthCredentials", "needs `username` and `password`"))?,
            )
        }
    };
    let body = match obj.get("bodyPatterns") {
        None => Vec::new(),
        Some(Value::Array(list)) => list.iter().map(|m| matcher("bodyPatterns", m)).collect::<Result<_, _>>()?,
        Some(_) => return Err(fail("bodyPatterns", "`bodyPatterns` must be a list")),
    };
    let path_params = named_matchers(obj, "pathParameters")?;
    match &url {
        UrlMatch::PathTemplate(t) => {
            if let Some((name, _)) = path_params.iter().find(|(n, _)| !t.names().any(|t| t == n)) {
                return Err(fail("pathParameters", format!("`pathParameters` names {name}, which `urlPathTemplate` {} has not", t.text)));
            }
        }
        _ if !path_params.is_empty() => return Err(fail("pathParameters", "`pathParameters` needs a `urlPathTemplate`")),
        _ => {}
    }
    Ok(RequestPattern {
        form: named_matchers(obj, "formParameters")?,
        path_params,
        method,
        url,
        query: named_matchers(obj, "queryParameters")?,
        headers: named_matchers(obj, "headers")?,
        cookies: named_matchers(obj, "cookies")?,
        basic_auth,
        body,
    })
}

impl Default for ResponseDef {
    fn default() -> Self {
        ResponseDef {
            status: 200,
            reason: None,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Delay::None,
            dribble: None,
            fault: None,
            template: false,
            proxy: None,
        }
    }
}

fn millis(v: &Value, key: &str) -> Result<Duration, Fail> {
    v.as_u64().map(Duration::from_millis).ok_or_else(|| fail(key, format!("`{key}` must be milliseconds")))
}

fn response(v: &Value, dir: &Path) -> Result<ResponseDef, Fail> {
    let obj = v.as_object().ok_or_else(|| fail("response", "`response` must be an object"))?;
    known(
        obj,
        &[
            "status",
            "statusMessage",
            "headers",
            "body",
            "jsonBody",
            "base64Body",
            "bodyFileName",
            "fixedDelayMilliseconds",
            "delayDistribution",
            "chunkedDribbleDelay",
            "fault",
            "transformers",
            "transformerParameters",
            "proxyBaseUrl",
        ],
    )?;
    let mut r = ResponseDef::default();
    if let Some(s) = obj.get("status") {
        r.status = s
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| fail("status", "`status` must be 100 to 599"))?;
    }
    r.reason = obj.get("statusMessage").and_then(Value::as_str).map(str::to_string);
    if let Some(d) = obj.get("chunkedDribbleDelay") {
        let chunks = d.get("numberOfChunks").and_then(Value::as_u64).filter(|n| *n > 0);
        let total = d.get("totalDuration").and_then(Value::as_u64);
        let (Some(chunks), Some(total)) = (chunks, total) else {
            return Err(fail("chunkedDribbleDelay", "`chunkedDribbleDelay` needs `numberOfChunks` (at least 1) and `totalDuration`"));
        };
        r.dribble = Some((chunks.min(u64::from(u32::MAX)) as u32, Duration::from_millis(total)));
    }
    if let Some(h) = obj.get("headers") {
        let map = h.as_object().ok_or_else(|| fail("headers", "`headers` must be an object"))?;
        for (name, value) in map {
            match value {
                Value::Array(values) => r.headers.extend(values.iter().map(|v| (name.clone(), super::matcher::as_text(v)))),
                other => r.headers.push((name.clone(), super::matcher::as_text(other))),
            }
        }
    }
    if let Some(b) = obj.get("body") {
        r.body = super::matcher::as_text(b).into_bytes();
    } else if let Some(j) = obj.get("jsonBody") {
        r.body = j.to_string().into_bytes();
        if !r.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("Content-Type")) {
            r.headers.push(("Content-Type".into(), "application/json".into()));
        }
    } else if let Some(b) = obj.get("base64Body").and_then(Value::as_str) {
        use base64::Engine;
        r.body = base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| fail("base64Body", format!("`base64Body` is not base64: {e}")))?;
    } else if let Some(name) = obj.get("bodyFileName").and_then(Value::as_str) {
        let path = dir.join("__files").join(name);
        r.body = std::fs::read(&path)
            .map_err(|e| fail("bodyFileName", format!("bodyFileName `{name}`: cannot read {}: {e}", path.display())))?;
    }
    if let Some(d) = obj.get("fixedDelayMilliseconds") {
        r.delay = Delay::Fixed(millis(d, "fixedDelayMilliseconds")?);
    }
    if let Some(d) = obj.get("delayDistribution") {
        r.delay = match d.get("type").and_then(Value::as_str) {
            Some("uniform") => Delay::Uniform { lower: millis(&d["lower"], "lower")?, upper: millis(&d["upper"], "upper")? },
            Some("lognormal") => Delay::LogNormal {
                median: Duration::from_secs_f64(
                    d["median"].as_f64().ok_or_else(|| fail("median", "`median` must be milliseconds"))? / 1000.0,
                ),
                sigma: d["sigma"].as_f64().ok_or_else(|| fail("sigma", "`sigma` must be a number"))?,
            },
            other => return Err(fail("delayDistribution", format!("unknown delayDistribution type {other:?}: uniform or lognormal"))),
        };
    }
    if let Some(f) = obj.get("fault") {
        r.fault = Some(match f.as_str() {
            Some("CONNECTION_RESET_BY_PEER") => Fault::ConnectionResetByPeer,
            Some("EMPTY_RESPONSE") => Fault::EmptyResponse,
            Some("MALFORMED_RESPONSE_CHUNK") => Fault::MalformedResponseChunk,
            Some("RANDOM_DATA_THEN_CLOSE") => Fault::RandomDataThenClose,
            _ => return Err(fail("fault", format!("unknown fault {f}"))),
        });
    }
    if let Some(base) = obj.get("proxyBaseUrl") {
        let base = base.as_str().ok_or_else(|| fail("proxyBaseUrl", "`proxyBaseUrl` must be a URL"))?;
        super::proxy::check(base).map_err(|e| fail("proxyBaseUrl", e))?;
        r.proxy = Some(base.to_string());
    }
    if let Some(t) = obj.get("transformers") {
        let list = t.as_array().ok_or_else(|| fail("transformers", "`transformers` must be a list"))?;
        for name in list {
            match name.as_str() {
                Some("response-template") => {
                    r.template = true;
                    for text in
                        std::iter::once(String::from_utf8_lossy(&r.body).into_owned()).chain(r.headers.iter().map(|(_, v)| v.clone()))
                    {
                        super::template::compile(&text).map_err(|e| fail("transformers", e))?;
                    }
                }
                _ => return Err(fail("transformers", format!("unknown transformer {name}: only response-template"))),
            }
        }
    }
    Ok(r)
}
