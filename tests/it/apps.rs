//! The apps beyond echo, static and files, through real clients: CGI
//! (including git's smart HTTP over http and https), WSGI, forward, native
//! apps, and the runtime API from Python.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    need("git", "git");
    let mut cmd = command("git", dir);
    ok(cmd.current_dir(dir).args(["-c", "user.name=Test", "-c", "user.email=test@example.test"]).args(args).output().unwrap())
}

/// A bare repository with one commit on `main`, served by git http-backend.
fn git_server(dir: &Path) -> PathBuf {
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    git(&srv, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
    git(&srv.join("repo.git"), &["config", "http.receivepack", "true"]);
    let seed = dir.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    std::fs::write(seed.join("README"), "first version\n").unwrap();
    git(&seed, &["add", "README"]);
    git(&seed, &["commit", "-q", "-m", "first"]);
    git(&seed, &["push", "-q", srv.join("repo.git").to_str().unwrap(), "main"]);
    srv
}

fn clone_commit_push(scheme: &str) {
    need("git", "git");
    let dir = temp_dir(&format!("git-{scheme}"));
    let srv = git_server(&dir);
    let env = env_file(
        &dir,
        &format!(
            "INTERCEPT_ROUTE_GIT={scheme}://git.example.test/git -> cgi:GIT_PROJECT_ROOT={} GIT_HTTP_EXPORT_ALL=1 git http-backend\nINTERCEPT_CA_DIR={}\nINTERCEPT_PASSTHROUGH=deny\n",
            srv.display(),
            dir.join("ca").display()
        ),
    );
    let url = format!("{scheme}://git.example.test/git/repo.git");
    let mut cmd = command(intercept_bin(), &dir);
    let out = cmd
        .current_dir(&dir)
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "git", "clone", "-q", &url, "work"])
        .output()
        .unwrap();
    ok(out);
    let work = dir.join("work");
    assert_eq!(std::fs::read_to_string(work.join("README")).unwrap(), "first version\n");
    std::fs::write(work.join("README"), "second version\n").unwrap();
    // A large file makes git send a chunked request body.
    let big: String = (0..300_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(work.join("big.txt"), &big).unwrap();
    git(&work, &["add", "README", "big.txt"]);
    git(&work, &["commit", "-q", "-m", "second"]);
    let mut cmd = command(intercept_bin(), &dir);
    ok(cmd
        .current_dir(&work)
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "git", "push", "-q", "origin", "main"])
        .output()
        .unwrap());
    let log = git(&srv.join("repo.git"), &["log", "--format=%s", "main"]);
    assert_eq!(log, "second\nfirst\n");
    assert_eq!(git(&srv.join("repo.git"), &["show", "main:big.txt"]), big);
    // And a fetch from a second clone sees it.
    let mut cmd = command(intercept_bin(), &dir);
    ok(cmd
        .current_dir(&dir)
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "git", "clone", "-q", &url, "again"])
        .output()
        .unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("again/README")).unwrap(), "second version\n");
}

#[test]
fn git_clone_commit_push_over_http() {
    clone_commit_push("http");
}

#[test]
fn git_clone_commit_push_over_https() {
    clone_commit_push("https");
}

/// A shell CGI script that shows its meta-variables and body, and answers
/// with the Status, Location and failure cases of RFC 3875.
const SCRIPT: &str = r#"#!/bin/sh
case "$PATH_INFO" in
  /show)
    printf 'Content-Type: text/plain\r\nX-Script: yes\r\n\r\n'
    for v in GATEWAY_INTERFACE REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING CONTENT_TYPE CONTENT_LENGTH SERVER_NAME SERVER_PORT SERVER_PROTOCOL REMOTE_ADDR HTTP_X_CUSTOM HTTPS; do
      eval "printf '%s=%s\n' $v \"\${$v}\""
    done
    printf 'BODY='; cat; echo ;;
  /created) printf 'Status: 201 Created\nContent-Type: text/plain\n\nmade\n' ;;
  /away) printf 'Location: https://elsewhere.example.test/\n\n' ;;
  /inside) printf 'Location: /cgi/show?from=redirect\n\n' ;;
  /garbage) echo 'this is not a header block' ;;
  /fail) echo 'failing on purpose' >&2; exit 3 ;;
  /pause) printf 'Content-Type: text/plain\r\n\r\nfirst\n'; sleep 0.6; echo second ;;
  /stuck) sleep 30 & exit 0 ;;
