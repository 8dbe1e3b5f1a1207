"""intercept_wsgi and the wsgi_intercept drop-in, driven by real Python
clients in this process (which runs under `intercept run`)."""

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import http.client
import httplib2
import httpx
import pytest
import requests
import urllib3

from intercept_wsgi import NotPreloaded, WSGIAppError, add_wsgi_intercept, intercepted, remove_wsgi_intercept
from wsgi_intercept import interceptor, requests_intercept, urllib3_intercept, http_client_intercept, httplib2_intercept, urllib_intercept

HERE = Path(__file__).resolve().parent


def environ_app(environ, start_response):
    """Answers with the environ as JSON (the values that are JSON-able)."""
    body = environ["wsgi.input"].read()
    shown = {k: v for k, v in environ.items() if isinstance(v, (str, int, bool, tuple))}
    shown["body"] = body.decode("latin-1")
    shown["errors_is_stderr"] = environ["wsgi.errors"] is sys.stderr
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(shown).encode()]


@pytest.fixture
def site():
    add_wsgi_intercept("env.example.test", 80, lambda: environ_app)
    yield "http://env.example.test"
    remove_wsgi_intercept("env.example.test", 80)


def test_environ_keys(site):
    r = requests.post(site + "/a%20b/c%E9?x=1&y=2", data=b"body bytes", headers={"X-Custom": "one", "Content-Type": "text/x-test"})
    e = r.json()
    assert e["REQUEST_METHOD"] == "POST"
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/a b/c\xe9"  # unquoted, latin-1
    assert e["QUERY_STRING"] == "x=1&y=2"
    assert e["REQUEST_URI"] == e["RAW_URI"] == "/a%20b/c%E9?x=1&y=2"
    assert e["CONTENT_TYPE"] == "text/x-test"
    assert e["CONTENT_LENGTH"] == "10"
    assert (e["SERVER_NAME"], e["SERVER_PORT"], e["SERVER_PROTOCOL"]) == ("env.example.test", "80", "HTTP/1.1")
    assert e["HTTP_X_CUSTOM"] == "one" and "HTTP_CONTENT_TYPE" not in e
    assert e["body"] == "body bytes"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.version"] == [1, 0]
    assert (e["wsgi.multithread"], e["wsgi.multiprocess"], e["wsgi.run_once"]) == (True, False, False)
    assert e["errors_is_stderr"] is True


def test_script_name_mounting():
    add_wsgi_intercept("mount.example.test", 80, lambda: environ_app, script_name="/api/")
    try:
        e = requests.get("http://mount.example.test/api/v1/items").json()
        assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/api", "/v1/items")
        assert requests.get("http://mount.example.test/other").status_code == 404
    finally:
        assert remove_wsgi_intercept("mount.example.test", 80) == 1


def test_https_routes():
    add_wsgi_intercept("secure.example.test", 443, lambda: environ_app)
    try:
        e = requests.get("https://secure.example.test/s").json()
        assert e["wsgi.url_scheme"] == "https" and e["PATH_INFO"] == "/s"
        assert json.loads(urllib.request.urlopen("https://secure.example.test/u").read())["wsgi.url_scheme"] == "https"
    finally:
        remove_wsgi_intercept("secure.example.test", 443)


def test_streaming_input_read_in_pieces():
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        first_line = stream.readline()
        pieces = [stream.read(3), stream.read(3)]
        rest = stream.read()
        start_response("200 OK", [])
        return [b"|".join([first_line.strip(), *pieces, str(len(rest)).encode()])]

    with intercepted(app, host="input.example.test", port=80):
        body = b"line one\nabcdef" + b"z" * 300_000
        assert requests.post("http://input.example.test/", data=body).content == b"line one|abc|def|300000"


class Closing:
    closed = []

    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        Closing.closed.append(True)


