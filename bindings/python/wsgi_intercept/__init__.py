"""A drop-in for suites written against wsgi_intercept 1.13.

Its public names -- ``add_wsgi_intercept``, ``remove_wsgi_intercept``,
``WSGIAppError``, ``STRICT_RESPONSE_HEADERS``, the connection classes, the
``interceptor`` context managers and the ``*_intercept`` modules with
``install()``/``uninstall()`` -- but nothing is monkeypatched: intercept's
``libintercept.so`` answers below every client, so the connection classes
are the standard ones and ``install()`` has little left to do. Run the
suite under the shim::

    intercept run -- pytest
"""

import http.client

import intercept_wsgi
from intercept_wsgi import NotPreloaded, WSGIAppError  # noqa: F401

__all__ = ["add_wsgi_intercept", "remove_wsgi_intercept", "WSGIAppError", "NotPreloaded", "STRICT_RESPONSE_HEADERS"]

# True: a response header that is not a native str is a TypeError in the
# client's call, as some WSGI servers make it.
STRICT_RESPONSE_HEADERS = False

# Kept for suites that set it; intercept logs with INTERCEPT_LOG instead.
debuglevel = 0

# (host, port) -> (app_create_fn, script_name), as wsgi_intercept keeps it.
_wsgi_intercept = {}


def add_wsgi_intercept(host, port, app_create_fn, script_name=""):
    """Serve ``app_create_fn()`` in place of host:port, with ``script_name``
    as SCRIPT_NAME; a second app on the same host and port replaces the
    first."""
    port = int(port)
    if (host, port) in _wsgi_intercept:
        intercept_wsgi.remove_wsgi_intercept(host, port)
    intercept_wsgi.add_wsgi_intercept(host, port, app_create_fn, script_name, strict_headers=_strict)
    _wsgi_intercept[(host, port)] = (app_create_fn, script_name)


def remove_wsgi_intercept(*args):
    """Remove the app on (host, port), or every app with no arguments;
    returns how many remain."""
    keys = list(_wsgi_intercept) if not args else [(args[0], int(args[1]))]
    for host, port in keys:
        if _wsgi_intercept.pop((host, port), None) is not None:
            intercept_wsgi.remove_wsgi_intercept(host, port)
    return len(_wsgi_intercept)


def _strict():
    return STRICT_RESPONSE_HEADERS


class WSGI_HTTPConnection(http.client.HTTPConnection):
    """http.client's connection: the shim intercepts it as it is."""

    def get_app(self, host, port):
        """(app, script_name) of the app installed on host:port, else
        (None, None)."""
        found = _wsgi_intercept.get((host, int(port)))
        return (found[0](), found[1]) if found else (None, None)


class WSGI_HTTPSConnection(http.client.HTTPSConnection, WSGI_HTTPConnection):
    """http.client's https connection: the shim intercepts it as it is."""
