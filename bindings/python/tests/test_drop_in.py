"""What suites written for wsgi_intercept rely on, with real clients in
this process (http.client, urllib, requests, urllib3, httplib2, httpx,
aiohttp): a name stops resolving once its routes are removed; a kept-alive
connection reaches the app installed now, and fails once its route is
gone; an app's exception is raised in the client's call; interceptors
with no host; a proxy set inside a test."""

import asyncio
import http.client
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import aiohttp
import httplib2
import httpx
import pytest
import requests
import urllib3

import wsgi_intercept
from intercept_wsgi import WSGIAppError, add_wsgi_intercept, remove_wsgi_intercept
from wsgi_intercept import interceptor, requests_intercept, urllib3_intercept, urllib_intercept


def saying(text):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text.encode()]

    return lambda: app


def broken(environ, start_response):
    raise ValueError("the app broke")


# Each client GETs a URL and returns the body's text, raising as it raises.
def http_client(url):
    parts = urlsplit(url)
    c = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=5)
    c.request("GET", parts.path or "/")
    return c.getresponse().read().decode()


def urllib_(url):
    return urllib.request.urlopen(url, timeout=5).read().decode()


def requests_(url):
    return requests.get(url, timeout=5).text


def urllib3_(url):
    return urllib3.PoolManager().request("GET", url, retries=False).data.decode()


def httplib2_(url):
    return httplib2.Http(timeout=5).request(url)[1].decode()


def httpx_(url):
    return httpx.get(url).text


def aiohttp_(url):
    async def get():
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as r:
                r.raise_for_status()
                return await r.text()

    return asyncio.run(get())


SYNC = [http_client, urllib_, requests_, urllib3_, httplib2_, httpx_]
# How each says that a name does not resolve.
UNRESOLVED = {
    http_client: socket.gaierror,
    urllib_: urllib.error.URLError,
    requests_: requests.ConnectionError,
    urllib3_: urllib3.exceptions.NameResolutionError,
    httplib2_: httplib2.ServerNotFoundError,
    httpx_: httpx.ConnectError,
    aiohttp_: aiohttp.ClientConnectorError,
}


def host_for(get, topic):
    return f"{topic}-{get.__name__.strip('_').replace('_', '-')}.test"


@pytest.mark.parametrize("get", SYNC + [aiohttp_])
def test_a_removed_route_stops_resolving(get):
    host = host_for(get, "inout")
    add_wsgi_intercept(host, 80, saying("in"))
    assert get(f"http://{host}/") == "in"
    assert remove_wsgi_intercept(host, 80) == 1
    with pytest.raises(UNRESOLVED[get]) as caught:
        get(f"http://{host}/")
    assert "Name or service not known" in repr(caught.value) + repr(caught.value.__context__) + str(getattr(caught.value, "reason", ""))


def test_a_pooled_connection_reaches_the_app_installed_now_and_fails_once_its_route_is_gone():
    url = "http://pool.test/"
    add_wsgi_intercept("pool.test", 80, saying("first"))
    pool = urllib3.PoolManager()
    session = requests.Session()
    client = httpx.Client()
    try:
        assert (pool.request("GET", url).data, session.get(url).text, client.get(url).text) == (b"first", "first", "first")
        remove_wsgi_intercept("pool.test", 80)
        add_wsgi_intercept("pool.test", 80, saying("second"))
        assert (pool.request("GET", url).data, session.get(url).text, client.get(url).text) == (b"second", "second", "second")
        # The same kept-alive connections answered both.
        assert pool.connection_from_url(url).num_connections == 1
        remove_wsgi_intercept("pool.test", 80)
        with pytest.raises(urllib3.exceptions.ProtocolError):
            pool.request("GET", url, retries=False)
        with pytest.raises(requests.ConnectionError):
            session.get(url)
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(url)
    finally:
        session.close()
        client.close()


@pytest.mark.parametrize("get", SYNC)
def test_an_app_error_is_raised_in_the_clients_call(get):
    host = host_for(get, "broken")
    add_wsgi_intercept(host, 80, lambda: broken)
    try:
        with pytest.raises(WSGIAppError) as caught:
            get(f"http://{host}/")
        assert isinstance(caught.value.error, ValueError) and caught.value.exception_info[0] is ValueError
        assert str(caught.value).startswith("ValueError('the app broke') at ")
        # The client goes on working.
        add_wsgi_intercept(host, 81, saying("fine"))
        assert get(f"http://{host}:81/") == "fine"
    finally:
        remove_wsgi_intercept(host, 80)
        remove_wsgi_intercept(host, 81)