def shapes_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/list":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a", b"b", b"c"]
    if path == "/generator":
        start_response("201 Created", [])
        return (bytes([c]) for c in b"xyz")
    if path == "/empty-first":
        start_response("200 OK", [])
        return [b"", b"after empty"]
    if path == "/write":
        write = start_response("200 OK", [])
        write(b"written, ")
        return [b"then returned"]
    if path == "/late-header":
        headers = []
        start_response("200 OK", headers)
        headers.append(("X-Late", "appended"))
        return [b"late"]
    if path == "/close":
        start_response("200 OK", [])
        return Closing([b"closing"])
    if path == "/exc-info":
        try:
            raise ValueError("first try")
        except ValueError:
            start_response("200 OK", [])
            start_response("503 Service Unavailable", [("X-Recovered", "yes")], sys.exc_info())
        return [b"recovered"]
    if path == "/raise":
        raise RuntimeError("the app broke")
    if path == "/raise-in-iter":
        start_response("200 OK", [])

        def gen():
            yield b"partial"
            raise RuntimeError("broke mid-body")
        return Closing(gen())
    start_response("404 Not Found", [])
    return [b"?"]


@pytest.fixture
def shapes():
    add_wsgi_intercept("shapes.example.test", 80, lambda: shapes_app)
    yield "http://shapes.example.test"
    remove_wsgi_intercept("shapes.example.test", 80)


def test_response_shapes(shapes):
    assert requests.get(shapes + "/list").text == "abc"
    r = requests.get(shapes + "/generator")
    assert (r.status_code, r.text) == (201, "xyz")
    assert requests.get(shapes + "/empty-first").text == "after empty"
    assert requests.get(shapes + "/write").text == "written, then returned"
    r = requests.get(shapes + "/late-header")
    assert (r.headers["X-Late"], r.text) == ("appended", "late")
    Closing.closed.clear()
    assert requests.get(shapes + "/close").text == "closing"
    assert Closing.closed == [True]
    r = requests.get(shapes + "/exc-info")
    assert (r.status_code, r.headers["X-Recovered"], r.text) == (503, "yes", "recovered")


def test_a_raising_app_is_raised_in_the_client_and_its_iterable_is_closed(shapes):
    with pytest.raises(WSGIAppError) as caught:
        requests.get(shapes + "/raise")
    assert isinstance(caught.value.error, RuntimeError) and str(caught.value.error) == "the app broke"
    Closing.closed.clear()
    with pytest.raises(WSGIAppError, match="broke mid-body"):
        requests.get(shapes + "/raise-in-iter")
    assert Closing.closed == [True]


def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ['PATH_INFO']} via {environ.get('HTTP_USER_AGENT', '?').split('/')[0]}".encode()]


@pytest.fixture
def hello():
    add_wsgi_intercept("clients.example.test", 8080, lambda: hello_app)
    yield "http://clients.example.test:8080"
    remove_wsgi_intercept("clients.example.test", 8080)


def test_http_client(hello):
    c = http.client.HTTPConnection("clients.example.test", 8080)
    c.request("GET", "/hc", headers={"User-Agent": "http.client/1"})
    assert c.getresponse().read() == b"hello /hc via http.client"


def test_urllib(hello):
    req = urllib.request.Request(hello + "/ul", headers={"User-Agent": "urllib/1"})
    assert urllib.request.urlopen(req).read() == b"hello /ul via urllib"


def test_requests(hello):
    assert requests.get(hello + "/rq").text == "hello /rq via python-requests"


def test_urllib3(hello):
    assert urllib3.PoolManager().request("GET", hello + "/u3", headers={"User-Agent": "urllib3/2"}).data == b"hello /u3 via urllib3"


def test_httplib2(hello):
    _, body = httplib2.Http().request(hello + "/h2", headers={"User-Agent": "httplib2/1"})
    assert body == b"hello /h2 via httplib2"


def test_httpx(hello):
    assert httpx.get(hello + "/hx").text == "hello /hx via python-httpx"


def test_aiohttp(hello):
    async def fetch():
        async with aiohttp.ClientSession() as s:
            async with s.get(hello + "/ai") as r:
                return await r.text()

    assert asyncio.run(fetch()) == "hello /ai via Python"


def test_removed_routes_pass_through_and_fail_to_resolve():
    add_wsgi_intercept("gone.example.test", 80, lambda: hello_app)
    assert requests.get("http://gone.example.test/x").status_code == 200
    assert remove_wsgi_intercept("gone.example.test", 80) == 1
    with pytest.raises(requests.ConnectionError):
        requests.get("http://gone.example.test/x", timeout=5)


