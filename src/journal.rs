//! The journal: `INTERCEPT_JOURNAL=PATH` gets one JSON line per intercepted
//! request and per blocked connection or lookup.
//!
//! The file is opened on first use with `O_APPEND`, and each line goes out in
//! one `write`, so lines from many threads and many processes sharing the
//! file land whole and never interleave (Linux serialises appending writes to
//! a regular file).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::log_error;

thread_local! {
    /// The process a supervised connection belongs to, when this thread
    /// serves one for `intercept run`'s supervisor (0: this process).
    static FOR_PID: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Lines this thread writes name `pid`: the supervised process whose
/// connection it serves, not the supervisor.
pub fn write_for_pid(pid: u32) {
    FOR_PID.with(|p| p.set(pid));
}

/// The pid a line names.
fn pid() -> u32 {
    match FOR_PID.with(|p| p.get()) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// The journal file, opened on its first line.
pub struct Journal {
    path: PathBuf,
    file: OnceLock<Option<File>>,
}

/// One answered request.
pub struct Exchange<'a> {
    /// The `<NAME>` of the route that answered; `-` for a 404 or a rejected request.
    pub route: &'a str,
    /// The method as received.
    pub method: &'a str,
    /// `scheme://host:port` and the target.
    pub url: &'a str,
    /// The status answered.
    pub status: u16,
    /// Bytes of the request read: head and body (over HTTP/2, the body alone).
    pub request_bytes: u64,
    /// Bytes of the response written (over HTTP/2, the body alone).
    pub response_bytes: u64,
    /// From the end of the request's head to the last byte written, in milliseconds.
    pub duration_ms: f64,
    /// What the app adds (`"stub": "…"`, or null for no stub).
    pub extra: &'a [(&'static str, Value)],
}

impl Journal {
    /// A journal appending to `path`, which is opened (and made) on first use.
    pub fn new(path: PathBuf) -> Journal {
        Journal { path, file: OnceLock::new() }
    }

    /// Appends a `request` line for an answered request.
    pub fn request(&self, e: &Exchange<'_>) {
        let mut line = json!({
            "time": now(),
            "pid": pid(),
            "event": "request",
            "route": e.route,
            "method": e.method,
            "url": e.url,
            "status": e.status,
            "request_bytes": e.request_bytes,
            "response_bytes": e.response_bytes,
            "duration_ms": (e.duration_ms * 1000.0).round() / 1000.0,
        });
        if let Value::Object(o) = &mut line {
            // Kept even when null: `"stub": null` says no stub matched.
            o.extend(e.extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        }
        self.write_line(line);
    }

    /// A connection or lookup refused by the pass-through setting.
    pub fn blocked(&self, target: &str, passthrough: &str) {
        self.append(json!({
            "time": now(),
            "pid": pid(),
            "event": "blocked",
            "target": target,
            "passthrough": passthrough,
        }));
    }

    fn append(&self, mut entry: Value) {
        if let Value::Object(o) = &mut entry {
            o.retain(|_, v| !v.is_null());
        }
        self.write_line(entry);
    }

    fn write_line(&self, entry: Value) {
        let file = self.file.get_or_init(|| {
            let opened = OpenOptions::new().create(true).append(true).custom_flags(libc::O_CLOEXEC).mode(0o644).open(&self.path);
            opened.map_err(|e| log_error!("cannot open the journal {}: {e}", self.path.display())).ok()
        });
        let Some(mut file) = file.as_ref() else { return };
        let mut line = entry.to_string();
        line.push('\n');
        if let Err(e) = write_once(&mut file, line.as_bytes()) {
            log_error!("cannot write the journal {}: {e}", self.path.display());
        }
    }
}

/// Writes the line with a single `write` call; a short write (disk full) is
/// an error rather than a second write that could interleave.
fn write_once(file: &mut &File, line: &[u8]) -> io::Result<()> {
    match file.write(line)? {
        n if n == line.len() => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::WriteZero, "short write")),
    }
}

/// RFC 3339 UTC time with milliseconds (also a HAR entry's start).
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// `at` as RFC 3339 UTC time with milliseconds (`2026-12-02T10:00:00.123Z`).
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rest / 3600, rest % 3600 / 60, rest % 60, since.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339() {
        let at = |millis: u64| rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(millis));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(1_796_205_600_123), "2026-12-02T10:00:00.123Z");
    }

    #[test]
    fn lines_are_whole_json_from_many_threads() {
        let dir = crate::testing::temp_dir("journal");
        let path = dir.join("journal.jsonl");
        let journal = std::sync::Arc::new(Journal::new(path.clone()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let j = journal.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let url = format!("http://t{t}.test/{i}/{}", "x".repeat(i * 10));
                        j.request(&Exchange {
                            route: "R",
                            method: "GET",
                            url: &url,
                            status: 200,
                            request_bytes: 1,
                            response_bytes: 2,
                            duration_ms: 0.5,
                            extra: &[],
                        });
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        journal.blocked("127.0.0.1:80", "deny");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 8 * 200 + 1);
        assert_eq!(lines[0]["event"], "request");
        assert_eq!(lines.last().unwrap()["event"], "blocked");
        assert_eq!(lines.last().unwrap()["passthrough"], "deny");
    }

    #[test]
    fn time_is_rfc3339() {
        let t = now();
        assert_eq!(t.len(), "2026-11-24T05:45:03.123Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
