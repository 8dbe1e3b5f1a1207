//! Real HTTP clients, unmodified, get the apps' bytes through the shim for
//! hosts that exist nowhere.

use crate::common::*;

const ENV: &str = "\
INTERCEPT_ROUTE_HOME=http://shop.example.test/ -> static:200 @home.txt
INTERCEPT_ROUTE_API=http://shop.example.test/api -> echo
INTERCEPT_ROUTE_ALT=http://alt.example.test:8080 -> static:201 alt port
INTERCEPT_PASSTHROUGH=deny
";

const HOME: &str = "home page from the static app\n";

fn setup(name: &str) -> Env {
    let dir = temp_dir(name);
    std::fs::write(dir.join("home.txt"), HOME).unwrap();
    env_file(&dir, ENV)
}

#[test]
fn the_names_do_not_exist_without_the_shim() {
    need("curl", "curl");
    let out = std::process::Command::new("curl").args(["-sS", "http://shop.example.test/"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "curl should fail to resolve: {}", stderr(&out));
}

#[test]
fn curl() {
    need("curl", "curl");
    let env = setup("curl");
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://shop.example.test/"])), HOME);
    let out = ok(run_with(&env, &["curl", "-sS", "-i", "http://alt.example.test:8080/x"]));
    assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nalt port"), "{out}");
    let v = json(&ok(run_with(&env, &["curl", "-sS", "--data-binary", "payload", "http://shop.example.test/api/items?q=1"])));
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body"], "payload");
    assert_eq!(v["host"], "shop.example.test");
    assert_eq!(v["port"], 80);
}

#[test]
fn curl_keeps_one_connection_for_several_urls() {
    need("curl", "curl");
    let env = setup("curl-reuse");
    let out = run_with(&env, &["curl", "-sS", "-v", "http://shop.example.test/", "http://shop.example.test/api/b"]);
    let text = ok(out.clone());
    assert!(text.starts_with(HOME), "{text}");
    assert_eq!(json(&text[HOME.len()..])["path_info"], "/b");
    assert!(stderr(&out).contains("Re-using existing connection"), "{}", stderr(&out));
}

#[test]
fn script_name_mounting() {
    need("curl", "curl");
    let env = setup("mount");
    let v = json(&ok(run_with(&env, &["curl", "-sS", "http://shop.example.test/api/v1/orders%2F7?x=1"])));
    assert_eq!(v["script_name"], "/api");
    assert_eq!(v["path_info"], "/v1/orders/7");
    assert_eq!(v["query"], "x=1");
    let v = json(&ok(run_with(&env, &["curl", "-sS", "http://shop.example.test/api"])));
    assert_eq!((v["script_name"].as_str(), v["path_info"].as_str()), (Some("/api"), Some("")));
    // /apixyz is not under /api: the site root's static app answers it.
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://shop.example.test/apixyz"])), HOME);
}

#[test]
fn outside_every_mount_is_404() {
    need("curl", "curl");
    let dir = temp_dir("mount404");
    let env = env_file(&dir, "INTERCEPT_ROUTE_API=http://only.example.test/api -> echo\n");
    let out = ok(run_with(&env, &["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://only.example.test/other"]));
    assert_eq!(out, "404");
    let v = json(&ok(run_with(&env, &["curl", "-sS", "http://only.example.test/api/x"])));
    assert_eq!(v["path_info"], "/x");
}

#[test]
fn wget() {
    need("wget", "wget");
    let env = setup("wget");
    assert_eq!(ok(run_with(&env, &["wget", "-q", "-O", "-", "http://shop.example.test/"])), HOME);
}

#[test]
fn python_urllib_http_client_and_requests() {
    need_python_module("requests", "requests");
    let env = setup("python");
    let script = r#"
import http.client, json, urllib.request, requests
print(urllib.request.urlopen("http://shop.example.test/").read().decode(), end="")
c = http.client.HTTPConnection("shop.example.test")
c.request("GET", "/api/hc?z=9", headers={"X-Test": "yes"})
r = c.getresponse()
v = json.loads(r.read())
print(r.status, v["path_info"], v["query"], [h for h in v["headers"] if h[0] == "X-Test"])
c.request("GET", "/")
print(c.getresponse().read().decode(), end="")
r = requests.put("http://alt.example.test:8080/", data=b"x")
print(r.status_code, r.text)
v = requests.post("http://shop.example.test/api/r", json={"a": 1}).json()
print(v["method"], v["body"])
"#;
    let out = ok(run_with(&env, &["python3", "-c", script]));
    assert_eq!(out, format!("{HOME}200 /hc z=9 [['X-Test', 'yes']]\n{HOME}201 alt port\nPOST {{\"a\": 1}}\n"));
}

#[test]
fn node_fetch_and_http_get() {
    need("node", "nodejs");
    let env = setup("node");
    let script = r#"
const http = require("http");
(async () => {
  const r = await fetch("http://shop.example.test/api/f?n=1", { method: "POST", body: "from fetch" });
  const v = await r.json();
  console.log(r.status, v.method, v.path_info, v.body);
  await new Promise((done) => http.get("http://shop.example.test/", (res) => {
    let body = "";
    res.on("data", (c) => body += c);
    res.on("end", () => { process.stdout.write(res.statusCode + " " + body); done(); });
  }));
})();
"#;
    let out = ok(run_with(&env, &["node", "-e", script]));
    assert_eq!(out, format!("200 POST /f from fetch\n200 {HOME}"));
}

/// With proxy variables pointing at a port where nothing listens, curl and
/// requests still reach the routes (intercept run adds them to NO_PROXY and
/// no_proxy, keeping the user's entries), and the runtime API does the same
/// for a host it adds.
#[test]
fn proxy_variables_do_not_take_routed_requests_away() {
    need("curl", "curl");
    need_python_module("requests", "requests");
    let env = setup("proxy");
    let proxy = "http://127.0.0.1:9";
    let with_proxy = |args: &[&str]| {
        let mut cmd = command(intercept_bin(), env.parent().unwrap());
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"] {
            cmd.env(key, proxy);
        }
        cmd.env("NO_PROXY", "corp.internal").env_remove("no_proxy");
        cmd.args(["run", "--env-file", env.to_str().unwrap(), "--"]).args(args).output().unwrap()
    };
    assert_eq!(ok(with_proxy(&["curl", "-sS", "http://shop.example.test/"])), HOME);
    let script = format!(
        r#"
import ctypes, os, requests
print(os.environ["no_proxy"])
print(requests.get("http://shop.example.test/").text, end="")
lib = ctypes.CDLL("{}")
assert lib.intercept_add_route(b"http://late.example.test", b"static:200 added late") == 0
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
print(libc.getenv(b"NO_PROXY") == libc.getenv(b"no_proxy"), libc.getenv(b"no_proxy").decode())
"#,
        shim().display()
    );
    let out = ok(with_proxy(&["python3", "-c", &script]));
    let hosts = "corp.internal,shop.example.test,alt.example.test";
    assert_eq!(out, format!("{hosts}\n{HOME}True {hosts},late.example.test\n"));
}

