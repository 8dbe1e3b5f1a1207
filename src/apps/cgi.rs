//! `cgi:[NAME=VALUE…] PROGRAM [ARG…]`: RFC 3875 CGI, one process per request.
//!
//! The program gets the standard meta-variables on top of the host's
//! environment (plus the `NAME=VALUE` words of the spec), the request body
//! on stdin, and the env file's directory as its working directory; its
//! stderr is the host's stderr. Its output is parsed as a CGI response:
//! `Status:`, `Location:` (a local path is served again, internally, as a
//! GET), `Content-Type:` and other fields, then the body, streamed.
//! A program that cannot start, exits before a valid header block, or
//! writes garbage gets 502; one that gives no header within the timeout
//! (`INTERCEPT_CGI_TIMEOUT`, 60 s by default) is killed with every process
//! it started (it runs in a process group of its own) and gets 504.
//!
//! The header block goes to the client as soon as it is whole, and the body
//! as the program writes it: while the request body is still being fed to
//! the program, its output is drained as it comes, never waited for.

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::app::{App, Body, Request, Response};
use crate::log_error;

/// How long a CGI program may take to start answering (its header block),
/// unless `INTERCEPT_CGI_TIMEOUT` says otherwise.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most output a program may write before its header block ends.
const MAX_HEADER: usize = 64 * 1024;
/// Local redirects followed before giving up.
const MAX_LOCAL_REDIRECTS: usize = 8;

/// A `cgi:` route's program and how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiSpec {
    /// The program: resolved against the env file's directory, or found on PATH.
    pub program: PathBuf,
    /// The words after the program, its arguments.
    pub args: Vec<String>,
    /// The `NAME=VALUE` words before the program, added to its environment
    /// (the meta-variables win over them).
    pub env: Vec<(String, String)>,
    /// The working directory: the env file's directory.
    pub dir: PathBuf,
    /// How long the program may take to write its header block.
    pub timeout: Duration,
}

/// Parses what follows `cgi:`.
pub fn parse(arg: &str, base: &Path) -> Result<CgiSpec, String> {
    let mut words = arg.split_whitespace().peekable();
    let mut env = Vec::new();
    while let Some((name, value)) = words.peek().and_then(|w| w.split_once('=')) {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            break;
        }
        env.push((name.to_string(), value.to_string()));
        words.next();
    }
    let Some(program) = words.next() else {
        return Err("expected cgi:PROGRAM [ARG...]".into());
    };
    let program = locate(program, base).ok_or_else(|| format!("cgi program `{program}` not found or not executable"))?;
    Ok(CgiSpec { program, args: words.map(str::to_string).collect(), env, dir: base.to_path_buf(), timeout: HEADER_TIMEOUT })
}

/// A program path as written, relative to `base`, or found on PATH.
fn locate(program: &str, base: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = base.join(program);
        return executable(&p).then_some(p);
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| executable(p))
}

/// The `cgi:` app: runs its program once per request.
pub struct Cgi {
    /// The program to run.
    pub spec: CgiSpec,
}

impl App for Cgi {
    fn call(&self, req: &mut Request<'_>) -> Response {
        let mut method = req.method.clone();
        let mut path_info = req.path_info.clone();
        let mut query = req.query.clone();
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            match self.run(req, &method, &path_info, &query) {
                Outcome::Answer(response) => return response,
                Outcome::LocalRedirect(location) => {
                    // RFC 3875 6.2.2: serve the new path instead, as a GET.
                    let (path, q) = location.split_once('?').unwrap_or((&location, ""));
                    let Some(rest) = path.strip_prefix(req.script_name.as_str()) else {
                        return Response::text(502, &format!("CGI local redirect to {location} is outside {}", req.script_name));
                    };
                    (method, path_info, query) = ("GET".to_string(), rest.to_string(), q.to_string());
                }
            }
        }
        Response::text(502, "CGI local redirects loop")
    }
}

