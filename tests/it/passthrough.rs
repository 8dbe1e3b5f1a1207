//! Pass-through: unrouted connections reach a real loopback server in
//! `allow` and `loopback` modes and are refused, with errno ECONNREFUSED and
//! one stderr line, in `deny` mode.

use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A real HTTP server on 127.0.0.1 that counts its connections.
fn real_server() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\nConnection: close\r\n\r\nfrom a real server");
        }
    });
    (port, count)
}

fn env_with(name: &str, mode: &str) -> Env {
    let dir = temp_dir(name);
    env_file(&dir, &format!("INTERCEPT_ROUTE_A=http://routed.example.test -> static:200 routed\nINTERCEPT_PASSTHROUGH={mode}\n"))
}

#[test]
fn allow_reaches_the_real_server() {
    need("curl", "curl");
    let (port, count) = real_server();
    let env = env_with("allow", "allow");
    let url = format!("http://127.0.0.1:{port}/");
    let out = ok(run_with(&env, &["curl", "-sS", &url, "http://routed.example.test/"]));
    assert_eq!(out, "from a real serverrouted");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn loopback_mode_passes_loopback_and_refuses_the_rest() {
    need("curl", "curl");
    let (port, count) = real_server();
    let env = env_with("loopback", "loopback");
    let out = ok(run_with(&env, &["curl", "-sS", &format!("http://localhost:{port}/")]));
    assert_eq!(out, "from a real server");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // A routed name on a port no route serves is not loopback: refused.
    let out = run_with(&env, &["curl", "-sS", "http://routed.example.test:81/"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains(":81: INTERCEPT_PASSTHROUGH=loopback"), "{}", stderr(&out));
}

#[test]
fn deny_refuses_with_econnrefused_and_one_line() {
    need("curl", "curl");
    let (port, count) = real_server();
    let env = env_with("deny", "deny");
    let out = run_with(&env, &["curl", "-sS", &format!("http://127.0.0.1:{port}/")]);
    assert_eq!(out.status.code(), Some(7), "curl's 'could not connect': {}", stderr(&out));
    let err = stderr(&out);
    let ours: Vec<&str> = err.lines().filter(|l| l.starts_with("intercept:")).collect();
    assert_eq!(ours, [format!("intercept: refused connection to 127.0.0.1:{port}: INTERCEPT_PASSTHROUGH=deny")], "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 0, "the real server must see nothing");
    // Routed names still answer, and unrouted names do not resolve.
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://routed.example.test/"])), "routed");
    let out = run_with(&env, &["curl", "-sS", "http://unrouted.example.test/"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("intercept: refused lookup of unrouted.example.test: INTERCEPT_PASSTHROUGH=deny"), "{}", stderr(&out));
}

#[test]
fn errno_is_econnrefused_for_a_c_level_caller() {
    need_python_module("socket", "python3");
    let (port, _) = real_server();
    let env = env_with("errno", "deny");
    let script = format!("import socket, errno\ns = socket.socket()\nprint(errno.errorcode[s.connect_ex(('127.0.0.1', {port}))])\n");
    assert_eq!(ok(run_with(&env, &["python3", "-c", &script])), "ECONNREFUSED\n");
}