def test_interceptor_context_managers_with_url():
    for cls in (interceptor.RequestsInterceptor, interceptor.Urllib3Interceptor, interceptor.HttpClientInterceptor,
                interceptor.Httplib2Interceptor, interceptor.UrllibInterceptor):
        with cls(lambda: environ_app, url="https://ctx.example.test/prefix") as url:
            assert url == "https://ctx.example.test/prefix"
            e = requests.get(url + "/inner").json()
            assert (e["SCRIPT_NAME"], e["PATH_INFO"], e["wsgi.url_scheme"]) == ("/prefix", "/inner", "https")
        with pytest.raises(requests.ConnectionError):
            requests.get("https://ctx.example.test/prefix/inner", timeout=5)
    with interceptor.RequestsInterceptor(lambda: hello_app, host="hp.example.test", port=8081) as url:
        # As wsgi_intercept makes it: no trailing slash.
        assert url == "http://hp.example.test:8081"
        assert requests.get(url + "/x").text == "hello /x via python-requests"


def test_install_then_add_wsgi_intercept():
    import wsgi_intercept
    for module in (requests_intercept, urllib3_intercept, http_client_intercept, httplib2_intercept, urllib_intercept):
        module.install()
    wsgi_intercept.add_wsgi_intercept("legacy.example.test", 80, lambda: hello_app)
    try:
        assert requests.get("http://legacy.example.test/l").text == "hello /l via python-requests"
        c = http.client.HTTPConnection("legacy.example.test")
        c.request("GET", "/c")
        assert c.getresponse().read().startswith(b"hello /c via")
    finally:
        # As wsgi_intercept counts: how many remain.
        assert wsgi_intercept.remove_wsgi_intercept("legacy.example.test", 80) == 0
        for module in (requests_intercept, urllib3_intercept, http_client_intercept, httplib2_intercept, urllib_intercept):
            module.uninstall()


def test_without_the_shim_the_error_says_how_to_start():
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("INTERCEPT_")}
    code = "import intercept_wsgi\ntry:\n    intercept_wsgi.add_wsgi_intercept('x.test', 80, lambda: None)\nexcept intercept_wsgi.NotPreloaded as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "intercept run -- pytest" in out


def wsgi_route_env():
    env = dict(os.environ)
    env["INTERCEPT_ROUTE_FLASK"] = "http://flask.example.test/app -> wsgi:flask_app:app"
    env["INTERCEPT_PYTHON"] = sys.executable
    return env


def test_flask_through_a_wsgi_route_to_curl():
    assert shutil.which("curl"), "curl is missing: install the Debian package curl"
    out = subprocess.run(["curl", "-sS", "-d", "from curl", "http://flask.example.test/app/hello/curl"],
                         env=wsgi_route_env(), cwd=HERE, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"hello": "curl", "method": "POST", "body": "from curl", "script_root": "/app", "scheme": "http"}


def test_flask_through_a_wsgi_route_to_node():
    assert shutil.which("node"), "node is missing: install the Debian package nodejs"
    script = 'fetch("http://flask.example.test/app/hello/node").then(r => r.json()).then(v => console.log(JSON.stringify(v)))'
    out = subprocess.run(["node", "-e", script], env=wsgi_route_env(), cwd=HERE, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == {"hello": "node", "method": "GET", "body": "", "script_root": "/app", "scheme": "http"}


def test_a_crashed_worker_gives_502_and_is_started_again(tmp_path):
    (tmp_path / "crashy.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    if environ['PATH_INFO'] == '/die':\n"
        "        os._exit(3)\n"
        "    start_response('200 OK', [])\n"
        "    return [str(os.getpid()).encode()]\n"
    )
    env = dict(os.environ, INTERCEPT_ROUTE_C="http://crashy.example.test -> wsgi:crashy:app", INTERCEPT_PYTHON=sys.executable)
    script = (
        "import urllib.request, urllib.error\n"
        "get = lambda p: urllib.request.urlopen('http://crashy.example.test' + p).read().decode()\n"
        "first = get('/pid')\n"
        "try:\n    get('/die')\nexcept urllib.error.HTTPError as e:\n    print(e.code)\n"
        "second = get('/pid')\n"
        "print(first != second, first.isdigit() and second.isdigit())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out == "502\nTrue True\n"
