"""WSGI apps in place of real hosts, for every Python HTTP client.

The seed's API -- ``add_wsgi_intercept(host, port, app_create_fn,
script_name='')`` and ``remove_wsgi_intercept(host, port)`` -- served by
``libintercept.so`` below Python: no client library is patched, so
http.client, urllib, requests, urllib3, httplib2, httpx, aiohttp and even
subprocesses are all intercepted alike. The process must run under the shim::

    intercept run -- pytest
"""

import ctypes
import os
import sys
import threading
import traceback
from urllib.parse import urlsplit

from intercept_wsgi.wsgi import environ_for, run_wsgi

__all__ = ["add_wsgi_intercept", "remove_wsgi_intercept", "intercepted", "NotPreloaded"]


class NotPreloaded(RuntimeError):
    """libintercept.so is not preloaded into this process."""


# ---- the C ABI of include/intercept.h ------------------------------------

class _Header(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("value", ctypes.c_char_p)]


_READ = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t)


class _Request(ctypes.Structure):
    _fields_ = [
        ("method", ctypes.c_char_p), ("scheme", ctypes.c_char_p), ("host", ctypes.c_char_p), ("port", ctypes.c_uint16),
        ("target", ctypes.c_char_p), ("script_name", ctypes.c_char_p), ("path_info", ctypes.c_char_p),
        ("query", ctypes.c_char_p), ("headers", ctypes.POINTER(_Header)), ("header_count", ctypes.c_size_t),
        ("read_body", _READ), ("body", ctypes.c_void_p),
    ]


_STATUS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint16)
_ADD_HEADER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
_WRITE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t)


class _Response(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("set_status", _STATUS), ("add_header", _ADD_HEADER), ("write", _WRITE)]


_HANDLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(_Request), ctypes.POINTER(_Response))


class _App(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("state", ctypes.c_void_p), ("handle", _HANDLE), ("destroy", ctypes.c_void_p)]


_CREATE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_App))

_lib = None
_lock = threading.Lock()
# (host, port) -> [callbacks...]: ctypes callbacks must outlive their use.
_registry = {}


def _library():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(None)  # the process's global symbols, preloaded ones first
        if not hasattr(lib, "intercept_is_preloaded") or not lib.intercept_is_preloaded():
            raise NotPreloaded(
                "libintercept.so is not preloaded into this process; start it under the shim, "
                "for example: intercept run -- pytest"
            )
        lib.intercept_add_app.argtypes = [ctypes.c_char_p, _CREATE]
        lib.intercept_remove_routes.argtypes = [ctypes.c_char_p, ctypes.c_uint16]
        lib.intercept_last_error.restype = ctypes.c_char_p
        _lib = lib
    return _lib


# ---- WSGI over the ABI ---------------------------------------------------

class _Input:
    """wsgi.input: the request body, read from the dispatcher as asked."""

    def __init__(self, request):
        self._request = request
        self._done = False
        self._buffer = b""

    def _pull(self, size):
        if self._done:
            return b""
        buf = ctypes.create_string_buffer(size)
        n = self._request.read_body(self._request.body, buf, size)
        if n < 0:
            raise IOError("the request body could not be read")
        if n == 0:
            self._done = True
        return buf.raw[:n]

    def read(self, size=-1):
        if size is None or size < 0:
            chunks = [self._buffer]
            self._buffer = b""
            while True:
                chunk = self._pull(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        while len(self._buffer) < size:
            chunk = self._pull(max(size - len(self._buffer), 8192))
            if not chunk:
                break
            self._buffer += chunk
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def readline(self, size=-1):
        while b"\n" not in self._buffer and (size is None or size < 0 or len(self._buffer) < size):
            chunk = self._pull(8192)
            if not chunk:
                break
            self._buffer += chunk
        end = self._buffer.find(b"\n") + 1 or len(self._buffer)
        if size is not None and size >= 0:
            end = min(end, size)
        out, self._buffer = self._buffer[:end], self._buffer[end:]
        return out

    def readlines(self, hint=-1):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")


def _environ(request, script_name):
    r = request
    text = lambda b: (b or b"").decode("latin-1")
    headers = [(text(r.headers[i].name), text(r.headers[i].value)) for i in range(r.header_count)]
    return environ_for(text(r.method), text(r.scheme), text(r.host), r.port, text(r.target), script_name,
                       text(r.query), headers, _Input(r), multiprocess=False)


def _make_handler(app_create_fn, script_name):
    app_box = []

    @_HANDLE
    def handle(_state, req, resp):
        request, out = req.contents, resp.contents
        try:
            if not app_box:
                app_box.append(app_create_fn())
            environ = _environ(request, script_name)

            def send_head(status, headers):
                out.set_status(out.ctx, int(status.split(None, 1)[0]))
                for name, value in headers:
                    out.add_header(out.ctx, name.encode("latin-1"), value.encode("latin-1"))

            def send_body(data):
                if out.write(out.ctx, data, len(data)) != 0:
                    raise IOError("the response could not be written")

            run_wsgi(app_box[0], environ, send_head, send_body)
            return 0
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            return 1

    return handle


# ---- the seed's API --------------------------------------------------------

def add_wsgi_intercept(host, port, app_create_fn, script_name=""):
    """Serve ``app_create_fn()`` (called once, on first use) in place of
    host:port. Port 443 is served over https."""
    lib = _library()
    port = int(port)
    scheme = "https" if port == 443 else "http"
    script_name = script_name.rstrip("/")
    handle = _make_handler(app_create_fn, script_name)

    @_CREATE
    def create(app):
        app.contents.abi_version = 1
        app.contents.handle = handle
        return 0

    url = f"{scheme}://{host}:{port}{script_name}".encode()
    with _lock:
        if lib.intercept_add_app(url, create) != 0:
            raise ValueError(lib.intercept_last_error().decode())
        _registry.setdefault((host.lower(), port), []).append((create, handle))
    _bypass_proxies(host)


def _bypass_proxies(host):
    """Adds host to NO_PROXY and no_proxy in os.environ (Python's own copy,
    which requests and urllib read), keeping what is there; the shim does
    the same in the C environment."""
    entries = []
    for value in (os.environ.get("NO_PROXY", ""), os.environ.get("no_proxy", ""), host):
        for entry in value.split(","):
            entry = entry.strip()
            if entry and entry.lower() not in (e.lower() for e in entries):
                entries.append(entry)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = ",".join(entries)


def remove_wsgi_intercept(host, port):
    """Remove the apps on host:port; returns how many were removed."""
    lib = _library()
    port = int(port)
    with _lock:
        count = lib.intercept_remove_routes(host.encode(), port)
        # Callbacks stay referenced: a connection opened before may still use them.
        return max(count, 0)


class intercepted:
    """``with intercepted(app, url="https://api.test/v1"):`` or with
    ``host=``/``port=``: an app (not a create function) in place of a host
    for the block."""

    def __init__(self, app, host=None, port=None, url=None, script_name=""):
        if url:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            script_name = parts.path.rstrip("/")
        self.app, self.host, self.port, self.script_name = app, host, int(port or 80), script_name

    def __enter__(self):
        add_wsgi_intercept(self.host, self.port, lambda: self.app, self.script_name)
        return self

    def __exit__(self, *exc):
        remove_wsgi_intercept(self.host, self.port)
        return False