esac
"#;

fn cgi_env(name: &str) -> Env {
    cgi_env_with(name, "")
}

fn cgi_env_with(name: &str, extra: &str) -> Env {
    let dir = temp_dir(name);
    let script = dir.join("script.cgi");
    std::fs::write(&script, SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    env_file(&dir, &format!("INTERCEPT_ROUTE_CGI=http://cgi.example.test/cgi -> cgi:./script.cgi\n{extra}"))
}

/// The header block reaches the client as soon as the script has written
/// it, and a body written in two parts with a pause between arrives whole,
/// every time.
#[test]
fn cgi_heads_go_out_at_once_and_bodies_whole() {
    need("curl", "curl");
    let env = cgi_env("cgi-pause");
    for _ in 0..8 {
        let out = ok(run_with(&env, &["curl", "-sS", "-w", "|%{time_starttransfer}", "http://cgi.example.test/cgi/pause"]));
        let (body, first_byte) = out.split_once('|').unwrap();
        assert_eq!(body, "first\nsecond\n");
        let first_byte: f64 = first_byte.parse().unwrap();
        assert!(first_byte < 0.4, "the head waited for the body's second part: {first_byte} s");
    }
}

/// A script that leaves a child holding its output gets 504 at the CGI
/// timeout, not when the child ends: the whole process group is killed.
#[test]
fn cgi_timeout_kills_what_the_script_started() {
    need("curl", "curl");
    let env = cgi_env_with("cgi-stuck", "INTERCEPT_CGI_TIMEOUT=1\n");
    let started = std::time::Instant::now();
    let out = ok(run_with(&env, &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://cgi.example.test/cgi/stuck"]));
    assert_eq!(out, "504");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
}

/// A WSGI app that hangs costs its client a 504 at the answer timeout, and
/// a client that leaves frees the worker at once: the route goes on
/// answering either way.
#[test]
fn a_hanging_wsgi_app_does_not_wedge_its_route() {
    need("python3", "python3");
    let dir = temp_dir("wsgi-hang");
    std::fs::write(
        dir.join("hangs.py"),
        "import time\ndef app(environ, start_response):\n    if environ['PATH_INFO'] == '/hang':\n        time.sleep(60)\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'fast']\n",
    )
    .unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_W=http://wsgi.example.test -> wsgi:hangs:app\nINTERCEPT_WSGI_TIMEOUT=2\n");
    let script = r#"
import socket, time, urllib.request, urllib.error
def get(path):
    try:
        return urllib.request.urlopen("http://wsgi.example.test" + path, timeout=30).read().decode()
    except urllib.error.HTTPError as e:
        return str(e.code)
t = time.monotonic()
print(get("/hang"), "in time" if time.monotonic() - t < 6 else "late")
print(get("/fast"))
s = socket.create_connection(("wsgi.example.test", 80))
s.sendall(b"GET /hang HTTP/1.1\r\nHost: wsgi.example.test\r\n\r\n")
time.sleep(0.3)
s.close()
t = time.monotonic()
print(get("/fast"), "at once" if time.monotonic() - t < 1.5 else "late")
"#;
    let out = run_with(&env, &["python3", "-c", script]);
    assert_eq!(ok(out), "504 in time\nfast\nfast at once\n");
}

#[test]
fn cgi_meta_variables_and_body() {
    need("curl", "curl");
    let env = cgi_env("cgi-vars");
    let out = ok(run_with(
        &env,
        &[
            "curl",
            "-sS",
            "-i",
            "-H",
            "X-Custom: hello",
            "-H",
            "Content-Type: text/x-test",
            "--data-binary",
            "the body",
            "http://cgi.example.test/cgi/show?a=1&b=2",
        ],
    ));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("X-Script: yes\r\n"), "{out}");
    let body = out.split_once("\r\n\r\n").unwrap().1;
    assert_eq!(
        body,
        "GATEWAY_INTERFACE=CGI/1.1\nREQUEST_METHOD=POST\nSCRIPT_NAME=/cgi\nPATH_INFO=/show\nQUERY_STRING=a=1&b=2\nCONTENT_TYPE=text/x-test\nCONTENT_LENGTH=8\nSERVER_NAME=cgi.example.test\nSERVER_PORT=80\nSERVER_PROTOCOL=HTTP/1.1\nREMOTE_ADDR=127.0.0.1\nHTTP_X_CUSTOM=hello\nHTTPS=\nBODY=the body\n"
    );
}

#[test]
fn cgi_status_location_and_failures() {
    need("curl", "curl");
    let env = cgi_env("cgi-status");
    let code = |path: &str| {
        ok(run_with(
            &env,
            &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("http://cgi.example.test/cgi{path}")],
        ))
    };
    assert_eq!(code("/created"), "201 ");
    assert_eq!(code("/away"), "302 https://elsewhere.example.test/");
    assert_eq!(code("/garbage"), "502 ");
    assert_eq!(code("/fail"), "502 ");
    let out = ok(run_with(&env, &["curl", "-sS", "http://cgi.example.test/cgi/inside"]));
    assert!(
        out.contains("REQUEST_METHOD=GET\n") && out.contains("PATH_INFO=/show\n") && out.contains("QUERY_STRING=from=redirect\n"),
        "{out}"
    );
    // The program's stderr is the host's stderr.
    let out = run_with(&env, &["curl", "-sS", "http://cgi.example.test/cgi/fail"]);
    assert!(stderr(&out).contains("failing on purpose"), "{}", stderr(&out));
}

#[test]
fn bad_cgi_specs_are_rejected_with_file_and_line() {
    let dir = temp_dir("cgi-bad");
    let env = env_file(&dir, "# x\nINTERCEPT_ROUTE_CGI=http://cgi.example.test -> cgi:./missing.cgi\n");
    check_refuses(&env, 2, "cgi program `./missing.cgi` not found");
}

/// A real HTTP server on a loopback port, answering `real:<path>`.
fn real_tcp_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || answer_http(s));
        }
    });
    port
}

