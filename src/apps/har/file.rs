//! HAR 1.2 files: reading entries (ours, a browser's devtools export,
//! mitmproxy's) into [`Entry`]s, and adding one entry to a file that other
//! processes may be adding to at the same time.
//!
//! An entry is added under an exclusive `flock` of the file's directory:
//! the file is read, the entry appended, and the whole document written to
//! a temporary file that is then renamed over it. A reader never sees half
//! a document, and no entry is lost to a concurrent writer.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value, json};

/// One recorded exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The request's method, upper case.
    pub method: String,
    /// The URL's scheme, `http` or `https`.
    pub scheme: String,
    /// The URL's host, lower case.
    pub host: String,
    /// The URL's port (the scheme's default when it names none).
    pub port: u16,
    /// The path as sent, percent-encoded, without the query.
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// The request's headers, in order (secrets redacted when we recorded it).
    pub request_headers: Vec<(String, String)>,
    /// The request's body (`postData`), empty when it had none.
    pub request_body: Vec<u8>,
    /// The response's status, 100 to 599.
    pub status: u16,
    /// The response's reason phrase (`statusText`), maybe empty.
    pub reason: String,
    /// The response's headers, in order.
    pub headers: Vec<(String, String)>,
    /// The response's body (empty in an [`index`](super::index)'s entries, whose bodies stay in the file).
    pub body: Vec<u8>,
    /// The body as it went over the wire (any `Content-Encoding` still
    /// applied), as we record it; devtools and mitmproxy store it decoded.
    pub body_as_sent: bool,
    /// When it started (ISO 8601) and how long it took, in milliseconds.
    pub started: String,
    /// How long the exchange took, in milliseconds (HAR's `time`).
    pub millis: f64,
}

impl Entry {
    /// `scheme://host[:port]path?query` as the entry's URL.
    pub fn url(&self) -> String {
        let scheme = if self.scheme == "https" { crate::url::Scheme::Https } else { crate::url::Scheme::Http };
        let authority = crate::url::authority(&self.host, self.port, scheme);
        format!("{}://{authority}{}", self.scheme, self.target())
    }

    /// The request target: path and, if any, query.
    pub fn target(&self) -> String {
        if self.query.is_empty() { self.path.clone() } else { format!("{}?{}", self.path, encode_query(&self.query)) }
    }
}

