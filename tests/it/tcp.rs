//! Every runtime sees TCP: non-blocking clients on poll/epoll/select loops,
//! socket options and peer names, an exact fd table, the legacy resolver
//! calls, fork, threads, many connections, and pass-through that nobody
//! can tell from no shim at all.

use crate::common::*;
use std::path::Path;
use std::process::Command;

const ENV: &str = "\
INTERCEPT_ROUTE_ECHO=http://tcp.example.test/echo -> echo
INTERCEPT_ROUTE_ROOT=http://tcp.example.test -> static:200 tcp root
INTERCEPT_ROUTE_ALT=http://alt.example.test:8080 -> static:200 alt
";

fn setup(name: &str) -> Env {
    env_file(&temp_dir(name), ENV)
}

fn python(env: &Path, script: &str) -> String {
    need("python3", "python3");
    ok(run_with(env, &["python3", "-c", script]))
}

#[test]
fn curl_parallel() {
    need("curl", "curl");
    let env = setup("curl-parallel");
    let mut args = vec!["curl", "-sS", "--parallel", "--parallel-max", "8"];
    let urls: Vec<String> = (0..16).map(|i| format!("http://tcp.example.test/echo/{i}")).collect();
    for url in &urls {
        args.extend(["-o", "-", url.as_str()]);
    }
    let out = ok(run_with(&env, &args));
    let mut seen: Vec<String> = out
        .split("}\n")
        .filter(|chunk| !chunk.trim().is_empty())
        .map(|chunk| json(&format!("{chunk}}}"))["path_info"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut expected: Vec<String> = (0..16).map(|i| format!("/{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected);
}

#[test]
fn node_many_requests_at_once() {
    need("node", "nodejs");
    let env = setup("node-parallel");
    let script = r#"
const http = require("http");
const get = (path) => new Promise((done, fail) => http.get({ host: "tcp.example.test", path, agent: new http.Agent() }, (res) => {
  let body = ""; res.on("data", (c) => body += c); res.on("end", () => done(JSON.parse(body).path_info));
}).on("error", fail));
Promise.all([...Array(20).keys()].map((i) => get("/echo/" + i))).then((paths) => console.log(paths.join(",")));
"#;
    let out = ok(run_with(&env, &["node", "-e", script]));
    let expected: Vec<String> = (0..20).map(|i| format!("/{i}")).collect();
    assert_eq!(out.trim(), expected.join(","));
}

#[test]
fn python_asyncio() {
    let env = setup("asyncio");
    let script = r#"
import asyncio, socket
async def fetch(path):
    reader, writer = await asyncio.open_connection("tcp.example.test", 80)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: tcp.example.test\r\nConnection: close\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[1]
async def low_level():
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    await loop.sock_connect(s, ("alt.example.test", 8080))
    await loop.sock_sendall(s, b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := await loop.sock_recv(s, 4096):
        data += chunk
    s.close()
    return data.split(b"\r\n\r\n", 1)[1]
async def main():
    bodies = await asyncio.gather(*(fetch("/") for _ in range(10)), low_level())
    print(set(bodies[:10]), bodies[10])
asyncio.run(main())
"#;
    assert_eq!(python(&env, script), "{b'tcp root'} b'alt'\n");
}

#[test]
fn java_http_client_and_http_url_connection() {
    need("java", "default-jdk-headless");
    let env = setup("java");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Clients.java");
    let out = ok(run_with(&env, &["java", source.to_str().unwrap(), "http://tcp.example.test/", "http://alt.example.test:8080/"]));
    assert_eq!(out, "HttpClient 200 tcp root\nHttpURLConnection 200 alt\n");
}

#[test]
fn rust_tokio_reqwest() {
    let helper = intercept_bin().with_file_name("tokio-client");
    assert!(helper.is_file(), "{} is missing: `make build` builds it", helper.display());
    let env = setup("tokio");
    let helper = helper.to_str().unwrap();
    let out = ok(run_with(&env, &[helper, "http://tcp.example.test/", "http://alt.example.test:8080/x", "http://tcp.example.test/echo/t"]));
    let (first, rest) = out.split_once("200 alt\n").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(first, "200 tcp root\n");
    let echo = rest.strip_prefix("200 ").unwrap_or_else(|| panic!("{out}"));
    assert_eq!(json(echo)["path_info"], "/t");
}

#[test]
fn wrk_load() {
    need("wrk", "wrk");
    let env = setup("wrk");
    let out = ok(run_with(&env, &["wrk", "-t", "2", "-c", "8", "-d", "1s", "http://tcp.example.test/"]));
    let total: u64 = out
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no request count in:\n{out}"));
    assert!(total > 100, "{out}");
    assert!(!out.contains("Socket errors") && !out.contains("Non-2xx"), "{out}");
}

#[test]
fn socket_options_peer_names_and_fast_open() {
    let env = setup("sockopt");
    let script = r#"
import socket
s = socket.create_connection(("tcp.example.test", 80))
ip = s.getpeername()[0]
print(ip.startswith("198.1"), s.getpeername()[1], s.getsockname()[0])
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
print(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE))
print(s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET, s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP, s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE) == socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
print(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
six = socket.socket(socket.AF_INET6)
six.connect(("::ffff:" + ip, 80))
print(six.getpeername()[:2] == ("::ffff:" + ip, 80), six.getsockname()[0], six.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN) == socket.AF_INET6)
tfo = socket.socket()
tfo.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("tcp.example.test", 80))
print(tfo.recv(4096).split(b"\r\n\r\n")[1], tfo.getpeername()[1])
"#;
    assert_eq!(python(&env, script), "True 80 127.0.0.1\n1 30\nTrue True True\n0\nTrue ::ffff:127.0.0.1 True\nb'tcp root' 80\n");
}

#[test]
fn the_fd_table_stays_exact() {
    let env = setup("fdtable");
    let script = r#"
import fcntl, os, socket
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
port = listener.getsockname()[1]
s = socket.create_connection(("tcp.example.test", 80))
fd = s.fileno()
copies = [os.dup(fd), fcntl.fcntl(fd, fcntl.F_DUPFD, 200), fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 300)]
os.dup2(fd, 400)
copies.append(400)
for c in copies:
    t = socket.socket(fileno=os.dup(c))
    print(t.getpeername()[1], end=" ")
    t.detach()
print()
# Close every copy and the original; then unrelated sockets take the same
# numbers and must show their real peers.
for c in copies:
    os.close(c)
s.close()
for number in [fd] + copies:
    plain = socket.create_connection(("127.0.0.1", port))
    if plain.fileno() == number:
        plain.detach()
    else:
        os.dup2(plain.fileno(), number)
        plain.close()
    t = socket.socket(fileno=number)
    print(t.getpeername() == ("127.0.0.1", port), end=" ")
print()
"#;
    assert_eq!(python(&env, script), "80 80 80 80 \nTrue True True True True \n");
}

#[test]
fn legacy_resolver_calls() {
    need("cc", "gcc");
    let dir = temp_dir("names");
    let env = env_file(&dir, ENV);
    let program = dir.join("names");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/names.c");
    ok(Command::new("cc").arg("-o").arg(&program).arg(&source).output().unwrap());
    let out = ok(run_with(&env, &[program.to_str().unwrap(), "tcp.example.test"]));
    let v4 = out.lines().next().unwrap().split(' ').nth(3).unwrap().to_string();
    assert!(v4.starts_with("198.18.") || v4.starts_with("198.19."), "{out}");
    let v6 = out.lines().nth(1).unwrap().split(' ').nth(3).unwrap().to_string();
    assert!(v6.starts_with("2001:2::"), "{out}");
    let expected = format!(
        "gethostbyname: tcp.example.test AF_INET {v4} len=4 more=0\n\
         gethostbyname2: tcp.example.test AF_INET6 {v6} len=16 more=0\n\
         gethostbyname_r rc=0\n\
         gethostbyname_r: tcp.example.test AF_INET {v4} len=4 more=0\n\
         gethostbyname2_r rc=0\n\
         gethostbyname2_r: tcp.example.test AF_INET6 {v6} len=16 more=0\n\
         gethostbyname_r small buffer: ERANGE\n\
         getnameinfo rc=0 tcp.example.test 80\n\
         getnameinfo numeric rc=0 {v4}\n"
    );
    assert_eq!(out, expected);
    // The same synthetic address from getaddrinfo, and AAAA for AF_INET6.
    let script = format!(
        "import socket\nprint(socket.getaddrinfo('tcp.example.test', 80, socket.AF_INET6)[0][4][0] == '{v6}', socket.gethostbyname('tcp.example.test') == '{v4}')"
    );
    assert_eq!(python(&env, &script), "True True\n");
}

/// A name from /etc/hosts that maps to 127.0.0.1 other than `localhost`
/// (which curl resolves by itself).
fn loopback_host_name() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    hosts
        .lines()
        .filter(|l| l.split_whitespace().next() == Some("127.0.0.1"))
        .flat_map(|l| l.split_whitespace().skip(1))
        .find(|name| *name != "localhost" && !name.starts_with('#'))
        .unwrap_or_else(|| panic!("this test needs a name other than localhost for 127.0.0.1 in /etc/hosts:\n{hosts}"))
        .to_string()
}

#[test]
fn a_synthetic_address_on_an_unrouted_port_reaches_the_real_host() {
    need("curl", "curl");
    let name = loopback_host_name();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nreal");
        }
    });
    let env = env_file(&temp_dir("unrouted-port"), &format!("INTERCEPT_ROUTE_A=http://{name}:1 -> static:200 routed\n"));
    let out = ok(run_with(&env, &["curl", "-sS", "-4", &format!("http://{name}:{port}/"), &format!("http://{name}:1/")]));
    assert_eq!(out, "realrouted");
}