fn answer_http<S: std::io::Read + std::io::Write>(mut s: S) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let path = text.split_whitespace().nth(1).unwrap_or("?").to_string();
    let body = format!("real:{path}");
    let _ = s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
}

#[test]
fn forward_relays_to_a_real_server_without_looping_back() {
    need("curl", "curl");
    let port = real_tcp_server();
    let dir = temp_dir("forward");
    // The target address is itself routed: a forward that went through the
    // shim's connect would get "would loop" instead of the real server.
    let env = env_file(
        &dir,
        &format!(
            "INTERCEPT_ROUTE_FRONT=http://front.example.test -> forward:127.0.0.1:{port}\nINTERCEPT_ROUTE_LOOP=http://127.0.0.1:{port} -> static:200 would loop\n"
        ),
    );
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://front.example.test/some/path"])), "real:/some/path");
    assert_eq!(ok(run_with(&env, &["curl", "-sS", &format!("http://127.0.0.1:{port}/")])), "would loop");
}

#[test]
fn forward_to_a_unix_socket_and_502_when_unreachable() {
    need("curl", "curl");
    let dir = temp_dir("forward-unix");
    let socket = dir.join("app.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || answer_http(s));
        }
    });
    let env = env_file(
        &dir,
        "INTERCEPT_ROUTE_UNIX=http://unix.example.test -> forward:unix:app.sock\nINTERCEPT_ROUTE_DOWN=http://down.example.test -> forward:unix:nobody-listens.sock\n",
    );
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://unix.example.test/u"])), "real:/u");
    let out = run_with(&env, &["curl", "-sS", "-w", "\n%{http_code}", "http://down.example.test/"]);
    let text = stdout(&out);
    assert!(text.starts_with("cannot reach unix:") && text.ends_with("\n502"), "{text}");
    assert!(stderr(&out).contains("intercept: forward to unix:"), "{}", stderr(&out));
}