enum Outcome {
    Answer(Response),
    LocalRedirect(String),
}

impl Cgi {
    fn run(&self, req: &mut Request<'_>, method: &str, path_info: &str, query: &str) -> Outcome {
        let first = method == req.method;
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .current_dir(&self.spec.dir)
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .envs(meta_variables(req, method, path_info, query, first))
            .stdin(if first { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group, so a timeout ends what it started too.
            .process_group(0);
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return Outcome::Answer(bad_gateway(&format!("cannot start {}: {e}", self.spec.program.display()))),
        };
        let watchdog = Watchdog::start(child.id(), self.spec.timeout);
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout was piped");
        // Feed the body while reading what the program writes, so neither
        // side can fill a pipe and wait on the other.
        let (early, fed) = std::thread::scope(|scope| {
            let feeder = stdin.map(|mut stdin| {
                let body = &mut req.body;
                scope.spawn(move || {
                    let copied = io::copy(body, &mut stdin);
                    drop(stdin);
                    copied
                })
            });
            let early = read_head(&mut stdout, || feeder.as_ref().is_none_or(|f| f.is_finished()));
            (early, feeder.map(|f| f.join()))
        });
        let timed_out = watchdog.stop();
        if let Some(Ok(Err(e))) = &fed
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            kill_group(&child);
            let _ = child.wait();
            return Outcome::Answer(Response::text(400, &format!("could not read the request body: {e}")));
        }
        let early = match early {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Answer(give_up(child, &format!("reading {}: {e}", self.spec.program.display()))),
        };
        let Some((head_len, body_start)) = header_end(&early) else {
            let why = if timed_out {
                return Outcome::Answer(give_up_with(child, 504, "the CGI program gave no answer in time"));
            } else if early.len() > MAX_HEADER {
                "its header block is over 64 KiB"
            } else {
                "it ended before a complete header block"
            };
            return Outcome::Answer(give_up(child, &format!("{}: {why}", self.spec.program.display())));
        };
        let parsed = match parse_head(&early[..head_len]) {
            Ok(parsed) => parsed,
            Err(why) => return Outcome::Answer(give_up(child, &format!("{}: {why}", self.spec.program.display()))),
        };
        if let Some(location) = parsed.local_redirect() {
            kill_group(&child);
            let _ = child.wait();
            return Outcome::LocalRedirect(location);
        }
        let len = parsed.content_length;
        let rest = Output { buffered: io::Cursor::new(early[body_start..].to_vec()), stdout, child };
        Outcome::Answer(Response {
            status: parsed.status,
            headers: parsed.headers,
            body: Body::Stream { reader: Box::new(rest), len },
            ..Default::default()
        })
    }
}

/// The RFC 3875 meta-variables for one request.
fn meta_variables(req: &Request<'_>, method: &str, path_info: &str, query: &str, with_body: bool) -> Vec<(String, String)> {
    let mut vars = vec![
        ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
        ("SERVER_SOFTWARE".into(), format!("intercept/{}", env!("CARGO_PKG_VERSION"))),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("SERVER_NAME".into(), req.host.clone()),
        ("SERVER_PORT".into(), req.port.to_string()),
        ("REQUEST_METHOD".into(), method.to_string()),
        ("SCRIPT_NAME".into(), req.script_name.clone()),
        ("PATH_INFO".into(), path_info.to_string()),
        ("QUERY_STRING".into(), query.to_string()),
        ("REQUEST_URI".into(), format!("{}{}{}{}", req.script_name, path_info, if query.is_empty() { "" } else { "?" }, query)),
        ("REMOTE_ADDR".into(), "127.0.0.1".into()),
        ("REMOTE_HOST".into(), "127.0.0.1".into()),
    ];
    if req.scheme == "https" {
        vars.push(("HTTPS".into(), "on".into()));
    }
    if with_body {
        if let Some(len) = req.header("Content-Length") {
            vars.push(("CONTENT_LENGTH".into(), len.trim().to_string()));
        }
        if let Some(ty) = req.header("Content-Type") {
            vars.push(("CONTENT_TYPE".into(), ty.to_string()));
        }
    }
    if let Some(auth) = req.header("Authorization").and_then(|a| a.split_whitespace().next()) {
        vars.push(("AUTH_TYPE".into(), auth.to_string()));
    }
    for (name, value) in &req.headers {
        let upper = name.to_ascii_uppercase().replace('-', "_");
        // Content-* travel as CONTENT_*; HTTP_PROXY would let a client set
        // the program's proxy ("httpoxy").
        if matches!(upper.as_str(), "CONTENT_LENGTH" | "CONTENT_TYPE" | "PROXY")
            || !upper.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        let key = format!("HTTP_{upper}");
        match vars.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(value);
            }
            None => vars.push((key, value.clone())),
        }
    }
    vars
}

