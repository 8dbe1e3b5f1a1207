//! HTTPS routes through the shim: real clients verify a certificate from
//! the local CA and get the app's bytes, with no `-k` or `verify=False`
//! anywhere; an untrusted bundle fails; real HTTPS hosts keep verifying.

use crate::common::*;
use std::path::Path;
use std::process::Command;

const ENV: &str = "\
INTERCEPT_ROUTE_SECURE=https://secure.example.test -> echo
INTERCEPT_ROUTE_PLAIN=http://secure.example.test -> static:200 plain side
INTERCEPT_ROUTE_ALT=https://alt.example.test:8443/api -> static:200 alt secure
";

/// An env file and a fresh CA directory named in it.
fn setup(name: &str) -> (TempDir, Env) {
    let dir = temp_dir(name);
    let env = env_file(&dir, &format!("{ENV}INTERCEPT_CA_DIR={}\n", dir.join("ca").display()));
    (dir, env)
}

#[test]
fn curl_verifies_and_gets_the_app() {
    need("curl", "curl");
    let (dir, env) = setup("curl");
    let out = ok(run_with(&env, &["curl", "-sS", "https://secure.example.test/a/b?c=d"]));
    let v = json(&out);
    assert_eq!((v["scheme"].as_str(), v["port"].as_u64(), v["path_info"].as_str()), (Some("https"), Some(443), Some("/a/b")));
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "https://alt.example.test:8443/api/x"])), "alt secure");
    // The CA was made on first use, its key private.
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(dir.join("ca/ca-key.pem")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
}

#[test]
fn http_and_https_side_by_side_on_one_name() {
    need("curl", "curl");
    let (_, env) = setup("side");
    let out = ok(run_with(&env, &["curl", "-sS", "http://secure.example.test/", "https://secure.example.test/"]));
    let (plain, secure) = out.split_at("plain side".len());
    assert_eq!(plain, "plain side");
    assert_eq!(json(secure)["scheme"], "https");
}

#[test]
fn python_requests_and_urllib() {
    need_python_module("requests", "requests");
    let (_, env) = setup("python");
    let script = r#"
import json, urllib.request, requests
print(json.loads(urllib.request.urlopen("https://secure.example.test/u").read())["scheme"])
r = requests.post("https://secure.example.test/r", data="sent")
print(r.status_code, r.json()["body"], r.json()["path_info"])
print(requests.get("https://alt.example.test:8443/api").text)
"#;
    assert_eq!(ok(run_with(&env, &["python3", "-c", script])), "https\n200 sent /r\nalt secure\n");
}

#[test]
fn node_fetch_and_https_get() {
    need("node", "nodejs");
    let (_, env) = setup("node");
    let script = r#"
const https = require("https");
(async () => {
  const v = await (await fetch("https://secure.example.test/f")).json();
  console.log(v.scheme, v.path_info);
  await new Promise((done) => https.get("https://alt.example.test:8443/api", (res) => {
    let body = ""; res.on("data", (c) => body += c); res.on("end", () => { console.log(res.statusCode, body); done(); });
  }));
})();
"#;
    assert_eq!(ok(run_with(&env, &["node", "-e", script])), "https /f\n200 alt secure\n");
}

#[test]
fn a_client_that_does_not_trust_the_ca_fails_verification() {
    need("curl", "curl");
    let (_, env) = setup("untrusted");
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(system.is_file(), "needs the Debian package ca-certificates");
    let out = run_with(&env, &["curl", "-sS", "--cacert", system.to_str().unwrap(), "https://secure.example.test/"]);
    assert_eq!(out.status.code(), Some(60), "curl's 'peer certificate cannot be authenticated': {}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("intercept: https://secure.example.test:443: TLS handshake failed"), "{err}");
}

#[test]
fn env_and_ca_commands_point_clients_at_the_bundle() {
    need("curl", "curl");
    let (dir, env) = setup("env-ca");
    let printed = ok(intercept(&["env", "--env-file", env.to_str().unwrap()]));
    let bundle = printed.lines().find_map(|l| l.strip_prefix("CURL_CA_BUNDLE=")).unwrap().to_string();
    for key in ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO"] {
        assert!(printed.lines().any(|l| l == format!("{key}={bundle}")), "{key} in:\n{printed}");
    }
    let ca = ok(intercept(&["ca", "--env-file", env.to_str().unwrap()]));
    assert_eq!(ca, format!("ca:     {0}/ca.pem\nkey:    {0}/ca-key.pem\nbundle: {bundle}\n", dir.join("ca").display()));
    let mut curl = command("curl", &dir);
    for line in printed.lines() {
        let (k, v) = line.split_once('=').unwrap();
        curl.env(k, v);
    }
    assert_eq!(json(&ok(curl.args(["-sS", "https://secure.example.test/"]).output().unwrap()))["scheme"], "https");
}

/// A real HTTPS server on loopback whose certificate only the user's own CA
/// file vouches for: with that file in CURL_CA_BUNDLE before `intercept run`,
/// it still verifies under the shim, because the bundle keeps the user's CAs.
#[test]
fn real_hosts_keep_verifying_with_the_users_own_cas() {
    need("curl", "curl");
    need("openssl", "openssl");
    need("python3", "python3");
    let (dir, env) = setup("real");
    let (cert, key) = (dir.join("real.pem"), dir.join("real-key.pem"));
    ok(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap());
    let server = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "11"); self.end_headers(); self.wfile.write(b"real server")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = Command::new("python3").args(["-c", server]).arg(&cert).arg(&key).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut port).unwrap();
    let url = format!("https://localhost:{}/", port.trim());
    let mut cmd = command(intercept_bin(), &dir);
    let out = cmd
        .env("CURL_CA_BUNDLE", &cert)
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "curl", "-sS", &url, "https://secure.example.test/"])
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let text = ok(out);
    assert!(text.starts_with("real server"), "{text}");
    assert_eq!(json(&text["real server".len()..])["scheme"], "https");
}

#[test]
fn the_journal_and_log_say_https() {
    need("curl", "curl");
    let (dir, env) = setup("journal");
    let journal = dir.join("journal.jsonl");
    let out = intercept(&[
        "run",
        "--env-file",
        env.to_str().unwrap(),
        "--journal",
        journal.to_str().unwrap(),
        "--log",
        "info",
        "--",
        "curl",
        "-sS",
        "https://secure.example.test/j",
    ]);
    ok(out.clone());
    assert!(stderr(&out).contains("intercept: GET https://secure.example.test:443/j -> 200 (route SECURE"), "{}", stderr(&out));
    let line = json(std::fs::read_to_string(&journal).unwrap().trim());
    assert_eq!(line["url"], "https://secure.example.test:443/j");
}

/// A CA key others could read is refused, as ssh refuses such a key: the
/// run stops before the program starts, saying which file and why.
#[test]
fn a_ca_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, env) = setup("ca-hygiene");
    ok(intercept(&["ca", "--env-file", env.to_str().unwrap()]));
    let key = dir.join("ca/ca-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_with(&env, &["echo", "ran anyway"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ca-key.pem is readable by others (mode 644)"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}