def test_an_app_error_is_a_500_to_an_event_loop(capfd):
    # An event loop's thread is never interrupted: its client gets the 500,
    # and the traceback goes to wsgi.errors.
    add_wsgi_intercept("broken-loop.test", 80, lambda: broken)
    try:
        with pytest.raises(aiohttp.ClientResponseError) as caught:
            aiohttp_("http://broken-loop.test/")
        assert caught.value.status == 500
        err = capfd.readouterr().err
        assert "ValueError: the app broke" in err and "Traceback" in err
    finally:
        remove_wsgi_intercept("broken-loop.test", 80)


def test_interceptors_without_a_host_make_one_up():
    with interceptor.RequestsInterceptor(saying("anonymous")) as url:
        parts = urlsplit(url)
        assert (parts.scheme, parts.path, parts.port) == ("http", "", None) and len(parts.hostname) == 36
        assert requests.get(url).text == "anonymous"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)


def test_nested_interceptors_on_one_host_with_two_ports():
    pool = urllib3.PoolManager()
    with interceptor.Urllib3Interceptor(saying("outer"), url="http://nested.test:9998") as outer:
        with interceptor.Urllib3Interceptor(saying("inner"), url="http://nested.test:9999") as inner:
            assert (pool.request("GET", outer).data, pool.request("GET", inner).data) == (b"outer", b"inner")
        assert pool.request("GET", outer).data == b"outer"
        with pytest.raises(urllib3.exceptions.HTTPError):
            pool.request("GET", inner, retries=False)
    with pytest.raises(urllib3.exceptions.HTTPError):
        pool.request("GET", outer, retries=False)
    assert wsgi_intercept.remove_wsgi_intercept() == 0


def test_a_proxy_set_inside_a_test_does_not_take_routed_hosts_away(monkeypatch):
    # A proxy nobody listens on: a request that went there would fail.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    add_wsgi_intercept("proxied.test", 80, saying("direct"))
    try:
        for get in (requests_, httpx_, httplib2_, urllib_):
            assert get("http://proxied.test/") == "direct", get.__name__
        # As wsgi_intercept's, these modules refuse to install with a proxy set.
        for module in (requests_intercept, urllib3_intercept, urllib_intercept):
            with pytest.raises(RuntimeError, match="http_proxy or https_proxy set in environment"):
                module.install()
    finally:
        remove_wsgi_intercept("proxied.test", 80)


def test_the_intercept_fixture_adds_for_one_test(intercept):
    intercept.add("http://fixture.test/api", saying("from the fixture")())
    assert requests_("http://fixture.test/api/x") == "from the fixture"
    intercept.add_route("http://fixture-echo.test", "echo")
    assert httpx.get("http://fixture-echo.test/e?q=1").json()["query"] == "q=1"
    intercept.add_stub("http://fixture-stub.test", {"request": {"url": "/s"}, "response": {"status": 201, "body": "stubbed"}})
    r = requests.get("http://fixture-stub.test/s")
    assert (r.status_code, r.text) == (201, "stubbed")


def test_what_the_fixture_added_is_gone_after_its_test():
    for host in ("fixture.test", "fixture-echo.test", "fixture-stub.test"):
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo(host, 80)


def test_plain_pytest_starts_itself_again_under_the_shim(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(__file__).resolve().parents[3] / "target" / "release" / "intercept"
    assert cli.is_file(), f"{cli} is missing: `make test` builds it"
    (tmp_path / "test_inner.py").write_text(
        "import urllib.request\n\n"
        "def test_inner(intercept):\n"
        "    intercept.add_route('http://inner.test', 'static:200 inner')\n"
        "    assert urllib.request.urlopen('http://inner.test/').read() == b'inner'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("INTERCEPT_")}
    env.update(INTERCEPT_BIN=str(cli), HOME=str(tmp_path), INTERCEPT_CA_DIR=str(tmp_path / "ca"), PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
    assert run.stderr.count("intercept: pytest started without the shim; running it again under") == 1, run.stderr
