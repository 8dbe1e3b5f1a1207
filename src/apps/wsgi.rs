//! `wsgi:MODULE:CALLABLE`: a Python WSGI app (PEP 3333) served to any
//! program. One Python worker per route, started on the route's first
//! request and kept for the process's life, speaks framed messages over its
//! stdin and stdout (the protocol is described in `wsgi_worker.py`). The
//! interpreter is `INTERCEPT_PYTHON` (default `python3`); the env file's
//! directory is on its `sys.path`. A worker that dies gives 502 and is
//! started again on the next request. Requests to one route are served one
//! at a time.

use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use parking_lot::lock_api::ArcMutexGuard;

use super::app::{App, Body, Request, Response, Wait, wait_readable};
use crate::log_error;

/// The worker: the shared WSGI runner, then the frame loop.
const WORKER: &str = concat!(include_str!("../../bindings/python/intercept_wsgi/wsgi.py"), include_str!("wsgi_worker.py"));
const FAILED: u32 = 0xFFFF_FFFF;

/// A `wsgi:MODULE:CALLABLE` route's app and how to run its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsgiSpec {
    /// The module to import, dotted (`pkg.app`).
    pub module: String,
    /// The WSGI callable's name in the module.
    pub callable: String,
    /// Put on sys.path: the env file's directory.
    pub dir: PathBuf,
    /// The interpreter; set from INTERCEPT_PYTHON when the configuration loads.
    pub python: String,
    /// How long the app may take to answer, and between two pieces of its
    /// body (`INTERCEPT_WSGI_TIMEOUT`): past it the worker is killed and
    /// started again, and the client gets 504.
    pub timeout: Duration,
}

/// The answer timeout unless `INTERCEPT_WSGI_TIMEOUT` says otherwise.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses what follows `wsgi:`.
pub fn parse(arg: &str, base: &Path) -> Result<WsgiSpec, String> {
    let ident = |s: &str| !s.is_empty() && s.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match arg.trim().split_once(':') {
        Some((module, callable)) if ident(module) && ident(callable) && !callable.contains('.') => Ok(WsgiSpec {
            module: module.to_string(),
            callable: callable.to_string(),
            dir: base.to_path_buf(),
            python: "python3".into(),
            timeout: ANSWER_TIMEOUT,
        }),
        _ => Err(format!("expected wsgi:MODULE:CALLABLE, found `wsgi:{arg}`")),
    }
}

/// The `wsgi:` app: one Python worker per route, serving one request at a time.
pub struct Wsgi {
    /// The app and its worker's settings.
    pub spec: WsgiSpec,
    worker: Arc<Mutex<Option<Worker>>>,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    /// Waits until the worker has written something to read, or the
    /// answer timeout passes, or the client hangs up.
    fn wait(&self, client: Option<RawFd>, limit: Duration) -> io::Result<()> {
        if !self.stdout.buffer().is_empty() {
            return Ok(());
        }
        match wait_readable(self.stdout.get_ref().as_raw_fd(), client, limit) {
            Wait::Ready => Ok(()),
            Wait::TimedOut => Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {} s", limit.as_secs_f64()))),
            Wait::ClientGone => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the client went away")),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Wsgi {
    /// An app for `spec`; its worker starts on the first request.
    pub fn new(spec: WsgiSpec) -> Wsgi {
        Wsgi { spec, worker: Arc::new(Mutex::new(None)) }
    }

    fn start(&self) -> io::Result<Worker> {
        let mut child = Command::new(&self.spec.python)
            .arg("-c")
            .arg(WORKER)
            .arg(&self.spec.module)
            .arg(&self.spec.callable)
            .arg(&self.spec.dir)
            .current_dir(&self.spec.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::with_capacity(256 * 1024, child.stdout.take().expect("piped"));
        Ok(Worker { child, stdin, stdout })
    }
}

fn frame(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    out.write_all(&(data.len() as u32).to_be_bytes())?;
    out.write_all(data)
}

fn read_len(input: &mut impl Read) -> io::Result<u32> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    Ok(u32::from_be_bytes(len))
}

impl App for Wsgi {
    fn call(&self, req: &mut Request<'_>) -> Response {
        let mut guard = self.worker.lock_arc();
        if guard.is_none() {
            match self.start() {
                Ok(w) => *guard = Some(w),
                Err(e) => return bad_gateway(&format!("cannot start {}: {e}", self.spec.python)),
            }
        }
        let worker = guard.as_mut().expect("started above");
        let (client, limit) = (req.client, self.spec.timeout);
        match send_request(worker, req).and_then(|()| worker.wait(client, limit)).and_then(|()| read_head(worker)) {
            Ok(Head::Error(text)) => {
                let _ = skip_rest(worker);
                Response::text(500, &format!("the WSGI app failed:\n{text}"))
            }
            Ok(Head::Answer(status, headers)) => {
                let len = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("Content-Length")).and_then(|(_, v)| v.trim().parse().ok());
                let reader = Box::new(Frames { guard, remaining: 0, done: false, client, limit });
                Response { status, headers, body: Body::Stream { reader, len }, ..Default::default() }
            }
            Err(e) => {
                *guard = None; // killed now, started again on the next request
                let status = if e.kind() == io::ErrorKind::TimedOut { 504 } else { 502 };
                let why = format!("the WSGI worker for {}:{} failed: {e}; it is started again", self.spec.module, self.spec.callable);
                log_error!("wsgi: {why}");
                Response::text(status, &why)
            }
        }
    }
}

fn send_request(worker: &mut Worker, req: &mut Request<'_>) -> io::Result<()> {
    let head = serde_json::json!({
        "method": req.method, "target": req.target, "script_name": req.script_name, "query": req.query,
        "host": req.host, "port": req.port, "scheme": req.scheme,
        "headers": req.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
    });
    let mut out = io::BufWriter::with_capacity(256 * 1024, &mut worker.stdin);
    frame(&mut out, head.to_string().as_bytes())?;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = req.body.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        frame(&mut out, &chunk[..n])?;
    }
    frame(&mut out, b"")?;
    out.flush()
}

