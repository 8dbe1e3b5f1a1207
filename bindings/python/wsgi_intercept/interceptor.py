"""Context managers that install a WSGI app in place of a host, named as
wsgi_intercept names them. Each takes an app *create* function and either
``host``/``port`` (and ``prefix``) or ``url``, or neither: then a host name
of its own is made up. Entering returns the URL (without a trailing slash
unless given one)."""

from importlib import import_module
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import wsgi_intercept


class Interceptor:
    MODULE_NAME = "http_client_intercept"

    def __init__(self, app, host=None, port=80, prefix=None, url=None):
        assert app
        self.app = app
        if url:
            parts = urlsplit(url)
            self.host = parts.hostname
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
            self.script_name = "" if parts.path in ("", "/") else parts.path
            self.url = url
        else:
            self.host = host or str(uuid4())
            self.port = int(port)
            self.script_name = prefix or ""
            scheme = "https" if self.port == 443 else "http"
            netloc = self.host if self.port in (80, 443) else f"{self.host}:{self.port}"
            self.url = urlunsplit((scheme, netloc, self.script_name, None, None))
        self._module = import_module(f".{self.MODULE_NAME}", package="wsgi_intercept")

    def __enter__(self):
        self.install_intercept()
        return self.url

    def __exit__(self, *exc):
        self.uninstall_intercept()

    def install_intercept(self):
        self._module.install()
        wsgi_intercept.add_wsgi_intercept(self.host, self.port, self.app, script_name=self.script_name)

    def uninstall_intercept(self):
        if not wsgi_intercept.remove_wsgi_intercept(self.host, self.port):
            self.uninstall_module()

    def uninstall_module(self):
        self._module.uninstall()


class HttpClientInterceptor(Interceptor):
    MODULE_NAME = "http_client_intercept"


class Httplib2Interceptor(Interceptor):
    MODULE_NAME = "httplib2_intercept"


class RequestsInterceptor(Interceptor):
    MODULE_NAME = "requests_intercept"


class Urllib3Interceptor(Interceptor):
    MODULE_NAME = "urllib3_intercept"


class UrllibInterceptor(Interceptor):
    MODULE_NAME = "urllib_intercept"
