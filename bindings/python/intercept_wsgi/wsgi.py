"""Running one WSGI request (PEP 3333), with the standard library alone.

Shared by the in-process API (intercept_wsgi) and by the worker that serves
``wsgi:`` routes to any program (the shim embeds this file in the worker).
"""


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
