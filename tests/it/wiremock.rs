//! One mock state for the whole run, and WireMock itself as the measure: a
//! scenario and a HAR's answer order carried across processes of one
//! `intercept run`, WireMock's own Python client driving the admin API,
//! WireMock 3's matchers with a hit and a near miss each, and the real
//! WireMock standalone answering the same mapping files side by side.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::stubs::{EVERY_MATCHER, wiremock_dir};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// The WireMock 3 features of tests/fixtures/wiremock3.json: each case's
/// curl arguments (the path last) for a hit, then for a near miss.
const WIREMOCK3: [(&str, &[&str], &[&str]); 6] = [
    ("urlPathTemplate 12345/99 contacts", &["/contacts/12345/addresses/99"], &["/contacts/12346/addresses/99"]),
    (
        "equalToXml",
        &["--data-binary", "<order> <qty>2</qty><item>tea</item> </order>", "/xml"],
        &["--data-binary", "<order><item>tea</item><qty>3</qty></order>", "/xml"],
    ),
    (
        "matchesXPath",
        &[
            "--data-binary",
            r#"<todo-list xmlns:t="urn:todo"><todo-item><t:item>wash</t:item></todo-item><todo-item/></todo-list>"#,
            "/xpath",
        ],
        &[
            "--data-binary",
            r#"<todo-list xmlns:t="urn:todo"><todo-item><t:item>dry</t:item></todo-item><todo-item/></todo-list>"#,
            "/xpath",
        ],
    ),
    ("hasExactly", &["/exactly?id=2&id=1"], &["/exactly?id=1&id=2&id=3"]),
    ("includes", &["-H", "X-Tag: green", "-H", "X-Tag: blue", "-H", "X-Tag: red", "/includes"], &["-H", "X-Tag: green", "/includes"]),
    ("formParameters", &["-d", "user=ann&token=abc123", "/form"], &["-d", "user=ann&token=abc", "/form"]),
];

/// The helpers' mapping: one request, every helper's answer in one body.
const HELPERS: &[&str] = &["--data-binary", r#"{"name":"tea","items":[1,2,3],"code":"x456"}"#, "/helpers"];

/// A stubs directory holding the given fixtures as its mappings.
fn stubs_of(name: &str, fixtures: &[&str]) -> (TempDir, Env) {
    let dir = temp_dir(name);
    std::fs::create_dir_all(dir.join("stubs/mappings")).unwrap();
    std::fs::create_dir_all(dir.join("stubs/__files")).unwrap();
    for f in fixtures {
        std::fs::copy(fixture(f), dir.join("stubs/mappings").join(f)).unwrap();
    }
    let env = env_file(&dir, "INTERCEPT_ROUTE_S=http://m.example.test -> stubs:stubs\nINTERCEPT_LOG=off\n");
    (dir, env)
}

/// `curl -sS -i` of one case (its path last) against `base`, run by `run`.
fn curl_i(run: &dyn Fn(&[&str]) -> String, base: &str, args: &[&str]) -> String {
    let (path, options) = args.split_last().unwrap();
    let url = format!("{base}{path}");
    run(&[&["curl", "-sS", "-i"][..], options, &[url.as_str()]].concat())
}

/// Status, the headers a mapping sets, and body, from `curl -i`'s output.
fn answer(raw: &str) -> (String, Vec<String>, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {raw:?}"));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().to_string();
    let set: Vec<String> = lines.filter(|l| l.starts_with("Content-Type:") || l.starts_with("X-")).map(str::to_string).collect();
    (status, set, body.to_string())
}

#[test]
fn wiremock3_matchers_hit_and_refuse_a_near_miss_through_curl() {
    need("curl", "curl");
    let (_dir, env) = stubs_of("wm3-features", &["wiremock3.json"]);
    let run = |cmd: &[&str]| ok(run_with(&env, cmd));
    for (name, hit, miss) in WIREMOCK3 {
        assert_eq!(answer(&curl_i(&run, "http://m.example.test", hit)).2, name, "{name}");
        let (status, _, body) = answer(&curl_i(&run, "http://m.example.test", miss));
        let closest = name.split(' ').next().unwrap();
        assert!(status == "404" && body.contains(&format!("Closest stub: {closest} ")), "{name}: {status} {body}");
    }
    let (status, headers, body) = answer(&curl_i(&run, "http://m.example.test", HELPERS));
    assert_eq!((status.as_str(), headers), ("201", vec!["Content-Type: text/plain".to_string(), "X-Total: 42".to_string()]));
    assert!(
        body.starts_with(
            "helpers TEA 3 3 Wed, 14 Jul 2021 1;2;3; a-b Hello World 00042 aW50ZXJjZXB0 a+b%26c 456 cd {\n  \"k\" : [ 1, 2 ]\n}"
        ),
        "{body}"
    );
}

/// The real WireMock standalone (npm's `wiremock` ships its jar), on
/// loopback, stopped when dropped.
struct WireMock {
    child: Child,
    port: u16,
}

impl WireMock {
    fn start(root: &Path) -> WireMock {
        need("java", "default-jdk-headless");
        let jar_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/node/node_modules/wiremock/build");
        let jar = std::fs::read_dir(&jar_dir)
            .ok()
            .and_then(|d| d.filter_map(Result::ok).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "jar")))
            .unwrap_or_else(|| panic!("WireMock's jar is not in {}: `npm install wiremock@3` there (`make test` does)", jar_dir.display()));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("java")
            .args(["-jar"])
            .arg(&jar)
            .args(["--port", &port.to_string(), "--bind-address", "127.0.0.1", "--disable-banner", "--root-dir"])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(90), "WireMock did not listen on {port} within 90 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        WireMock { child, port }
    }
}

