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

__all__ = [
    "add_wsgi_intercept", "add_route", "remove_wsgi_intercept", "intercepted", "preloaded", "NotPreloaded", "WSGIAppError",
]


class NotPreloaded(RuntimeError):
    """libintercept.so is not preloaded into this process."""


class WSGIAppError(Exception):
    """An exception the app raised, raised again in the client's call (the
    thread of this process that opened the connection), as wsgi_intercept
    raises it: ``error`` is the app's exception, ``exception_info`` its
    ``sys.exc_info()``. Clients in other processes get a 500 instead."""

    def __init__(self, error=None, exc_info=None):
        if error is None and exc_info is None:
            error, exc_info = getattr(type(self), "_carried", (None, (None, None, None)))
        Exception.__init__(self)
        self.error = error
        self.exception_info = exc_info
        self.exception_type, self.exception_value, self.traceback = exc_info

    def __str__(self):
        if self.traceback is None:
            return repr(self.error)
        frame = traceback.extract_tb(self.traceback)[-1]
        return "{0!r} at {1}:{2}".format(self.error, frame[0], frame[1])


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
def preloaded():
    """Whether libintercept.so is preloaded into this process."""
    lib = ctypes.CDLL(None)  # the process's global symbols, preloaded ones first
    return hasattr(lib, "intercept_is_preloaded") and bool(lib.intercept_is_preloaded())


def require_shim():
    """Raises NotPreloaded, saying how to start, without the shim."""
    _library()


def _library():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL(None)
        if not preloaded():
            raise NotPreloaded(
                "libintercept.so is not preloaded into this process; start it under the shim, "
                "for example: intercept run -- pytest"
            )
        lib.intercept_add_app.argtypes = [ctypes.c_char_p, _CREATE]
        lib.intercept_add_route.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.intercept_remove_routes.argtypes = [ctypes.c_char_p, ctypes.c_uint16]
        lib.intercept_last_error.restype = ctypes.c_char_p
        lib.intercept_request_opener.argtypes = [ctypes.POINTER(ctypes.c_int)]
        lib.intercept_request_opener.restype = ctypes.c_uint64
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


class _NotNativeStr(TypeError):
    """A response header that is not a native str, under strict headers."""


def _make_handler(app_create_fn, script_name, strict_headers=lambda: False):
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
                    if strict_headers() and not (isinstance(name, str) and isinstance(value, str)):
                        raise _NotNativeStr(f"Header has a key '{name}' or value '{value}' which is not a native str.")
                    name = name if isinstance(name, bytes) else name.encode("latin-1")
                    value = value if isinstance(value, bytes) else value.encode("latin-1")
                    out.add_header(out.ctx, name, value)

            def send_body(data):
                if out.write(out.ctx, data, len(data)) != 0:
                    raise IOError("the response could not be written")

            run_wsgi(app_box[0], environ, send_head, send_body)
            return 0
        except BaseException as error:
            if not _raise_in_opener(_client_side(error, sys.exc_info())):
                traceback.print_exc(file=sys.stderr)
            return 1

    return handle


def _client_side(error, exc_info):
    """The exception the client's call raises for the app's ``error``: a
    header type error as itself, anything else as WSGIAppError. A class
    (an asynchronous exception is raised from its class, with no
    arguments) carrying the error."""
    if isinstance(error, _NotNativeStr):
        message = str(error)
        return type("TypeError", (TypeError,), {"__init__": lambda self: TypeError.__init__(self, message)})
    return type("WSGIAppError", (WSGIAppError,), {"_carried": (error, exc_info), "__module__": WSGIAppError.__module__})


def _raise_in_opener(exception_class):
    """Raises ``exception_class`` in the Python thread of this process that
    opened the connection being served (the shim knows it), where the
    client's call is waiting for the answer. Only a thread that connected
    a blocking socket (or one with a timeout) is interrupted: an event
    loop's non-blocking sockets (asyncio, aiohttp, httpx's async client)
    get the 500, as a client in another process does. False when not
    raised."""
    fd = ctypes.c_int(-1)
    opener = _library().intercept_request_opener(ctypes.byref(fd))
    if not opener or opener == threading.get_ident() or _connects.get(fd.value) != (opener, True):
        return False
    raised = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(opener), ctypes.py_object(exception_class))
    return raised == 1


# fd -> (the thread that connected it, whether it waits in its calls):
# which connection a client's call is waiting on, for _raise_in_opener.
_connects = {}


def _note_connects(event, args):
    if event == "socket.connect":
        sock = args[0]
        try:
            _connects[sock.fileno()] = (threading.get_ident(), sock.gettimeout() != 0.0)
        except (OSError, AttributeError):
            pass


sys.addaudithook(_note_connects)


# ---- the seed's API --------------------------------------------------------

def add_wsgi_intercept(host, port, app_create_fn, script_name="", strict_headers=None):
    """Serve ``app_create_fn()`` (called once, on first use) in place of
    host:port. Port 443 is served over https. ``strict_headers``, a function
    asked at each response, makes a header that is not a native str a
    TypeError in the client's call."""
    lib = _library()
    port = int(port)
    scheme = "https" if port == 443 else "http"
    script_name = script_name.rstrip("/")
    handle = _make_handler(app_create_fn, script_name, strict_headers or (lambda: False))

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


def add_route(url, app):
    """Any app an env file can name (``"echo"``, ``"static:200 hi"``,
    ``"stubs:DIR"``, ``"har:FILE"``…) in place of ``url``."""
    lib = _library()
    with _lock:
        if lib.intercept_add_route(url.encode(), app.encode()) != 0:
            raise ValueError(lib.intercept_last_error().decode())
    _bypass_proxies(urlsplit(url).hostname)


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
    """Remove the apps on host:port; returns how many were removed. The
    name stops resolving once no route uses it, and a kept-alive connection
    to host:port is closed at its next request."""
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
