//! The dispatcher's HTTP/1.1 through the shim, driven by real clients:
//! HTTP/1.0, 100-continue, chunked uploads, keep-alive with HEAD, pipelining,
//! oversized heads, idle clients, large streamed responses and the journal.

use crate::common::*;
use std::process::Command;

fn setup(name: &str, extra: &str) -> (TempDir, Env) {
    let dir = temp_dir(name);
    let env = env_file(
        &dir,
        &format!(
            "INTERCEPT_ROUTE_ECHO=http://h.example.test/echo -> echo\nINTERCEPT_ROUTE_ROOT=http://h.example.test -> static:200 root\n{extra}"
        ),
    );
    (dir, env)
}

#[test]
fn curl_http10() {
    need("curl", "curl");
    let (_, env) = setup("http10", "");
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "--http1.0", "http://h.example.test/"]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n") && out.ends_with("\r\n\r\nroot"), "{out}");
}

#[test]
fn expect_100_continue_upload_is_not_delayed() {
    need("curl", "curl");
    let (dir, env) = setup("expect", "");
    let upload = dir.join("upload.txt");
    let data: String = (0..2 * 1024 * 1024).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    std::fs::write(&upload, &data).unwrap();
    let at = format!("@{}", upload.display());
    let out = run_with(
        &env,
        &[
            "curl",
            "-sS",
            "-v",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &at,
            "-o",
            "-",
            "-w",
            "\n%{time_total}",
            "http://h.example.test/echo/up",
        ],
    );
    let text = ok(out.clone());
    assert!(stderr(&out).contains("< HTTP/1.1 100 Continue"), "{}", stderr(&out));
    let (json_text, seconds) = text.rsplit_once('\n').unwrap();
    assert_eq!(json(json_text)["body"].as_str().map(str::len), Some(data.len()));
    assert!(json(json_text)["body"] == data.as_str());
    // curl waits a full second for a 100 that never comes.
    let seconds: f64 = seconds.parse().unwrap();
    assert!(seconds < 0.9, "upload took {seconds} s");
}

#[test]
fn chunked_upload() {
    need("curl", "curl");
    let (dir, env) = setup("chunked", "");
    let upload = dir.join("upload.txt");
    let data = "chunk of text\n".repeat(20_000);
    std::fs::write(&upload, &data).unwrap();
    let at = format!("@{}", upload.display());
    let out = ok(run_with(&env, &["curl", "-sS", "-H", "Transfer-Encoding: chunked", "--data-binary", &at, "http://h.example.test/echo"]));
    let v = json(&out);
    assert!(v["headers"].as_array().unwrap().iter().any(|h| h[0] == "Transfer-Encoding" && h[1] == "chunked"));
    assert!(v["body"] == data.as_str());
}

#[test]
fn head_then_get_on_one_python_connection() {
    need("python3", "python3");
    let (_, env) = setup("head", "");
    let script = r#"
import http.client
c = http.client.HTTPConnection("h.example.test")
c.request("HEAD", "/")
r = c.getresponse()
print(r.status, r.getheader("Content-Length"), repr(r.read()))
sock = c.sock
c.request("GET", "/")
r = c.getresponse()
print(r.status, repr(r.read()), c.sock is sock)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "200 4 b''\n200 b'root' True\n");
}

#[test]
fn two_pipelined_requests_on_a_raw_socket() {
    need("python3", "python3");
    let (_, env) = setup("pipeline", "");
    let script = r#"
import socket
s = socket.create_connection(("h.example.test", 80), timeout=10)
s.sendall(b"GET /echo/first HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
text = data.decode()
print(text.count("HTTP/1.1 200 OK"), text.index('"/first"') < text.rindex("HTTP/1.1 200 OK"), text.endswith("\r\n\r\nroot"))
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "2 True True\n");
}

