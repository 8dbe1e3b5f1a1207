//! The apps beyond echo and static, through real clients: CGI (including
//! git's smart HTTP over http and https).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    need("git", "git");
    let mut cmd = Command::new("git");
    clean(&mut cmd);
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
    let mut cmd = Command::new(intercept_bin());
    clean(&mut cmd);
    let out = cmd.current_dir(&dir).args(["run", "--env-file", env.to_str().unwrap(), "--", "git", "clone", "-q", &url, "work"]).output().unwrap();
    ok(out);
    let work = dir.join("work");
    assert_eq!(std::fs::read_to_string(work.join("README")).unwrap(), "first version\n");
    std::fs::write(work.join("README"), "second version\n").unwrap();
    // A large file makes git send a chunked request body.
    let big: String = (0..300_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(work.join("big.txt"), &big).unwrap();
    git(&work, &["add", "README", "big.txt"]);
    git(&work, &["commit", "-q", "-m", "second"]);
    let mut cmd = Command::new(intercept_bin());
    clean(&mut cmd);
    ok(cmd.current_dir(&work).args(["run", "--env-file", env.to_str().unwrap(), "--", "git", "push", "-q", "origin", "main"]).output().unwrap());
    let log = git(&srv.join("repo.git"), &["log", "--format=%s", "main"]);
    assert_eq!(log, "second\nfirst\n");
    assert_eq!(git(&srv.join("repo.git"), &["show", "main:big.txt"]), big);
    // And a fetch from a second clone sees it.
    let mut cmd = Command::new(intercept_bin());
    clean(&mut cmd);
    ok(cmd.current_dir(&dir).args(["run", "--env-file", env.to_str().unwrap(), "--", "git", "clone", "-q", &url, "again"]).output().unwrap());
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
esac
"#;

fn cgi_env(name: &str) -> PathBuf {
    let dir = temp_dir(name);
    let script = dir.join("script.cgi");
    std::fs::write(&script, SCRIPT).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    env_file(&dir, "INTERCEPT_ROUTE_CGI=http://cgi.example.test/cgi -> cgi:./script.cgi\n")
}

#[test]
fn cgi_meta_variables_and_body() {
    need("curl", "curl");
    let env = cgi_env("cgi-vars");
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "-H", "X-Custom: hello", "-H", "Content-Type: text/x-test", "--data-binary", "the body", "http://cgi.example.test/cgi/show?a=1&b=2"]));
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
    let code = |path: &str| ok(run_with(&env, &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &format!("http://cgi.example.test/cgi{path}")]));
    assert_eq!(code("/created"), "201 ");
    assert_eq!(code("/away"), "302 https://elsewhere.example.test/");
    assert_eq!(code("/garbage"), "502 ");
    assert_eq!(code("/fail"), "502 ");
    let out = ok(run_with(&env, &["curl", "-sS", "http://cgi.example.test/cgi/inside"]));
    assert!(out.contains("REQUEST_METHOD=GET\n") && out.contains("PATH_INFO=/show\n") && out.contains("QUERY_STRING=from=redirect\n"), "{out}");
    // The program's stderr is the host's stderr.
    let out = run_with(&env, &["curl", "-sS", "http://cgi.example.test/cgi/fail"]);
    assert!(stderr(&out).contains("failing on purpose"), "{}", stderr(&out));
}

#[test]
fn bad_cgi_specs_are_rejected_with_file_and_line() {
    let dir = temp_dir("cgi-bad");
    let env = env_file(&dir, "# x\nINTERCEPT_ROUTE_CGI=http://cgi.example.test -> cgi:./missing.cgi\n");
    let out = intercept(&["check", "--env-file", env.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with(&format!("{}:2: ", env.display())) && stderr(&out).contains("cgi program `./missing.cgi` not found"), "{}", stderr(&out));
}