enum Head {
    Answer(u16, Vec<(String, String)>),
    Error(String),
}

fn read_head(worker: &mut Worker) -> io::Result<Head> {
    let len = read_len(&mut worker.stdout)?;
    let mut text = vec![0u8; len as usize];
    worker.stdout.read_exact(&mut text)?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(io::Error::other)?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Ok(Head::Error(e.to_string()));
    }
    let status = v["status"].as_str().and_then(|s| s.split_whitespace().next()?.parse().ok()).filter(|s| (100..=599).contains(s));
    let status = status.ok_or_else(|| io::Error::other(format!("bad status {}", v["status"])))?;
    let headers = v["headers"]
        .as_array()
        .map(|hs| hs.iter().filter_map(|h| Some((h[0].as_str()?.to_string(), h[1].as_str()?.to_string()))).collect())
        .unwrap_or_default();
    Ok(Head::Answer(status, headers))
}

/// Reads frames up to the terminator.
fn skip_rest(worker: &mut Worker) -> io::Result<()> {
    loop {
        match read_len(&mut worker.stdout)? {
            0 => return Ok(()),
            FAILED => return Err(io::Error::other("the app failed")),
            n => {
                io::copy(&mut (&mut worker.stdout).take(u64::from(n)), &mut io::sink())?;
            }
        }
    }
}

/// The response body, frame by frame, holding the worker until it ends.
struct Frames {
    guard: ArcMutexGuard<parking_lot::RawMutex, Option<Worker>>,
    /// Bytes left in the current frame.
    remaining: usize,
    done: bool,
    client: Option<RawFd>,
    limit: Duration,
}

impl Frames {
    fn next(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let worker = self.guard.as_mut().ok_or_else(|| io::Error::other("worker gone"))?;
        loop {
            worker.wait(self.client, self.limit)?;
            if self.remaining > 0 {
                let n = self.remaining.min(buf.len());
                worker.stdout.read_exact(&mut buf[..n])?;
                self.remaining -= n;
                return Ok(n);
            }
            match read_len(&mut worker.stdout)? {
                0 => {
                    self.done = true;
                    return Ok(0);
                }
                FAILED => return Err(io::Error::other("the WSGI app failed while sending its body")),
                n => self.remaining = n as usize,
            }
        }
    }
}

impl Read for Frames {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        self.next(buf).inspect_err(|e| {
            self.done = true;
            *self.guard = None;
            log_error!("wsgi: {e}");
        })
    }
}

impl Drop for Frames {
    fn drop(&mut self) {
        // A client that left mid-body leaves the worker mid-response: start
        // a fresh one next time rather than read the rest.
        if !self.done {
            *self.guard = None;
        }
    }
}

fn bad_gateway(why: &str) -> Response {
    log_error!("wsgi: {why}");
    Response::text(502, why)
}