/// Reads the program's output until its header block ends (or it stops,
/// or it is too large). Then, until the request body is all fed (`fed`),
/// takes what the program writes only as it comes, so the program never
/// blocks on a full stdout pipe and the head is never held back waiting
/// for more output.
fn read_head(stdout: &mut ChildStdout, fed: impl Fn() -> bool) -> io::Result<Vec<u8>> {
    const MAX_EARLY: usize = 8 << 20;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let complete = header_end(&out).is_some();
        let garbage = !complete && out.len() > MAX_HEADER;
        if garbage || out.len() > MAX_EARLY || (complete && fed()) {
            return Ok(out);
        }
        if complete && !readable(stdout, Duration::from_millis(10)) {
            continue; // the body is still being fed: look again
        }
        match stdout.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Whether the program's output has bytes (or its end) within `wait`.
fn readable(stdout: &ChildStdout, wait: Duration) -> bool {
    let mut ready = libc::pollfd { fd: stdout.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: polls one valid pollfd.
    let n = unsafe { libc::poll(&mut ready, 1, wait.as_millis() as libc::c_int) };
    n != 0
}

/// Where the header block ends: (its length without the blank line, the
/// start of the body). Lines may end in LF or CRLF.
fn header_end(out: &[u8]) -> Option<(usize, usize)> {
    let mut at = 0;
    while let Some(nl) = out[at..].iter().position(|&b| b == b'\n') {
        let line = &out[at..at + nl];
        if line.is_empty() || line == b"\r" {
            return Some((at, at + nl + 1));
        }
        at += nl + 1;
    }
    None
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    location: Option<String>,
    content_length: Option<u64>,
    had_status: bool,
}

impl Head {
    /// A `Location` with a local path and nothing else: RFC 3875 6.2.2.
    fn local_redirect(&self) -> Option<String> {
        let location = self.location.as_ref()?;
        let only_location = self.headers.iter().all(|(n, _)| n.eq_ignore_ascii_case("Location"));
        (location.starts_with('/') && !self.had_status && only_location).then(|| location.clone())
    }
}

fn parse_head(block: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(block).map_err(|_| "its header block is not text".to_string())?;
    let mut head = Head { status: 200, headers: Vec::new(), location: None, content_length: None, had_status: false };
    let mut has_type = false;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line `{line}`"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("malformed header line `{line}`"));
        }
        if name.eq_ignore_ascii_case("Status") {
            let code = value.split_whitespace().next().unwrap_or("");
            head.status = match code.parse() {
                Ok(s) if (100..=599).contains(&s) && code.len() == 3 => s,
                _ => return Err(format!("bad Status `{value}`")),
            };
            head.had_status = true;
            continue;
        }
        if name.eq_ignore_ascii_case("Location") {
            head.location = Some(value.to_string());
        }
        if name.eq_ignore_ascii_case("Content-Type") {
            has_type = true;
        }
        if name.eq_ignore_ascii_case("Content-Length") {
            head.content_length = value.parse().ok();
            continue;
        }
        head.headers.push((name.to_string(), value.to_string()));
    }
    if head.location.as_deref().is_some_and(|l| !l.starts_with('/')) && !head.had_status {
        head.status = 302; // a client redirect
    }
    if !has_type && head.location.is_none() && !head.had_status {
        return Err("no Content-Type, Location or Status in its answer".into());
    }
    Ok(head)
}