#[test]
fn bad_forward_routes_are_rejected() {
    let dir = temp_dir("forward-bad");
    for (text, what) in [
        ("INTERCEPT_ROUTE_F=http://f.example.test -> forward:nohost\n", "expected forward:HOST:PORT"),
        ("INTERCEPT_ROUTE_F=http://f.example.test/api -> forward:127.0.0.1:9\n", "takes no path"),
        (
            "INTERCEPT_ROUTE_E=http://f.example.test/x -> echo\nINTERCEPT_ROUTE_F=http://f.example.test -> forward:127.0.0.1:9\n",
            "cannot share",
        ),
    ] {
        let env = env_file(&dir, text);
        let out = intercept(&["check", "--env-file", env.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(stderr(&out).starts_with(&format!("{}:", env.display())) && stderr(&out).contains(what), "{}", stderr(&out));
    }
}

fn build_c_app(dir: &Path) -> PathBuf {
    need("cc", "gcc");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = dir.join("libhello.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-Wall", "-Werror", "-I"])
        .arg(root.join("include"))
        .arg("-o")
        .arg(&lib)
        .arg(root.join("examples/apps/hello.c"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    lib
}

#[test]
fn a_c_dylib_app() {
    need("curl", "curl");
    let dir = temp_dir("dylib-c");
    build_c_app(&dir);
    let env = env_file(
        &dir,
        "INTERCEPT_ROUTE_HELLO=http://hello.example.test/c -> dylib:./libhello.so\nINTERCEPT_ROUTE_TEA=http://tea.example.test -> dylib:./libhello.so#teapot_create\n",
    );
    let out = ok(run_with(
        &env,
        &["curl", "-sS", "-i", "-H", "X-Greeting: hi there", "--data-binary", "body bytes", "http://hello.example.test/c/x/y?q=1"],
    ));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("X-App: hello.c\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\nhello from C: POST /c/x/y?q=1 (mounted at \"/c\", path_info \"/x/y\", query \"q=1\")\nhi there\nbody bytes"),
        "{out}"
    );
    let out = ok(run_with(&env, &["curl", "-sS", "-w", "%{http_code}", "http://tea.example.test/"]));
    assert_eq!(out, "short and stout\n418");
}

#[test]
fn a_rust_dylib_app_and_its_panics() {
    need("curl", "curl");
    let lib = intercept_bin().with_file_name("librust_hello_app.so");
    assert!(lib.is_file(), "{} is missing: `make build` builds it", lib.display());
    let dir = temp_dir("dylib-rust");
    let env = env_file(&dir, &format!("INTERCEPT_ROUTE_HELLO=http://rust.example.test -> dylib:{}\n", lib.display()));
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "--data-binary", "abc", "http://rust.example.test/r"]));
    assert!(out.contains("X-App: rust-hello\r\n") && out.ends_with("\r\n\r\nhello from Rust: POST /r body=abc\n"), "{out}");
    // A panic inside the app is a 500, and the process goes on serving.
    let out = ok(run_with(
        &env,
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} ",
            "http://rust.example.test/panic",
            "http://rust.example.test/after",
        ],
    ));
    assert_eq!(out, "500 200 ");
}

#[test]
fn bad_dylib_specs_are_rejected() {
    let dir = temp_dir("dylib-bad");
    let env = env_file(&dir, "INTERCEPT_ROUTE_D=http://d.example.test -> dylib:./nope.so\n");
    check_refuses(&env, 1, "no library at");
    // A library without the symbol fails its requests with 500, not the host.
    need("curl", "curl");
    build_c_app(&dir);
    let env = env_file(&dir, "INTERCEPT_ROUTE_D=http://d.example.test -> dylib:./libhello.so#no_such_symbol\n");
    let out = run_with(&env, &["curl", "-sS", "-w", "\n%{http_code}", "http://d.example.test/"]);
    assert!(stdout(&out).ends_with("\n500"), "{}", stdout(&out));
    assert!(stderr(&out).contains("has no `no_such_symbol`"), "{}", stderr(&out));
}