impl Drop for WireMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every case of both fixtures, asked of WireMock 3 and of a `stubs:`
/// route over the same directory: the same status, the same headers the
/// mappings set and, for a hit, the same body.
#[test]
fn answers_are_wiremocks_side_by_side() {
    need("curl", "curl");
    let (dir, env) = stubs_of("wm3-side-by-side", &["wiremock3.json", "every-matcher.json"]);
    let real = WireMock::start(&dir.join("stubs"));
    let direct = |cmd: &[&str]| {
        let mut c = command(cmd[0], &dir);
        ok(c.args(&cmd[1..]).output().unwrap())
    };
    let ours = |cmd: &[&str]| ok(run_with(&env, cmd));
    let theirs_base = format!("http://127.0.0.1:{}", real.port);
    let cases: Vec<(&str, &[&str], &[&str])> = WIREMOCK3.iter().chain(EVERY_MATCHER.iter()).copied().collect();
    let mut asked = 0;
    for (name, hit, miss) in cases {
        for (args, is_hit) in [(hit, true), (miss, false)] {
            let theirs = answer(&curl_i(&direct, &theirs_base, args));
            let mine = answer(&curl_i(&ours, "http://m.example.test", args));
            assert_eq!(mine.0, theirs.0, "{name} {args:?}: status");
            if is_hit {
                assert_eq!(mine.1, theirs.1, "{name} {args:?}: headers");
                assert_eq!(mine.2, theirs.2, "{name} {args:?}: body");
            }
            asked += 1;
        }
    }
    let (theirs, mine) = (answer(&curl_i(&direct, &theirs_base, HELPERS)), answer(&curl_i(&ours, "http://m.example.test", HELPERS)));
    assert_eq!(mine, theirs, "the helpers");
    assert_eq!(asked, 2 * (WIREMOCK3.len() + EVERY_MATCHER.len()));
}

/// The to-do scenario through three curl processes and a Python one of one
/// run, then `intercept reset` and the start again.
#[test]
fn a_scenario_steps_through_the_processes_of_one_run() {
    need("curl", "curl");
    need_python_module("requests", "requests");
    let (_dir, env) = wiremock_dir("wm-run-scenario");
    let script = r#"
u=http://api.example.test/todo/items
curl -sS $u; echo
python3 -c 'import requests; print(requests.post("'$u'", data="Cancel newspaper subscription").status_code)'
curl -sS $u; echo
curl -sS $u; echo
"$INTERCEPT" reset && echo reset
curl -sS $u; echo
"#;
    let script = script.replace("\"$INTERCEPT\"", &intercept_bin().display().to_string());
    let one = "<items><item>Buy milk</item></items>";
    let two = "<items><item>Buy milk</item><item>Cancel newspaper subscription</item></items>";
    assert_eq!(ok(run_with(&env, &["sh", "-c", &script])), format!("{one}\n201\n{two}\n{two}\nreset\n{one}\n"));
}