fn encode_query(query: &[(String, String)]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const PART: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    let enc = |s: &str| utf8_percent_encode(s, PART).to_string();
    query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// Reads every entry of a HAR file.
pub fn read(path: &Path) -> Result<Vec<Entry>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a HAR document.
pub fn parse(text: &[u8]) -> Result<Vec<Entry>, String> {
    Ok(raw_entries(text)?.into_iter().filter_map(|(_, e)| e).collect())
}

/// An entry (or `None`, see [`raw_entries`]) and where its JSON lies.
pub type Located = (std::ops::Range<usize>, Option<Entry>);

/// Each entry of a HAR document, with where its JSON lies in `text`: the
/// entry, or `None` for one with nothing to replay: an exchange that
/// never got an answer (a status of 0: mitmproxy writes such flows with
/// `_error`), or one of another scheme (a browser's `wss:` or `data:`).
/// The document is walked without building it: only one entry is held
/// whole at a time.
pub fn raw_entries(text: &[u8]) -> Result<Vec<Located>, String> {
    use serde_json::value::RawValue;
    type Object<'a> = std::collections::HashMap<String, &'a RawValue>;
    let doc: Object<'_> = serde_json::from_slice(text).map_err(|e| format!("line {}: not JSON: {e}", e.line()))?;
    let no_entries = || "not a HAR file: no log.entries array".to_string();
    let log: Object<'_> = doc.get("log").and_then(|l| serde_json::from_str(l.get()).ok()).ok_or_else(no_entries)?;
    let entries: Vec<&RawValue> = log.get("entries").and_then(|l| serde_json::from_str(l.get()).ok()).ok_or_else(no_entries)?;
    let base = text.as_ptr() as usize;
    let mut found = Vec::with_capacity(entries.len());
    for (i, raw) in entries.into_iter().enumerate() {
        let start = raw.get().as_ptr() as usize - base;
        let value: Value = serde_json::from_str(raw.get()).map_err(|e| format!("entry {}: {e}", i + 1))?;
        let answered = value.pointer("/response/status").and_then(Value::as_u64) != Some(0);
        // A browser's export also holds `ws://`/`wss://` and `data:`
        // entries: nothing a route replays.
        let url = value.pointer("/request/url").and_then(Value::as_str).unwrap_or("http://");
        let other_scheme = url.split_once(':').is_some_and(|(s, _)| !s.eq_ignore_ascii_case("http") && !s.eq_ignore_ascii_case("https"));
        let parsed = if answered && !other_scheme { Some(entry(&value).map_err(|m| format!("entry {}: {m}", i + 1))?) } else { None };
        found.push((start..start + raw.get().len(), parsed));
    }
    Ok(found)
}

/// The response body of the entry whose JSON is `raw`.
pub fn body_of(raw: &[u8]) -> Result<Vec<u8>, String> {
    let value: Value = serde_json::from_slice(raw).map_err(|e| format!("not JSON: {e}"))?;
    bytes_of(value.pointer("/response/content"), "response content")
}

fn entry(e: &Value) -> Result<Entry, String> {
    let req = e.get("request").ok_or("no request")?;
    let res = e.get("response").ok_or("no response")?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let method = text(req, "method").ok_or("request has no method")?.to_ascii_uppercase();
    let url = text(req, "url").ok_or("request has no url")?;
    let parts = crate::url::parse(&url).map_err(|e| format!("url `{url}`: {e}"))?;
    let (path, query) = (if parts.path.is_empty() { "/" } else { parts.path }, parts.query.unwrap_or(""));
    let (scheme, host, port) = (parts.scheme.as_str().to_string(), parts.host, parts.port);
    let status = res.get("status").and_then(Value::as_u64).ok_or("response has no status")?;
    // 0 (never answered) is left out before this; anything else must be
    // a status an HTTP answer can carry.
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("response status {status} is not 100 to 599"))?;
    let content = res.get("content");
    let body = bytes_of(content, "response content")?;
    let request_body = bytes_of(req.get("postData"), "request postData")?;
    Ok(Entry {
        method,
        scheme,
        host: host.to_ascii_lowercase(),
        port,
        path: path.to_string(),
        query: crate::apps::app::query_pairs(query),
        request_headers: headers(req)?,
        request_body,
        status,
        reason: text(res, "statusText").unwrap_or_default(),
        headers: headers(res)?,
        body,
        body_as_sent: content.and_then(|c| c.get("_asSent")).and_then(Value::as_bool) == Some(true),
        started: text(e, "startedDateTime").unwrap_or_default(),
        millis: e.get("time").and_then(Value::as_f64).unwrap_or(0.0),
    })
}

/// The bytes of a `content` or `postData` object: its `text`, decoded when
/// its `encoding` is base64.
fn bytes_of(holder: Option<&Value>, what: &str) -> Result<Vec<u8>, String> {
    let field = |key: &str| holder.and_then(|h| h.get(key)).and_then(Value::as_str);
    match (field("text"), field("encoding")) {
        (Some(t), Some("base64")) => {
            base64::engine::general_purpose::STANDARD.decode(t.trim()).map_err(|e| format!("{what} is not base64: {e}"))
        }
        (Some(t), _) => Ok(t.as_bytes().to_vec()),
        (None, _) => Ok(Vec::new()),
    }
}

fn headers(v: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(list) = v.get("headers") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or("headers is not an array")?;
    list.iter()
        .map(|h| match (h.get("name").and_then(Value::as_str), h.get("value").and_then(Value::as_str)) {
            (Some(n), Some(v)) => Ok((n.to_string(), v.to_string())),
            _ => Err("a header without a name or value".to_string()),
        })
        .collect()
}