/// The runtime API from Python through ctypes: a Python function handles a
/// route added from inside the process; removing it lets the next request
/// pass through to real DNS, where the name does not exist.
#[test]
fn the_runtime_api_from_python_ctypes() {
    need("python3", "python3");
    let dir = temp_dir("runtime-api");
    let env = env_file(&dir, "INTERCEPT_LOG=error\n");
    let script = format!(
        r#"
import ctypes, urllib.request, urllib.error
lib = ctypes.CDLL("{shim}")

class Header(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]
READ = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
class Request(ctypes.Structure):
    _fields_ = [("method", ctypes.c_char_p), ("scheme", ctypes.c_char_p), ("host", ctypes.c_char_p), ("port", ctypes.c_uint16),
                ("target", ctypes.c_char_p), ("script_name", ctypes.c_char_p), ("path_info", ctypes.c_char_p), ("query", ctypes.c_char_p),
                ("headers", ctypes.POINTER(Header)), ("header_count", ctypes.c_size_t), ("read_body", READ), ("body", ctypes.c_void_p)]
STATUS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint16)
HEADER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
WRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)
class Response(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("set_status", STATUS), ("add_header", HEADER), ("write", WRITE)]
HANDLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(Request), ctypes.POINTER(Response))
class App(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("state", ctypes.c_void_p), ("handle", HANDLE), ("destroy", ctypes.c_void_p)]
CREATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(App))

created = []
@HANDLE
def handle(state, req, resp):
    r, out = req.contents, resp.contents
    text = f"python saw {{r.method.decode()}} {{r.target.decode()}} on {{r.host.decode()}}:{{r.port}}".encode()
    out.set_status(out.ctx, 202)
    out.add_header(out.ctx, b"X-From", b"ctypes")
    out.write(out.ctx, text, len(text))
    return 0
@CREATE
def create(app):
    created.append(1)
    app.contents.abi_version = 1
    app.contents.handle = handle
    return 0

lib.intercept_add_app.argtypes = [ctypes.c_char_p, CREATE]
lib.intercept_add_route.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
lib.intercept_remove_routes.argtypes = [ctypes.c_char_p, ctypes.c_uint16]
lib.intercept_last_error.restype = ctypes.c_char_p
print("preloaded", lib.intercept_is_preloaded())
assert lib.intercept_add_app(b"http://py.example.test:8080", create) == 0
assert lib.intercept_add_route(b"http://spec.example.test", b"static:200 added at run time") == 0
print(lib.intercept_add_route(b"http://bad.example.test", b"static:999"), lib.intercept_last_error().decode())
for _ in range(2):
    r = urllib.request.urlopen("http://py.example.test:8080/hello?x=1")
    print(r.status, r.headers["X-From"], r.read().decode())
print(urllib.request.urlopen("http://spec.example.test/").read().decode())
print("created", len(created))
print("removed", lib.intercept_remove_routes(b"py.example.test", 8080), lib.intercept_remove_routes(b"py.example.test", 8080))
try:
    urllib.request.urlopen("http://py.example.test:8080/hello", timeout=5)
    print("still intercepted")
except urllib.error.URLError as e:
    print("passes through:", type(e.reason).__name__)
"#,
        shim = shim().display()
    );
    let out = ok(run_with(&env, &["python3", "-c", &script]));
    assert_eq!(
        out,
        "preloaded 1\n-1 bad status code `999`: expected a number from 100 to 599\n202 ctypes python saw GET /hello?x=1 on py.example.test:8080\n202 ctypes python saw GET /hello?x=1 on py.example.test:8080\nadded at run time\ncreated 1\nremoved 1 0\npasses through: gaierror\n"
    );
}