#[test]
fn fork_keeps_both_sides_working() {
    let env = setup("fork");
    let script = r#"
import http.client, os, socket, time
before = http.client.HTTPConnection("tcp.example.test")
before.request("GET", "/echo/before")
assert b"/before" in before.getresponse().read()
pid = os.fork()
if pid == 0:
    c = http.client.HTTPConnection("tcp.example.test")
    c.request("GET", "/echo/child")
    ok = b"/child" in c.getresponse().read()
    time.sleep(2)
    os._exit(0 if ok else 1)
# The parent's connection from before the fork still works, and a
# close-delimited answer ends at once although the child still lives.
start = time.monotonic()
before.sock.sendall(b"GET /echo/after HTTP/1.0\r\n\r\n")
data = b""
while chunk := before.sock.recv(65536):
    data += chunk
quick = time.monotonic() - start < 1.5
_, status = os.waitpid(pid, 0)
print(b'"/after"' in data, quick, os.waitstatus_to_exitcode(status))
"#;
    assert_eq!(python(&env, script), "True True 0\n");
}

#[test]
fn thirty_two_threads_of_thirty_requests() {
    let env = setup("threads");
    let script = r#"
import http.client, json, threading
errors = []
def work(t):
    c = http.client.HTTPConnection("tcp.example.test")
    for i in range(30):
        c.request("GET", f"/echo/{t}/{i}")
        v = json.loads(c.getresponse().read())
        if v["path_info"] != f"/{t}/{i}":
            errors.append(v["path_info"])
threads = [threading.Thread(target=work, args=(t,)) for t in range(32)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(errors))
"#;
    assert_eq!(python(&env, script), "0\n");
}