/// Three requests for one URL that a HAR recorded three times, each from a
/// process of its own: answers 1, 2, 3, as recorded; a new run starts at 1.
#[test]
fn a_hars_answers_follow_the_recording_across_processes() {
    need("curl", "curl");
    let dir = temp_dir("wm-run-har");
    let entry = |n: u32| {
        serde_json::json!({
            "startedDateTime": format!("2026-01-01T00:00:0{n}Z"), "time": 1,
            "request": {"method": "GET", "url": "http://counter.example.test/next", "httpVersion": "HTTP/1.1", "headers": [],
                        "queryString": [], "cookies": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                         "headers": [{"name": "Content-Type", "value": "text/plain"}], "cookies": [],
                         "content": {"size": 1, "mimeType": "text/plain", "text": n.to_string()}, "redirectURL": "", "headersSize": -1, "bodySize": 1},
            "cache": {}, "timings": {"send": 0, "wait": 1, "receive": 0}
        })
    };
    let har = serde_json::json!({"log": {"version": "1.2", "creator": {"name": "test", "version": "1"}, "entries": [entry(1), entry(2), entry(3)]}});
    std::fs::write(dir.join("counter.har"), har.to_string()).unwrap();
    let env = env_file(&dir, "INTERCEPT_ROUTE_C=http://counter.example.test -> har:counter.har\nINTERCEPT_LOG=off\n");
    let three = "for i in 1 2 3; do curl -sS http://counter.example.test/next; echo; done";
    assert_eq!(ok(run_with(&env, &["sh", "-c", three])), "1\n2\n3\n");
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://counter.example.test/next"])), "1");
}

/// WireMock's own Python client sets up a stub that a later curl process
/// gets, reads the journal, and deletes and resets, all in one run.
#[test]
fn wiremocks_python_client_drives_the_admin_api() {
    need("curl", "curl");
    need_python_module("wiremock", "wiremock");
    let (_dir, env) = wiremock_dir("wm-run-admin");
    // Every script's start: the client pointed at the route's admin API.
    let prelude = "import os, sys\nfrom wiremock.constants import Config\nConfig.base_url = \"http://api.example.test/__admin\"\n";
    let setup = r#"
from wiremock.resources.mappings import Mapping, MappingRequest, MappingResponse, HttpMethods
from wiremock.resources.mappings.resource import Mappings
m = Mappings.create_mapping(Mapping(request=MappingRequest(method=HttpMethods.GET, url="/made"),
                                    response=MappingResponse(status=200, body="made at run time")))
open(os.environ["TMPDIR"] + "/made.id", "w").write(m.id)
print("created", len(Mappings.retrieve_all_mappings().mappings) > 1)
"#;
    let journal = r#"
from wiremock.resources.requests.resource import Requests
asked = Requests.get_all_received_requests()
print("asked", [r.request.url for r in asked.requests if r.request.url == "/made"])
"#;
    let teardown = r#"
from wiremock.resources.mappings.resource import Mappings
from wiremock.resources.requests.resource import Requests
if sys.argv[1] == "delete":
    Mappings.delete_mapping(open(os.environ["TMPDIR"] + "/made.id").read())
    print("deleted")
else:
    Mappings.reset_mappings()
    Requests.reset_request_journal()
    print("reset", len(Requests.get_all_received_requests().requests))
"#;
    let (setup, journal, teardown) = (format!("{prelude}{setup}"), format!("{prelude}{journal}"), format!("{prelude}{teardown}"));
    let script = format!(
        "python3 -c '{setup}'\ncurl -sS http://api.example.test/made; echo\npython3 -c '{journal}'\n\
         python3 -c '{teardown}' delete\ncurl -sS -o /dev/null -w '%{{http_code}}\\n' http://api.example.test/made\n\
         python3 -c '{setup}' >/dev/null\npython3 -c '{teardown}' reset\ncurl -sS -o /dev/null -w '%{{http_code}}\\n' http://api.example.test/made\n\
         curl -sS http://api.example.test/some/thing; echo"
    );
    let out = ok(run_with(&env, &["sh", "-c", &script]));
    assert_eq!(out, "created True\nmade at run time\nasked ['/made']\ndeleted\n404\nreset 0\n404\nHello, world!\n");
}
