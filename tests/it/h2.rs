//! HTTP/2 on every route (h2c with prior knowledge on http, ALPN on
//! https), WebSocket echo, and relays: an https `forward:` ends TLS and
//! relays plaintext, a `tunnel:` relays TLS as it comes. Clients: curl,
//! Python httpx and websockets, Node's http2 module and the `ws` package.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::*;

/// The Node packages `make test` installs, for NODE_PATH; fails loudly when
/// `package` is not there.
fn node_modules(package: &str) -> PathBuf {
    need("node", "nodejs");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/node/node_modules");
    assert!(dir.join(package).is_dir(), "the Node package `{package}` is missing in {}: `make test` installs it", dir.display());
    dir
}

/// `intercept run` with `env_text` as the env file and `vars` set; the
/// journal's text comes with the output.
fn run_in(name: &str, env_text: &str, vars: &[(&str, &Path)], cmd: &[&str]) -> (Output, String) {
    let dir = temp_dir(name);
    let env = env_file(&dir, env_text);
    let mut args = vec!["run", "--env-file", env.to_str().unwrap(), "--journal", "journal.jsonl", "--"];
    args.extend_from_slice(cmd);
    let mut command = command(intercept_bin(), &dir);
    command.current_dir(&*dir).args(args);
    for (key, value) in vars {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    (out, std::fs::read_to_string(dir.join("journal.jsonl")).unwrap_or_default())
}

const ROUTES: &str = "INTERCEPT_ROUTE_PLAIN=http://h2.test -> static:200 plain answer
INTERCEPT_ROUTE_ECHO=http://h2.test/echo -> echo
INTERCEPT_ROUTE_FILES=http://h2.test/files -> files:site
INTERCEPT_ROUTE_SPLAIN=https://h2s.test -> static:200 plain answer
INTERCEPT_ROUTE_SECHO=https://h2s.test/echo -> echo
INTERCEPT_ROUTE_SFILES=https://h2s.test/files -> files:site
";

/// An env file with [`ROUTES`] in a test directory of its own, with the
/// `site/` its files routes serve.
fn routes_env(name: &str) -> Env {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("site")).unwrap();
    env_file(&dir, ROUTES)
}

#[test]
fn curl_speaks_http2_to_static_echo_and_files_routes_over_http_and_https() {
    need("curl", "curl");
    let env = routes_env("h2-curl");
    std::fs::write(env.parent().unwrap().join("site/page.txt"), "a file over h2\n").unwrap();
    let script = r#"
for base in "--http2-prior-knowledge http://h2.test" "--http2 https://h2s.test"; do
  set -- $base
  curl -sS "$1" -w ' [%{http_version}]\n' "$2/"
  curl -sS "$1" -w ' [%{http_version}]\n' -d 'the posted body' "$2/echo/x?q=1" | grep -vE '^\{|"(scheme|host|port|script_name|headers)"'
  curl -sS "$1" -w ' [%{http_version}]\n' "$2/files/page.txt"
  curl -sS "$1" -o /dev/null -w '%{http_code} [%{http_version}]\n' "$2/files/missing"
done
"#;
    let out = ok(run_with(&env, &["sh", "-c", script]));
    let expected = r#"plain answer [2]
  "method": "POST",
  "path_info": "/x",
  "query": "q=1",
  "body": "the posted body"
}
 [2]
a file over h2
 [2]
404 [2]
"#;
    assert_eq!(out, expected.repeat(2), "{out}");
}

#[test]
fn journal_lines_of_http2_requests_say_so() {
    need("curl", "curl");
    let (out, journal) = run_in(
        "h2-journal",
        "INTERCEPT_ROUTE_A=http://h2.test -> static:201 made\n",
        &[],
        &["sh", "-c", "curl -sS --http2-prior-knowledge http://h2.test/a; curl -sS --http1.1 http://h2.test/b"],
    );
    assert_eq!(ok(out), "mademade");
    let lines: Vec<serde_json::Value> = journal.lines().map(json).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["url"].as_str(), lines[0]["status"].as_u64(), lines[0]["http"].as_str()),
        (Some("http://h2.test:80/a"), Some(201), Some("2"))
    );
    assert_eq!((lines[1]["url"].as_str(), lines[1]["http"].as_str()), (Some("http://h2.test:80/b"), None));
}

