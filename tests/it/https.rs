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
    let (dir, env) = setup("untrusted");
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    assert!(system.is_file(), "needs the Debian package ca-certificates");
    // A copy: opening the system path itself is served our bundle.
    let own = dir.join("own-bundle.pem");
    std::fs::copy(system, &own).unwrap();
    // Two attempts in one curl: the log line comes from our thread in
    // curl's process, which an exit right after the first failure can
    // take down before it writes (seen under a loaded full suite).
    let url = "https://secure.example.test/";
    let out = run_with(&env, &["curl", "-sS", "--cacert", own.to_str().unwrap(), url, url]);
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
    let mut lines = ca.lines();
    let ca_dir = dir.join("ca");
    assert_eq!(lines.next(), Some(format!("ca:         {}/ca.pem", ca_dir.display()).as_str()));
    assert_eq!(lines.next(), Some(format!("key:        {}/ca-key.pem", ca_dir.display()).as_str()));
    assert_eq!(lines.next(), Some(format!("bundle:     {bundle}").as_str()));
    assert_eq!(lines.next(), Some(format!("truststore: {}", bundle.replace(".pem", ".jks")).as_str()));
    assert!(
        lines.next().is_some_and(|l| l.starts_with("variables:  SSL_CERT_FILE CURL_CA_BUNDLE") && l.contains("npm_config_cafile")),
        "{ca}"
    );
    assert!(lines.next().is_some_and(|l| l.starts_with("served for: /etc/ssl/certs/ca-certificates.crt")), "{ca}");
    let mut curl = command("curl", &dir);
    for line in printed.lines() {
        let (k, v) = line.split_once('=').unwrap();
        curl.env(k, v);
    }
    assert_eq!(json(&ok(curl.args(["-sS", "https://secure.example.test/"]).output().unwrap()))["scheme"], "https");
}

/// A real HTTPS server on loopback (Python's), with a certificate for
/// `localhost` that only its own file (`cert`) vouches for. It answers
/// `real server`, and the package document of `demo-pkg` at `/demo-pkg`.
struct RealServer {
    child: std::process::Child,
    port: String,
    cert: std::path::PathBuf,
}

impl RealServer {
    fn start(dir: &Path) -> RealServer {
        need("openssl", "openssl");
        need("python3", "python3");
        let (cert, key) = (dir.join("real.pem"), dir.join("real-key.pem"));
        ok(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
            ])
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
        body = open(sys.argv[3], "rb").read() if self.path == "/demo-pkg" else b"real server"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
        std::fs::write(dir.join("demo-pkg.json"), PACKAGE).unwrap();
        let mut child = Command::new("python3")
            .args(["-c", server])
            .arg(&cert)
            .arg(&key)
            .arg(dir.join("demo-pkg.json"))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut port).unwrap();
        RealServer { child, port: port.trim().to_string(), cert }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The npm package document both registries serve.
const PACKAGE: &str = r#"{"name":"demo-pkg","dist-tags":{"latest":"1.2.3"},"versions":{"1.2.3":{"name":"demo-pkg","version":"1.2.3","dist":{"tarball":"https://registry.example.test/demo-pkg-1.2.3.tgz","shasum":"0000000000000000000000000000000000000000"}}},"time":{"1.2.3":"2026-01-01T00:00:00.000Z"}}"#;

/// A real HTTPS server on loopback whose certificate only the user's own CA
/// file vouches for: with that file in CURL_CA_BUNDLE before `intercept run`,
/// it still verifies under the shim, because the bundle keeps the user's CAs.
#[test]
fn real_hosts_keep_verifying_with_the_users_own_cas() {
    need("curl", "curl");
    let (dir, env) = setup("real");
    let real = RealServer::start(&dir);
    let mut cmd = command(intercept_bin(), &dir);
    let out = cmd
        .env("CURL_CA_BUNDLE", &real.cert)
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "curl", "-sS", &real.url(), "https://secure.example.test/"])
        .output()
        .unwrap();
    let text = ok(out);
    assert!(text.starts_with("real server"), "{text}");
    assert_eq!(json(&text["real server".len()..])["scheme"], "https");
}

