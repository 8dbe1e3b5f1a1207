"""Running one WSGI request (PEP 3333), with the standard library alone.

Shared by the in-process API (intercept_wsgi) and by the worker that serves
``wsgi:`` routes to any program (the shim embeds this file in the worker).
"""

import sys
from urllib.parse import unquote


def environ_for(method, scheme, host, port, target, script_name, query, headers, body, multiprocess):
    """The WSGI environ of one request. ``target`` is the request target as
    received (origin or absolute form), ``headers`` (name, value) pairs in
    the order received, ``body`` the file-like ``wsgi.input``."""
    path = target.split("?", 1)[0]
    if "://" in path:
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    rest = path[len(script_name):] if path.startswith(script_name) else path
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": unquote(rest, encoding="latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": target,
        "RAW_URI": target,
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": not multiprocess,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
            continue
        key = "HTTP_" + key
        environ[key] = environ[key] + "," + value if key in environ else value
    return environ


def run_wsgi(app, environ, send_head, send_body):
    """Runs one WSGI request (PEP 3333). ``send_head(status, headers)`` is
    called once, with the first non-empty body chunk or at the end (so
    headers appended after start_response returned still count);
    ``send_body(bytes)`` for each chunk. ``close()`` is always called on the
    app's iterable; the app's exceptions propagate to the caller."""
    state = {"status": None, "headers": None, "sent": False}

    def send_headers():
        if not state["sent"]:
            state["sent"] = True
            send_head(state["status"], state["headers"])

    def write(data):
        if state["status"] is None:
            raise AssertionError("write() before start_response()")
        send_headers()
        if data:
            send_body(data)

    def start_response(status, headers, exc_info=None):
        if exc_info:
            try:
                if state["sent"]:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response() called twice without exc_info")
        state["status"], state["headers"] = status, headers  # the list itself: later appends count
        return write

    result = app(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                write(chunk)
        if state["status"] is None:
            raise AssertionError("the app returned without calling start_response()")
        send_headers()
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