#[test]
fn python_httpx_uses_http2_over_https_and_with_prior_knowledge() {
    need_python_module("httpx", "httpx");
    need_python_module("h2", "h2");
    let env = routes_env("h2-httpx");
    let script = r#"
import httpx
with httpx.Client(http2=True) as c:
    r = c.post("https://h2s.test/echo/py", content=b"x" * 100000)
    print(r.http_version, r.status_code, len(r.json()["body"]), r.json()["path_info"])
with httpx.Client(http1=False, http2=True) as c:
    for i in range(3):
        r = c.get(f"http://h2.test/{i}")
        print(r.http_version, r.status_code, r.text)
"#;
    let out = ok(run_with(&env, &["python3", "-c", script]));
    assert_eq!(out, "HTTP/2 200 100000 /py\nHTTP/2 200 plain answer\nHTTP/2 200 plain answer\nHTTP/2 200 plain answer\n");
}

#[test]
fn node_http2_runs_fifty_concurrent_streams_on_one_session() {
    need("node", "nodejs");
    let env = routes_env("h2-node");
    let script = r#"
const http2 = require('http2');
const session = http2.connect('https://h2s.test');
const lines = [];
let done = 0, connects = 0;
session.on('connect', () => connects++);
for (let i = 0; i < 50; i++) {
  const req = session.request({ ':method': 'POST', ':path': `/echo/${i}?n=${i}` });
  let body = '', status = 0;
  req.setEncoding('utf8');
  req.on('response', (h) => { status = h[':status']; });
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const v = JSON.parse(body);
    lines[i] = `${status} ${v.path_info} ${v.query} ${v.body}`;
    if (++done === 50) {
      console.log(lines.join('\n'));
      console.log(`sessions: ${connects}`);
      session.close();
    }
  });
  req.end(`stream ${i} `.repeat(1000));
}
"#;
    let out = ok(run_with(&env, &["node", "-e", script]));
    let expected: String = (0..50).map(|i| format!("200 /{i} n={i} {}\n", format!("stream {i} ").repeat(1000))).collect();
    assert_eq!(out, format!("{expected}sessions: 1\n"));
}

#[test]
fn a_request_with_trailers_reaches_echo_with_its_body_intact() {
    need("node", "nodejs");
    let env = routes_env("h2-trailers");
    let script = r#"
const http2 = require('http2');
const session = http2.connect('http://h2.test');
const req = session.request({ ':method': 'POST', ':path': '/echo/t' }, { waitForTrailers: true });
req.on('wantTrailers', () => req.sendTrailers({ 'x-checksum': 'c0ffee' }));
let body = '';
req.setEncoding('utf8');
req.on('data', (d) => { body += d; });
req.on('end', () => { console.log(JSON.parse(body).body); session.close(); });
req.write('first part, ');
setTimeout(() => req.end('second part'), 50);
"#;
    assert_eq!(ok(run_with(&env, &["node", "-e", script])), "first part, second part\n");
}

const WS_ROUTES: &str = "INTERCEPT_ROUTE_WS=http://ws.test -> echo\nINTERCEPT_ROUTE_WSS=https://wss.test -> echo\n";

#[test]
fn python_websockets_echo_over_ws_and_wss() {
    need_python_module("websockets", "websockets");
    let script = r#"
from websockets.sync.client import connect
for url in ("ws://ws.test/chat", "wss://wss.test/chat"):
    with connect(url) as ws:
        ws.send("hello " + url)
        print(ws.recv())
        ws.send(bytes([0, 1, 2, 255]))
        print(list(ws.recv()))
        ws.ping(b"are you there").wait(5)
        print("pong")
"#;
    let (out, _) = run_in("ws-python", WS_ROUTES, &[], &["python3", "-c", script]);
    assert_eq!(ok(out), "hello ws://ws.test/chat\n[0, 1, 2, 255]\npong\nhello wss://wss.test/chat\n[0, 1, 2, 255]\npong\n");
}

#[test]
fn node_ws_echo_over_ws_and_wss() {
    let modules = node_modules("ws");
    let script = r#"
const WebSocket = require('ws');
function talk(url) {
  return new Promise((done) => {
    const ws = new WebSocket(url);
    const got = [];
    ws.on('open', () => { ws.send('text from node'); ws.send(Buffer.from([9, 8, 7])); });
    ws.on('message', (data, binary) => {
      got.push(binary ? `binary ${[...data].join(',')}` : `text ${data}`);
      if (got.length === 2) ws.close(1000, 'bye');
    });
    ws.on('close', (code) => { console.log(`${url}: ${got.join(' | ')} | closed ${code}`); done(); });
  });
}
talk('ws://ws.test/a').then(() => talk('wss://wss.test/b'));
"#;
    let (out, _) = run_in("ws-node", WS_ROUTES, &[("NODE_PATH", &modules)], &["node", "-e", script]);
    assert_eq!(
        ok(out),
        "ws://ws.test/a: text text from node | binary 9,8,7 | closed 1000\nwss://wss.test/b: text text from node | binary 9,8,7 | closed 1000\n"
    );
}