/// The rest of the program's output as the response body; reaps the
/// program at the end, kills it if the client goes away first.
struct Output {
    buffered: io::Cursor<Vec<u8>>,
    stdout: ChildStdout,
    child: Child,
}

impl Read for Output {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.buffered.read(buf)? {
            0 => self.stdout.read(buf),
            n => Ok(n),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            kill_group(&self.child);
        }
        let _ = self.child.wait();
    }
}

/// Kills the program and every process it started (its process group).
fn kill_group(child: &Child) {
    // SAFETY: signals the group our own child leads; the child is not yet
    // reaped, so its id still names it.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
}

fn bad_gateway(why: &str) -> Response {
    log_error!("cgi: {why}");
    Response::text(502, &format!("bad gateway: {why}"))
}

fn give_up(child: Child, why: &str) -> Response {
    give_up_with(child, 502, why)
}

fn give_up_with(mut child: Child, status: u16, why: &str) -> Response {
    kill_group(&child);
    let status_text = match child.wait() {
        Ok(s) if s.code().is_some_and(|c| c != 0) => format!(" (exit status {})", s.code().unwrap_or(0)),
        _ => String::new(),
    };
    log_error!("cgi: {why}{status_text}");
    Response::text(status, &format!("{why}{status_text}"))
}

/// Kills a program that has not answered in time.
struct Watchdog {
    done: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(pid: u32, limit: Duration) -> Watchdog {
        let (done, fired) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (d, f) = (done.clone(), fired.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while !d.load(Ordering::Acquire) {
                let now = Instant::now();
                if now >= deadline {
                    f.store(true, Ordering::Release);
                    // SAFETY: signals the group our own child leads, not yet
                    // reaped (the caller waits for it only after stopping us).
                    unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
                    return;
                }
                std::thread::park_timeout(deadline - now);
            }
        });
        Watchdog { done, fired, thread }
    }

    /// Stops the watchdog; true if it had to kill.
    fn stop(self) -> bool {
        self.done.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
        self.fired.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_words() {
        let spec = parse("GIT_PROJECT_ROOT=/srv/git GIT_HTTP_EXPORT_ALL=1 sh -c true", Path::new("/")).unwrap();
        assert_eq!(spec.env, [("GIT_PROJECT_ROOT".to_string(), "/srv/git".to_string()), ("GIT_HTTP_EXPORT_ALL".into(), "1".into())]);
        assert!(spec.program.ends_with("sh"));
        assert_eq!(spec.args, ["-c", "true"]);
        assert!(parse("no-such-program-here", Path::new("/")).unwrap_err().contains("not found"));
        assert!(parse("", Path::new("/")).is_err());
    }

    #[test]
    fn response_heads() {
        let h = parse_head(b"Status: 201 Made\r\nContent-Type: text/plain\r\nX-A: 1").unwrap();
        assert_eq!((h.status, h.headers.len()), (201, 2));
        let h = parse_head(b"Location: https://elsewhere.test/").unwrap();
        assert_eq!((h.status, h.local_redirect()), (302, None));
        let h = parse_head(b"Location: /other?x").unwrap();
        assert_eq!(h.local_redirect().as_deref(), Some("/other?x"));
        assert!(parse_head(b"X-Only: 1").is_err());
        assert!(parse_head(b"not a header").is_err());
        assert!(parse_head(b"Status: abc").is_err());
        assert_eq!(header_end(b"A: 1\nB: 2\n\nbody"), Some((10, 11)));
        assert_eq!(header_end(b"A: 1\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(header_end(b"A: 1\r\n"), None);
    }
}