/// A panic on the event thread (our bug, forced here by a test switch)
/// costs no connection: the one it was serving moves to a thread of its
/// own, and so does every later one.
#[test]
fn a_panic_on_the_event_thread_leaves_later_connections_served() {
    need("curl", "curl");
    let (dir, env) = setup("event-panic", "");
    let mut cmd = command(intercept_bin(), &dir);
    let url = "http://h.example.test/";
    let out = cmd
        .env("_INTERCEPT_TEST_PANIC", "event-thread")
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "curl", "-sS", "-H", "Connection: close", url, url, url])
        .output()
        .unwrap();
    assert_eq!(ok(out.clone()), "rootrootroot");
    assert!(stderr(&out).contains("internal error on the event thread; its connections move to threads"), "{}", stderr(&out));
}

/// Connections to in-memory apps start on the event thread and move to a
/// thread of their own for a chunked body, a request cut by a read, or a
/// client reading slower than it asks: the answers stay whole and in order.
#[test]
fn pipelines_keep_their_order_when_the_connection_changes_threads() {
    need("python3", "python3");
    let big = "0123456789".repeat(10_000);
    let (_, env) = setup("handoff", &format!("INTERCEPT_ROUTE_BIG=http://big.example.test -> static:200 {big}\n"));
    let script = r#"
import re, socket, threading, time
def exchange(requests, expect, wait=0, host="h.example.test"):
    s = socket.create_connection((host, 80), timeout=20)
    threading.Thread(target=s.sendall, args=(requests,)).start()
    time.sleep(wait)
    data = b""
    while data.count(b"HTTP/1.1 200 OK") < expect or not data.endswith((b"}\n", b"789")):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode()
mixed = exchange(b"GET /echo/a HTTP/1.1\r\n\r\nPOST /echo/b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\nGET /echo/c HTTP/1.1\r\n\r\n", 3)
print(re.findall(r'"path_info": "(/.)"', mixed), re.findall(r'"body": "(\w*)"', mixed))
# 10,000 requests in one stream: the event thread's reads end inside a
# request now and then.
many = exchange(b"".join(b"GET /echo/%d HTTP/1.1\r\n\r\n" % i for i in range(10000)), 10000)
seen = [int(p) for p in re.findall(r'"path_info": "/(\d+)"', many)]
print(seen == list(range(10000)))
# 3 MB of answers to 30 small requests, none read for half a second: more
# than the socket holds, so the event thread cannot finish its writes.
big = exchange(b"GET / HTTP/1.1\r\n\r\n" * 30, 30, wait=0.5, host="big.example.test")
bodies = [part.split("\r\n\r\n", 1)[1] for part in big.split("HTTP/1.1 200 OK")[1:]]
print(len(bodies), all(b == "0123456789" * 10000 for b in bodies))
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "['/a', '/b', '/c'] ['', 'xyz', '']\nTrue\n30 True\n");
}

#[test]
fn oversized_head_gets_431() {
    need("curl", "curl");
    let (dir, env) = setup("431", "");
    let headers = dir.join("headers.txt");
    let line = format!("X-Filler: {}\n", "f".repeat(1000));
    std::fs::write(&headers, line.repeat(200)).unwrap();
    let at = format!("@{}", headers.display());
    let out = ok(run_with(&env, &["curl", "-sS", "-H", &at, "-o", "/dev/null", "-w", "%{http_code}", "http://h.example.test/"]));
    assert_eq!(out, "431");
}

#[test]
fn a_quiet_client_is_closed_after_the_idle_timeout() {
    need("python3", "python3");
    let (_, env) = setup("idle", "INTERCEPT_IDLE_TIMEOUT=0.3\n");
    let script = r#"
import socket, time
s = socket.create_connection(("h.example.test", 80), timeout=20)
start = time.monotonic()
print(repr(s.recv(100)), time.monotonic() - start < 10)
s = socket.create_connection(("h.example.test", 80), timeout=20)
s.sendall(b"GET / HTTP/1.1\r\nHost: h")
print(s.recv(100).split(b"\r\n")[0])
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "b'' True\nb'HTTP/1.1 408 Request Timeout'\n");
}

#[test]
fn a_client_that_stops_reading_is_let_go_after_the_idle_timeout() {
    need("python3", "python3");
    let (dir, _) = setup("stalled", "");
    let big = dir.join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(64 << 20).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_BIG=http://big.example.test -> static:200 @big.bin\nINTERCEPT_IDLE_TIMEOUT=0.5\n");
    // The client asks, reads nothing for three seconds, then reads what
    // there is: a part of the 64 MiB, then the end.
    let script = r#"
import socket, time
s = socket.create_connection(("big.example.test", 80), timeout=20)
s.sendall(b"GET / HTTP/1.1\r\nHost: big.example.test\r\n\r\n")
time.sleep(3)
got = 0
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got += len(b)
print(0 < got < 32 << 20)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "True\n");
}