#[test]
fn fifteen_hundred_connections_leave_nothing_behind() {
    let env = setup("many");
    // The second connection starts the event thread (the first is answered
    // in its client's writes), which stays for the process's life with its
    // epoll fd and pipe; the counts are taken after it. Odd connections send
    // a chunked body, so they move from the event thread to a thread of
    // their own, which must end too.
    let script = r#"
import http.client, json, os, time
def counts():
    return len(os.listdir("/proc/self/fd")), len(os.listdir("/proc/self/task"))
def one(i):
    c = http.client.HTTPConnection("tcp.example.test")
    if i % 2:
        c.request("POST", "/echo/x", body=iter([b"x" * i]), encode_chunked=True)
        assert json.loads(c.getresponse().read())["body"] == "x" * i
    else:
        c.request("GET", "/")
        assert c.getresponse().read() == b"tcp root"
    c.close()
one(0)
one(0)
time.sleep(0.2)
base = counts()
for i in range(1500):
    one(i)
deadline = time.monotonic() + 10
while counts() != base and time.monotonic() < deadline:
    time.sleep(0.05)
print(base == counts(), counts()[1])
"#;
    assert_eq!(python(&env, script), "True 2\n");
}

#[test]
fn unsupervised_run_warns_about_a_statically_linked_program() {
    need("cc", "gcc");
    let dir = temp_dir("static");
    let source = dir.join("hello.c");
    std::fs::write(&source, "#include <stdio.h>\nint main(void) { puts(\"static hello\"); return 0; }\n").unwrap();
    let program = dir.join("hello");
    let built = Command::new("cc").arg("-static").arg("-o").arg(&program).arg(&source).output().unwrap();
    assert!(built.status.success(), "cc -static needs libc6-dev: {}", stderr(&built));
    // Supervised (the default), such a program is intercepted: see
    // `supervise`. Without, it is named.
    let env = env_file(&dir, &format!("{ENV}INTERCEPT_SUPERVISE=never\n"));
    let out = run_with(&env, &[program.to_str().unwrap()]);
    assert_eq!(stdout(&out), "static hello\n");
    let warning = format!(
        "intercept: warning: {} is statically linked, so it does not load libintercept.so; its connections are not intercepted\n",
        program.display()
    );
    assert_eq!(stderr(&out), warning);
    assert_eq!(stderr(&run_with(&env, &["true"])), "");
    // Started by a shell under the shim, it gets the same warning (from
    // the shim's execve), and a dynamic program none.
    let script = format!("{} && /bin/true && echo done", program.display());
    let out = run_with(&env, &["sh", "-c", &script]);
    assert_eq!(stdout(&out), "static hello\ndone\n");
    assert_eq!(stderr(&out), warning);
}

#[test]
fn cpython_socket_test_suites_pass_the_same_under_the_shim() {
    need("python3", "python3");
    let modules = ["test_httplib", "test_urllib2_localnet", "test.test_asyncio.test_sock_lowlevel"];
    let summary = |out: &std::process::Output| -> Vec<String> {
        let text = stdout(out);
        text.lines().filter(|l| l.starts_with("Total tests:") || l.starts_with("Result:")).map(str::to_string).collect()
    };
    let dir = temp_dir("cpython");
    let mut plain = command("python3", &dir);
    let without = plain.args(["-m", "test"]).args(modules).output().unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_OTHER=http://unrelated.example.test -> echo\n");
    let mut args = vec!["python3", "-m", "test"];
    args.extend(modules);
    let with = run_with(&env, &args);
    let (a, b) = (summary(&without), summary(&with));
    assert!(a.iter().any(|l| l == "Result: SUCCESS"), "without the shim: {}", stdout(&without));
    assert!(a.iter().any(|l| l.starts_with("Total tests: run=")), "{a:?}");
    assert_eq!(a, b, "under the shim:\n{}", stdout(&with));
}