#[test]
fn an_https_forward_route_ends_tls_and_relays_plaintext() {
    need("curl", "curl");
    let server = Server::start(None);
    let env_text = format!(
        "INTERCEPT_ROUTE_FWD=https://api.test -> forward:127.0.0.1:{}\nINTERCEPT_ROUTE_DOWN=https://down.test -> forward:127.0.0.1:1\n",
        server.port
    );
    let script = "curl -sS -w ' %{http_code} %{http_version}\\n' 'https://api.test/items?b=2&a=1'; curl -sS -w ' %{http_code}\\n' https://down.test/";
    let (out, _) = run_in("forward-https", &env_text, &[], &["sh", "-c", script]);
    let out = ok(out);
    let (first, second) = out.split_once('\n').unwrap();
    // The local server speaks plain HTTP/1.1: the client's TLS ended here.
    assert!(first.starts_with(r#"{"items": [1, 2], "query": [["a", "1"], ["b", "2"]]"#) && first.ends_with(" 200 1.1"), "{out}");
    assert!(second.starts_with("cannot reach 127.0.0.1:1: ") && second.ends_with("\n 502\n"), "{out}");
}

#[test]
fn a_tunnel_route_relays_tls_to_a_real_tls_server() {
    need("curl", "curl");
    let dir = temp_dir("tunnel");
    let (ca, leaf) = certificates(&dir);
    let server = Server::start(Some(&leaf));
    // The client reaches a port nobody listens on; the tunnel carries its
    // TLS to the server, whose certificate (for localhost, from the test's
    // own CA) it verifies.
    let env_text = format!("INTERCEPT_ROUTE_TUN=https://localhost:1 -> tunnel:127.0.0.1:{}\n", server.port);
    let (out, _) = run_in(
        "tunnel-run",
        &env_text,
        &[("SSL_CERT_FILE", &ca)],
        &["curl", "-sS", "-w", " %{http_code}", "https://localhost:1/items?x=1"],
    );
    let out = ok(out);
    assert!(out.starts_with(r#"{"items": [1, 2], "query": [["x", "1"]]"#) && out.ends_with(" 200"), "{out}");
}

#[test]
fn forward_routes_carry_websockets_both_ways_over_ws_and_wss() {
    need_python_module("websockets", "websockets");
    let server = Server::fixture("ws_server.py", &[]);
    let env_text = format!(
        "INTERCEPT_ROUTE_PLAIN=http://up.test -> forward:127.0.0.1:{0}\nINTERCEPT_ROUTE_SECURE=https://up.test -> forward:127.0.0.1:{0}\n",
        server.port
    );
    let script = r#"
from websockets.sync.client import connect
for url in ("ws://up.test/", "wss://up.test/"):
    with connect(url) as ws:
        ws.send("text over " + url.split(":")[0])
        print(ws.recv())
        ws.send(b"\x00bytes")
        print(ws.recv())
# Many short connections in a row: this client reads on one thread while
# it writes on another, which loses its request if a TLS session ticket
# arrives meanwhile (we send none).
answers = 0
for _ in range(100):
    for url in ("ws://up.test/", "wss://up.test/"):
        with connect(url, open_timeout=5) as ws:
            ws.send("x")
            answers += ws.recv() == "upstream: x"
print(answers)
"#;
    let (out, _) = run_in("ws-forward", &env_text, &[], &["python3", "-c", script]);
    assert_eq!(ok(out), "upstream: text over ws\nb'upstream: \\x00bytes'\nupstream: text over wss\nb'upstream: \\x00bytes'\n200\n");
}

#[test]
fn sixteen_60_mb_streams_to_static_are_not_held() {
    need("h2load", "nghttp2-client");
    need("python3", "python3");
    let dir = temp_dir("h2-uploads");
    let data = dir.join("60mb");
    std::fs::File::create(&data).unwrap().set_len(60_000_000).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_H=http://h.example.test -> static:200 ok\n");
    // h2load under the shim; its peak RSS (the host's) read when it ends.
    let script = format!(
        "import resource, subprocess\n\
         out = subprocess.run(['h2load', '-c1', '-m16', '-n16', '-d', '{}', 'http://h.example.test/'], capture_output=True, text=True).stdout\n\
         print([l for l in out.splitlines() if l.startswith('status codes')][0])\n\
         print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 200 * 1024)\n",
        data.display()
    );
    assert_eq!(ok(run_with(&env, &["python3", "-c", &script])), "status codes: 16 2xx, 0 3xx, 0 4xx, 0 5xx\nTrue\n");
}