#[test]
fn a_256_mib_upload_to_stubs_is_refused_without_being_held() {
    need("python3", "python3");
    let dir = temp_dir("stubs-upload");
    std::fs::create_dir_all(dir.join("stubs/mappings")).unwrap();
    let mapping = r#"{"request": {"method": "POST", "urlPath": "/up"}, "response": {"status": 200, "body": "ok"}}"#;
    std::fs::write(dir.join("stubs/mappings/up.json"), mapping).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_UP=http://up.example.test -> stubs:stubs\n");
    // The client sends 256 MiB it never holds, then reads the answer; its
    // peak RSS is the host's, server included.
    let script = r#"
import resource, socket
s = socket.create_connection(("up.example.test", 80))
size = 256 << 20
s.sendall(b"POST /up HTTP/1.1\r\nHost: up.example.test\r\nContent-Length: %d\r\n\r\n" % size)
chunk = bytes(1 << 20)
try:
    for _ in range(size >> 20):
        s.sendall(chunk)
except OSError:
    pass
print(s.recv(100).split(b"\r\n")[0].decode(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 200 * 1024)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "HTTP/1.1 413 Content Too Large True\n");
}

/// The same for a process's first connection, which starts no event thread
/// until its client waits: in a blocking `recv`, and in `select`.
#[test]
fn a_quiet_first_connection_is_closed_while_its_client_waits() {
    need("python3", "python3");
    let (_, env) = setup("idle-wait", "INTERCEPT_IDLE_TIMEOUT=0.3\n");
    let script = r#"
import select, socket, sys, time
start = time.monotonic()
if sys.argv[1] == "recv":
    s = socket.create_connection(("h.example.test", 80))
    got = s.recv(100)
else:
    s = socket.create_connection(("h.example.test", 80))
    ready, _, _ = select.select([s], [], [], 20)
    got = s.recv(100) if ready else b"no answer"
print(repr(got), time.monotonic() - start < 10)
"#;
    for how in ["recv", "select"] {
        assert_eq!(ok(run_with(&env, &["python3", "-c", script, how])), "b'' True\n", "{how}");
    }
}