/// An entry as HAR 1.2 JSON. Bodies that are not UTF-8 are base64 with
/// `"encoding": "base64"` (on `postData` too, as several tools read it).
pub fn to_json(e: &Entry) -> Value {
    let pairs = |list: &[(String, String)]| -> Vec<Value> { list.iter().map(|(n, v)| json!({"name": n, "value": v})).collect() };
    let content_type = |list: &[(String, String)]| {
        list.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-type")).map_or(String::new(), |(_, v)| v.clone())
    };
    let body = |bytes: &[u8], mut obj: Map<String, Value>| {
        match std::str::from_utf8(bytes) {
            Ok(text) => obj.insert("text".into(), text.into()),
            Err(_) => {
                obj.insert("encoding".into(), "base64".into());
                obj.insert("text".into(), base64::engine::general_purpose::STANDARD.encode(bytes).into())
            }
        };
        Value::Object(obj)
    };
    let mut request = json!({
        "method": e.method, "url": e.url(), "httpVersion": "HTTP/1.1", "cookies": [],
        "headers": pairs(&e.request_headers), "queryString": pairs(&e.query),
        "headersSize": -1, "bodySize": e.request_body.len(),
    });
    if !e.request_body.is_empty() {
        let mut post = Map::new();
        post.insert("mimeType".into(), content_type(&e.request_headers).into());
        request["postData"] = body(&e.request_body, post);
    }
    let mut content = Map::new();
    content.insert("size".into(), e.body.len().into());
    content.insert("mimeType".into(), content_type(&e.headers).into());
    content.insert("_asSent".into(), true.into());
    json!({
        "startedDateTime": e.started, "time": e.millis, "request": request,
        "response": {
            "status": e.status, "statusText": e.reason, "httpVersion": "HTTP/1.1", "cookies": [],
            "headers": pairs(&e.headers), "content": body(&e.body, content),
            "redirectURL": e.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("location")).map_or("", |(_, v)| v.as_str()),
            "headersSize": -1, "bodySize": e.body.len(),
        },
        "cache": {},
        "timings": {"send": 0, "wait": e.millis, "receive": 0},
    })
}

/// Appends `entry` to the HAR file at `path` (made if missing, with its
/// directories, as vcrpy makes a cassette's), whole, whatever other
/// processes are writing to it.
pub fn append(path: &Path, entry: &Entry) -> Result<(), String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let lock = DirLock::take(dir)?;
    let mut doc = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({"log": {"version": "1.2", "creator": {"name": "intercept", "version": env!("CARGO_PKG_VERSION")}, "entries": []}})
        }
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let entries =
        doc.pointer_mut("/log/entries").and_then(Value::as_array_mut).ok_or_else(|| format!("{}: no log.entries", path.display()))?;
    entries.push(to_json(entry));
    let mut text = serde_json::to_vec_pretty(&doc).map_err(|e| e.to_string())?;
    text.push(b'\n');
    replace(dir, path, &text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    drop(lock);
    Ok(())
}

/// Replaces the file at `path` with `text`, whole: written first to a file
/// with no name (`O_TMPFILE`: a writer killed meanwhile leaves nothing
/// behind), then named `.NAME.tmp` beside it and renamed over it. Runs
/// under the directory's lock, so the one temporary name is ours, and one
/// left by a writer killed between those two steps is replaced.
fn replace(dir: &Path, path: &Path, text: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map_or("har".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&temp);
    let linked = std::fs::OpenOptions::new().write(true).mode(0o644).custom_flags(libc::O_TMPFILE).open(dir).and_then(|mut file| {
        file.write_all(text)?;
        file.sync_data()?;
        let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
        let to = std::ffi::CString::new(temp.as_os_str().as_encoded_bytes())?;
        // SAFETY: linkat with two NUL-terminated paths.
        match unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    });
    // A file system without unnamed files (or no /proc): the named one.
    if linked.is_err() {
        let written = File::create(&temp).and_then(|mut f| f.write_all(text).and_then(|_| f.sync_data()));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
    }
    std::fs::rename(&temp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })
}

/// An exclusive lock (`flock`) on a directory, held until dropped.
struct DirLock(File);

impl DirLock {
    fn take(dir: &Path) -> Result<DirLock, String> {
        let file = File::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        loop {
            match file.lock() {
                Ok(()) => return Ok(DirLock(file)),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot lock {}: {e}", dir.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
