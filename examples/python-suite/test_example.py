"""A small suite as a Python user writes one, run with plain `pytest`: the
package's plugin starts pytest again under the shim, and the `intercept`
fixture puts apps in place of hosts for one test at a time. Only the
standard library's urllib talks HTTP here; every other client is
intercepted the same way."""

import json
import socket
import urllib.request

import pytest

from wsgi_intercept.interceptor import UrllibInterceptor


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {environ['PATH_INFO']} over {environ['wsgi.url_scheme']}".encode()]


def get(url):
    return urllib.request.urlopen(url, timeout=5).read().decode()


def test_a_wsgi_app_in_place_of_a_host(intercept):
    intercept.add("http://api.example.test/v1", hello)
    assert get("http://api.example.test/v1/items") == "hello /items over http"


def test_https_is_verified_with_no_flag(intercept):
    intercept.add("https://secure.example.test", hello)
    assert get("https://secure.example.test/s") == "hello /s over https"


def test_any_app_and_wiremock_stubs(intercept):
    intercept.add_route("http://echo.example.test", "echo")
    assert json.loads(get("http://echo.example.test/x?y=1"))["query"] == "y=1"
    intercept.add_stub("http://stub.example.test", {"request": {"method": "GET", "url": "/ping"}, "response": {"status": 200, "body": "pong"}})
    intercept.add_stub("http://stub.example.test", {"request": {"method": "GET", "url": "/ding"}, "response": {"status": 200, "body": "dong"}})
    assert (get("http://stub.example.test/ping"), get("http://stub.example.test/ding")) == ("pong", "dong")


def test_what_a_test_added_is_gone_after_it():
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("api.example.test", 80)


def test_wsgi_intercepts_own_api():
    with UrllibInterceptor(lambda: hello, host="legacy.example.test") as url:
        assert get(url + "/old") == "hello /old over http"
