//! The `files:` app through curl: a directory tree with content types,
//! index pages and redirects, ranges and conditional requests, nothing
//! from outside the directory, and 503 when the process is out of fds.

use crate::common::*;
use std::path::Path;

/// A process out of file descriptors gets 503 from a files route (and a
/// log line), not a 404 that would read as "no such file".
#[test]
fn files_out_of_descriptors_is_503() {
    need("python3", "python3");
    let (_dir, env) = files_env("files-emfile");
    let script = r#"
import http.client, os
c = http.client.HTTPConnection("files.example.test", 80, timeout=10)
c.connect()
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
c.request("GET", "/static/data.json")
r = c.getresponse()
print(r.status, r.read().decode().strip())
for fd in held:
    os.close(fd)
c.request("GET", "/static/data.json")
print(c.getresponse().status)
"#;
    let out = run_with(&env, &["python3", "-c", script]);
    assert_eq!(ok(out.clone()), "503 out of file descriptors\n200\n");
    assert!(stderr(&out).contains("files: cannot open"), "{}", stderr(&out));
}

/// A site tree with a secret beside it, and a symlink pointing at it.
fn files_env(name: &str) -> (TempDir, Env) {
    let dir = temp_dir(name);
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("docs")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(site.join("data.json"), "{\"n\": 1}\n").unwrap();
    std::fs::write(site.join("docs/guide.txt"), "0123456789abcdef").unwrap();
    std::fs::write(dir.join("secret.txt"), "TOP SECRET\n").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), site.join("escape.txt")).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_FILES=http://files.example.test/static -> files:site\n");
    (dir, env)
}

fn curl_status(env: &Path, args: &[&str]) -> String {
    let mut all = vec!["curl", "-sS", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    ok(run_with(env, &all))
}

#[test]
fn files_serve_a_tree_with_types_index_and_redirects() {
    need("curl", "curl");
    let (_, env) = files_env("files-basic");
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "http://files.example.test/static/"]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.contains("Content-Type: text/html; charset=utf-8\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n<h1>home</h1>\n"), "{out}");
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "http://files.example.test/static/data.json"]));
    assert!(
        out.contains("Content-Type: application/json\r\n") && out.contains("Content-Length: 9\r\n") && out.ends_with("{\"n\": 1}\n"),
        "{out}"
    );
    let out = ok(run_with(&env, &["curl", "-sS", "-L", "http://files.example.test/static"]));
    assert_eq!(out, "<h1>home</h1>\n");
    let head = ok(run_with(&env, &["curl", "-sS", "-I", "http://files.example.test/static/docs/guide.txt"]));
    assert!(head.contains("Content-Length: 16\r\n") && head.ends_with("\r\n\r\n"), "{head}");
    assert_eq!(curl_status(&env, &["http://files.example.test/static/nope.txt"]), "404");
    assert_eq!(curl_status(&env, &["http://files.example.test/static/docs/"]), "404");
    assert_eq!(curl_status(&env, &["-X", "DELETE", "http://files.example.test/static/data.json"]), "405");
}

#[test]
fn files_ranges_and_conditional_requests() {
    need("curl", "curl");
    let (_, env) = files_env("files-range");
    let url = "http://files.example.test/static/docs/guide.txt";
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "-r", "2-5", url]));
    assert!(out.starts_with("HTTP/1.1 206 Partial Content\r\n") && out.contains("Content-Range: bytes 2-5/16\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\n2345"), "{out}");
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "-r", "-3", url])), "def");
    assert_eq!(curl_status(&env, &["-r", "99-", url]), "416");
    let head = ok(run_with(&env, &["curl", "-sS", "-I", url]));
    let etag = head.lines().find_map(|l| l.strip_prefix("ETag: ")).unwrap().trim().to_string();
    let last_modified = head.lines().find_map(|l| l.strip_prefix("Last-Modified: ")).unwrap().trim().to_string();
    assert_eq!(curl_status(&env, &["-H", &format!("If-None-Match: {etag}"), url]), "304");
    assert_eq!(curl_status(&env, &["-H", "If-None-Match: \"other\"", url]), "200");
    assert_eq!(curl_status(&env, &["-H", &format!("If-Modified-Since: {last_modified}"), url]), "304");
}

#[test]
fn files_never_serve_outside_the_directory() {
    need("curl", "curl");
    let (_, env) = files_env("files-escape");
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/docs/%2E%2E/%2e%2e/secret.txt",
        "/static/escape.txt",
        "/static/data.json%00.txt",
        "/static/..%2fsecret.txt",
    ] {
        let url = format!("http://files.example.test{path}");
        let out = run_with(&env, &["curl", "-sS", "--path-as-is", "-w", "\n%{http_code}", &url]);
        let text = stdout(&out);
        assert!(!text.contains("TOP SECRET"), "{path}: {text}");
        assert!(text.ends_with("\n404"), "{path}: {text}");
    }
}

#[test]
fn bad_files_specs_are_rejected() {
    let dir = temp_dir("files-bad");
    let env = env_file(&dir, "INTERCEPT_ROUTE_F=http://files.example.test -> files:no-such-dir\n");
    check_refuses(&env, 1, "files:no-such-dir: cannot open");
}