/// The clients that read no trust variable, or a trust store of their own,
/// verify an https route with the exact command a user would type: wget,
/// wget2, Java's HttpClient and HttpURLConnection, pycurl, PHP's curl,
/// Perl LWP, and npm with an .npmrc that sets a cafile. The same commands
/// still verify a real HTTPS server whose CA only the user's SSL_CERT_FILE
/// names.
#[test]
fn clients_with_trust_stores_of_their_own_verify_with_no_flag() {
    need("wget", "wget");
    need("wget2", "wget2");
    need("java", "default-jdk-headless");
    need("php", "php-cli");
    need("npm", "npm");
    need_python_module("pycurl", "pycurl");
    let lwp = Command::new("perl").args(["-MLWP::Protocol::https", "-e1"]).output().unwrap();
    assert!(lwp.status.success(), "Perl LWP is missing: install the Debian packages libwww-perl liblwp-protocol-https-perl");
    let dir = temp_dir("every-client");
    std::fs::create_dir_all(dir.join("registry")).unwrap();
    std::fs::write(dir.join("registry/demo-pkg"), PACKAGE).unwrap();
    std::fs::write(dir.join(".npmrc"), "cafile=/etc/ssl/certs/ca-certificates.crt\n").unwrap();
    let env = env_file(
        &dir,
        &format!(
            "INTERCEPT_ROUTE_ANSWER=https://answer.example.test -> static:200 route answer\nINTERCEPT_ROUTE_REG=https://registry.example.test -> files:registry\nINTERCEPT_CA_DIR={}\n",
            dir.join("ca").display()
        ),
    );
    let real = RealServer::start(&dir);
    let run = |args: &[&str]| {
        let mut cmd = command(intercept_bin(), &dir);
        cmd.current_dir(&*dir).env("SSL_CERT_FILE", &real.cert).args(["run", "--env-file", env.to_str().unwrap(), "--"]).args(args);
        ok(cmd.output().unwrap())
    };
    let (route, real_url) = ("https://answer.example.test/", real.url());
    let both = [route, real_url.as_str()];
    for url in both {
        let expected = if url == route { "route answer" } else { "real server" };
        assert_eq!(run(&["wget", "-qO-", url]), expected, "wget {url}");
        assert_eq!(run(&["wget2", "-qO-", url]), expected, "wget2 {url}");
        let pycurl = "import io, pycurl, sys\nb = io.BytesIO(); c = pycurl.Curl(); c.setopt(c.URL, sys.argv[1]); c.setopt(c.WRITEDATA, b); c.perform(); print(b.getvalue().decode(), end='')";
        assert_eq!(run(&["python3", "-c", pycurl, url]), expected, "pycurl {url}");
        let php = "$c = curl_init($argv[1]); curl_setopt($c, CURLOPT_RETURNTRANSFER, true); $r = curl_exec($c); echo $r === false ? curl_error($c) : $r;";
        assert_eq!(run(&["php", "-r", php, url]), expected, "php {url}");
        let perl =
            "use LWP::UserAgent; my $r = LWP::UserAgent->new->get($ARGV[0]); print $r->is_success ? $r->decoded_content : $r->status_line;";
        assert_eq!(run(&["perl", "-e", perl, url]), expected, "perl {url}");
        let registry = if url == route { "https://registry.example.test/".to_string() } else { real_url.clone() };
        assert_eq!(run(&["npm", "view", "demo-pkg", "version", "--registry", &registry]), "1.2.3\n", "npm view from {registry}");
    }
    let java = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/java/Clients.java");
    let java = java.to_str().unwrap();
    assert_eq!(run(&["java", java, route, &real_url]), "HttpClient 200 route answer\nHttpURLConnection 200 real server\n");
    assert_eq!(run(&["java", java, &real_url, route]), "HttpClient 200 real server\nHttpURLConnection 200 route answer\n");
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

/// `sed -i`, `cp` and `tee -a` of the system bundle under `intercept run`
/// act on the real file, while wget (GnuTLS, which reads that path) still
/// verifies a route: in a private mount namespace over a copy of
/// /etc/ssl/certs, so the machine's own is never touched.
#[test]
fn editing_the_system_bundle_acts_on_the_real_file() {
    need("unshare", "util-linux");
    need("wget", "wget");
    let (dir, env) = setup("bundle-edit");
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    let script = format!(
        r##"set -e
mount --make-rprivate /
copy={dir}/certs; mkdir -p $copy; cp -a /etc/ssl/certs/. $copy/; mount --bind $copy /etc/ssl/certs
sha256sum < {bundle} > {dir}/before
{bin} run --env-file {env} -- sh -c 'sed -i s/a/a/ {bundle}; cp {bundle} {dir}/copied; printf "# appended\n" | tee -a {bundle} > /dev/null; grep -c "# appended" {bundle}; wget -q -O - https://secure.example.test/ | grep -c "scheme.: .https"'
sha256sum < {dir}/copied > {dir}/after-copy
cp {bundle} {dir}/edited
"##,
        dir = dir.display(),
        bin = intercept_bin().display(),
        env = env.display(),
    );
    let mut cmd = command("unshare", &dir);
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        cmd.arg("-r");
    }
    let out = cmd.args(["-m", "sh", "-c", &script]).output().unwrap();
    assert_eq!(ok(out), "1\n1\n");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("before"), read("after-copy"), "sed -i or cp saw our bundle");
    let original = std::fs::read_to_string(bundle).unwrap();
    assert_eq!(read("edited"), format!("{original}# appended\n"), "the edit wrote our CA into the file");
}
