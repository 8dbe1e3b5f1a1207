//! `files:DIR`: GET and HEAD of a directory tree, as a static file server
//! answers them: `index.html` for directories, content types from the file
//! extension, `ETag` and `Last-Modified` with 304 for conditional requests,
//! single byte ranges (206, 416), 404 and 405.
//!
//! Never a byte from outside DIR: the path is taken apart into segments
//! after percent-decoding, so `..` in any spelling is refused, NUL bytes are
//! refused, and the final file is canonicalised and must still lie under
//! the canonical DIR, so symlinks leading out are refused too. Only regular
//! files are served: a FIFO, socket or device in DIR is a 404, never a
//! thread blocked on it. Out of file descriptors is a 503 and a log line.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::app::{App, Body, Request, Response, content_type};
use crate::log_error;

pub struct Files {
    /// Canonical root directory.
    pub root: PathBuf,
}

/// Parses what follows `files:`.
pub fn parse(arg: &str, base: &Path) -> Result<PathBuf, String> {
    let dir = base.join(arg.trim());
    match dir.canonicalize() {
        Ok(root) if root.is_dir() => Ok(root),
        Ok(_) => Err(format!("files:{arg}: {} is not a directory", dir.display())),
        Err(e) => Err(format!("files:{arg}: cannot open {}: {e}", dir.display())),
    }
}

impl App for Files {
    fn call(&self, req: &mut Request<'_>) -> Response {
        let head_only = req.method == "HEAD";
        if req.method != "GET" && !head_only {
            let mut r = Response::text(405, "only GET and HEAD");
            r.headers.push(("Allow".into(), "GET, HEAD".into()));
            return r;
        }
        let Some(path) = self.resolve(&req.path_info) else {
            return Response::text(404, "not found");
        };
        if path.is_dir() {
            if !req.path_info.ends_with('/') {
                // Relative links in the index must resolve inside the directory.
                let mut r = Response::text(301, "moved");
                let query = if req.query.is_empty() { String::new() } else { format!("?{}", req.query) };
                // One leading slash: `//docs/` would name another host.
                let path = format!("{}{}", req.script_name, req.path_info);
                r.headers.push(("Location".into(), format!("/{}/{query}", path.trim_start_matches('/'))));
                return r;
            }
            return match self.resolve(&format!("{}/index.html", req.path_info)) {
                Some(index) if index.is_file() => serve_file(&index, req),
                _ => Response::text(404, "not found"),
            };
        }
        serve_file(&path, req)
    }
}

impl Files {
    /// The file a request path names, if it lies inside the root.
    fn resolve(&self, path_info: &str) -> Option<PathBuf> {
        if path_info.contains('\0') {
            return None;
        }
        let mut path = self.root.clone();
        for segment in path_info.split('/') {
            match segment {
                "" | "." => {}
                ".." => return None,
                s => path.push(s),
            }
        }
        let real = path.canonicalize().ok()?;
        real.starts_with(&self.root).then_some(real)
    }
}

fn serve_file(path: &Path, req: &Request<'_>) -> Response {
    // Non-blocking, so a FIFO put in the file's place never holds the
    // thread (reads of a regular file ignore the flag); the kind is checked
    // on what was opened.
    let mut file = match File::options().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            log_error!("files: cannot open {}: {e}", path.display());
            return Response::text(503, "out of file descriptors");
        }
        Err(_) => return Response::text(404, "not found"),
    };
    let meta = match file.metadata() {
        Ok(meta) if meta.is_file() => meta,
        _ => return Response::text(404, "not found"),
    };
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let stamp = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    let etag = format!("\"{:x}-{:x}\"", stamp.as_nanos(), len);
    let last_modified = httpdate::fmt_http_date(modified);
    let mut headers = vec![
        ("Content-Type".to_string(), content_type(path).to_string()),
        ("ETag".into(), etag.clone()),
        ("Last-Modified".into(), last_modified),
        ("Accept-Ranges".into(), "bytes".into()),
    ];
    if not_modified(req, &etag, modified) {
        return Response { status: 304, headers, body: Body::Bytes(Vec::new()), ..Default::default() };
    }
    let range = req.header("Range").filter(|_| if_range_holds(req, &etag, modified));
    let (status, start, count) = match range.map(|r| parse_range(r, len)) {
        None | Some(Range::Ignored) => (200, 0, len),
        Some(Range::Unsatisfiable) => {
            headers.retain(|(n, _)| n != "Content-Type");
            headers.push(("Content-Range".into(), format!("bytes */{len}")));
            let mut r = Response::text(416, "range not satisfiable");
            r.headers.extend(headers);
            return r;
        }
        Some(Range::Bytes(start, end)) => {
            headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
            (206, start, end - start + 1)
        }
    };
    if start > 0 && file.seek(SeekFrom::Start(start)).is_err() {
        return Response::text(500, "cannot read the file");
    }
    Response { status, headers, body: Body::Stream { reader: Box::new(file.take(count)), len: Some(count) }, ..Default::default() }
}