/// PHP loads its curl extension with RTLD_DEEPBIND, which used to bind
/// libcurl straight to libc: its requests are intercepted all the same, and
/// refused under `deny` like anyone else's.
#[test]
fn php_curl_is_intercepted_and_refused_in_deny() {
    need("php", "php-cli");
    let env = setup("php");
    let script = r#"
$c = curl_init($argv[1]);
curl_setopt($c, CURLOPT_RETURNTRANSFER, true);
$r = curl_exec($c);
echo $r === false ? "error: " . curl_error($c) : $r;
"#;
    let out = ok(run_with(&env, &["php", "-r", script, "http://shop.example.test/"]));
    assert_eq!(out, HOME, "is php-curl installed? (`make test` installs it)");
    let mut cmd = command(intercept_bin(), env.parent().unwrap());
    let out = cmd
        .args([
            "run",
            "--env-file",
            env.to_str().unwrap(),
            "--passthrough",
            "deny",
            "--",
            "php",
            "-r",
            script,
            "http://nowhere.example.com/",
        ])
        .output()
        .unwrap();
    assert_eq!(ok(out.clone()), "error: Could not resolve host: nowhere.example.com");
    assert!(stderr(&out).contains("refused lookup of nowhere.example.com: INTERCEPT_PASSTHROUGH=deny"), "{}", stderr(&out));
}