#[test]
fn a_256_mib_response_streams_byte_identical_in_little_memory() {
    need("curl", "curl");
    need("sha256sum", "coreutils");
    need("python3", "python3");
    let dir = temp_dir("stream");
    let big = dir.join("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..(256 << 20) / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    let env = env_file(&dir, "INTERCEPT_ROUTE_BIG=http://big.example.test -> static:200 @big.bin\n");
    let got = dir.join("got.bin");
    // Peak RSS of the one child (intercept execs curl): ru_maxrss in KiB.
    let measure = "import resource, subprocess, sys\nr = subprocess.run(sys.argv[1:])\nprint(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)";
    let mut cmd = command("python3", &dir);
    let out = ok(cmd
        .args(["-c", measure, intercept_bin().to_str().unwrap(), "run", "--env-file", env.to_str().unwrap(), "--"])
        .args(["curl", "-sS", "-o", got.to_str().unwrap(), "http://big.example.test/"])
        .output()
        .unwrap());
    let (code, rss_kib) = out.trim().split_once(' ').unwrap();
    assert_eq!(code, "0");
    let sums = ok(Command::new("sha256sum").arg(&big).arg(&got).output().unwrap());
    let sums: Vec<&str> = sums.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(sums[0], sums[1], "sha256 differs");
    assert_eq!(std::fs::metadata(&got).unwrap().len(), 256 << 20);
    let rss_kib: u64 = rss_kib.parse().unwrap();
    assert!(rss_kib < 64 * 1024, "peak RSS {rss_kib} KiB");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_journal_has_one_whole_line_per_request_from_8_processes_of_4_threads() {
    need("python3", "python3");
    let (dir, env) = setup("journal", "");
    let journal = dir.join("journal.jsonl");
    let worker = r#"
import http.client, threading, sys
def work(t):
    c = http.client.HTTPConnection("h.example.test")
    for i in range(25):
        c.request("POST", f"/echo/p{sys.argv[1]}/t{t}/{i}", body=b"x" * (i * 100))
        assert c.getresponse().read()
threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
"#;
    let script = format!("for p in 1 2 3 4 5 6 7 8; do python3 -c '{worker}' $p & done; wait");
    ok(intercept(&["run", "--env-file", env.to_str().unwrap(), "--journal", journal.to_str().unwrap(), "--", "sh", "-c", &script]));
    let text = std::fs::read_to_string(&journal).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(json).collect();
    assert_eq!(lines.len(), 8 * 4 * 25);
    let mut urls: Vec<&str> = lines.iter().map(|l| l["url"].as_str().unwrap()).collect();
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 8 * 4 * 25, "every request exactly once");
    let pids: std::collections::HashSet<u64> = lines.iter().map(|l| l["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 8);
    for l in &lines {
        assert_eq!(
            (l["event"].as_str(), l["status"].as_u64(), l["method"].as_str(), l["route"].as_str()),
            (Some("request"), Some(200), Some("POST"), Some("ECHO"))
        );
        assert!(l["request_bytes"].as_u64().unwrap() > 0 && l["response_bytes"].as_u64().unwrap() > 0);
        assert!(l["time"].as_str().unwrap().ends_with('Z') && l["duration_ms"].is_number());
    }
}

#[test]
fn the_journal_records_blocked_connections() {
    need("curl", "curl");
    let (dir, env) = setup("journal-blocked", "INTERCEPT_PASSTHROUGH=deny\n");
    let journal = dir.join("journal.jsonl");
    let out = intercept(&[
        "run",
        "--env-file",
        env.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--",
        "curl",
        "-sS",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(out.status.code(), Some(7));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&journal).unwrap().lines().map(json).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0]["event"].as_str(), lines[0]["target"].as_str(), lines[0]["passthrough"].as_str()),
        (Some("blocked"), Some("127.0.0.1:9"), Some("deny"))
    );
}

/// After a 400, 431 or 505 the client reads the answer and then
/// end-of-file at once, not after the idle timeout.
#[test]
fn rejected_requests_end_at_once() {
    need("python3", "python3");
    let (_dir, env) = setup("reject-eof", "");
    let script = r#"
import socket, time
def ask(data):
    s = socket.create_connection(("h.example.test", 80), timeout=30)
    s.sendall(data)
    started, got = time.monotonic(), b""
    while chunk := s.recv(65536):
        got += chunk
    return got.split(b"\r\n")[0].decode(), "in time" if time.monotonic() - started < 2.5 else "late"
for data in [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", b"GET / HTTP/3.0\r\n\r\n"]:
    print(*ask(data))
"#;
    assert_eq!(
        ok(run_with(&env, &["python3", "-c", script])),
        "HTTP/1.1 400 Bad Request in time\nHTTP/1.1 431 Request Header Fields Too Large in time\nHTTP/1.1 505 HTTP Version Not Supported in time\n"
    );
}

/// A head that trickles in a byte at a time is cut when the idle timeout
/// has passed since its first byte, however often bytes come.
#[test]
fn a_trickling_head_is_cut_at_the_deadline() {
    need("python3", "python3");
    let (_dir, env) = setup("slow-head", "INTERCEPT_IDLE_TIMEOUT=1.5\n");
    let script = r#"
import socket, threading, time
s = socket.create_connection(("h.example.test", 80), timeout=30)
def trickle():
    try:
        for b in b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 40:
            s.send(bytes([b]))
            time.sleep(0.2)
    except OSError:
        pass
threading.Thread(target=trickle, daemon=True).start()
started, got = time.monotonic(), b""
while chunk := s.recv(65536):
    got += chunk
took = time.monotonic() - started
print(got.split(b"\r\n")[0].decode(), "cut in time" if 1.4 < took < 4 else "took %.1f s" % took)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "HTTP/1.1 408 Request Timeout cut in time\n");
}