/// RFC 9110 13.1.2 and 13.1.3: If-None-Match wins over If-Modified-Since.
fn not_modified(req: &Request<'_>, etag: &str, modified: SystemTime) -> bool {
    if let Some(tags) = req.header("If-None-Match") {
        return tags.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag);
    }
    match req.header("If-Modified-Since").and_then(|d| httpdate::parse_http_date(d).ok()) {
        Some(since) => whole_seconds(modified) <= whole_seconds(since),
        None => false,
    }
}

/// If-Range: the range applies only if the validator still matches.
fn if_range_holds(req: &Request<'_>, etag: &str, modified: SystemTime) -> bool {
    match req.header("If-Range") {
        None => true,
        Some(v) if v.trim().starts_with('"') => v.trim() == etag,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|d| whole_seconds(modified) <= whole_seconds(d)),
    }
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Not one range we serve (several ranges, another unit): send it all.
    Ignored,
    Unsatisfiable,
    /// First and last byte, inclusive.
    Bytes(u64, u64),
}

fn parse_range(header: &str, len: u64) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Range::Ignored };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Range::Ignored };
    let number = |s: &str| -> Option<u64> { if s.bytes().all(|b| b.is_ascii_digit()) { s.parse().ok() } else { None } };
    match (first.trim(), last.trim()) {
        ("", "") => Range::Ignored,
        ("", suffix) => match number(suffix) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Bytes(len.saturating_sub(n), len - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Ignored,
        },
        (start, end) => match (number(start), if end.is_empty() { Some(u64::MAX) } else { number(end) }) {
            (Some(s), Some(_)) if s >= len => Range::Unsatisfiable,
            (Some(s), Some(e)) if e >= s => Range::Bytes(s, e.min(len - 1)),
            _ => Range::Ignored,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-4", 10), Range::Bytes(0, 4));
        assert_eq!(parse_range("bytes=5-", 10), Range::Bytes(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), Range::Bytes(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), Range::Bytes(0, 9));
        assert_eq!(parse_range("bytes=8-100", 10), Range::Bytes(8, 9));
        assert_eq!(parse_range("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 10), Range::Ignored);
        assert_eq!(parse_range("bytes=5-2", 10), Range::Ignored);
        assert_eq!(parse_range("bytes=a-2", 10), Range::Ignored);
    }

    #[test]
    fn nothing_outside_the_root() {
        let base = crate::testing::temp_dir("files");
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        std::fs::write(root.join("sub/ok.txt"), "ok").unwrap();
        let _ = std::os::unix::fs::symlink(base.join("secret.txt"), root.join("link.txt"));
        let files = Files { root: parse("root", &base).unwrap() };
        assert!(files.resolve("/sub/ok.txt").is_some());
        assert!(files.resolve("/sub/../sub/ok.txt").is_none());
        assert!(files.resolve("/../secret.txt").is_none());
        assert!(files.resolve("/link.txt").is_none());
        assert!(files.resolve("/sub/ok.txt\0.png").is_none());
    }

    fn get<'a>(path_info: &str, body: &'a mut &'static [u8]) -> Request<'a> {
        Request {
            method: "GET".into(),
            scheme: "http",
            host: "h.test".into(),
            port: 80,
            target: path_info.into(),
            script_name: String::new(),
            path_info: path_info.into(),
            query: String::new(),
            headers: Vec::new(),
            body,
            client: None,
            opener: None,
        }
    }

    #[test]
    fn only_regular_files_are_served() {
        let base = crate::testing::temp_dir("files-fifo");
        std::fs::write(base.join("plain.txt"), "plain").unwrap();
        let fifo = std::ffi::CString::new(base.join("pipe").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let files = Files { root: parse(".", &base).unwrap() };
        let mut body: &[u8] = b"";
        assert_eq!(files.call(&mut get("/plain.txt", &mut body)).status, 200);
        // Nobody writes to the FIFO: a blocking open would never return.
        assert_eq!(files.call(&mut get("/pipe", &mut body)).status, 404);
    }

    #[test]
    fn a_directory_redirect_stays_on_this_host() {
        let base = crate::testing::temp_dir("files-redirect");
        std::fs::create_dir(base.join("docs")).unwrap();
        let files = Files { root: parse(".", &base).unwrap() };
        let mut body: &[u8] = b"";
        for path in ["/docs", "//docs", "///docs"] {
            let r = files.call(&mut get(path, &mut body));
            assert_eq!(r.status, 301);
            assert_eq!(r.headers.iter().find(|(n, _)| n == "Location").unwrap().1, "/docs/", "{path}");
        }
    }
}
