"""Context managers that install a WSGI app in place of a host, named as
wsgi_intercept names them. Each takes an app *create* function and either
``host``/``port`` (and ``prefix``) or ``url``; entering returns the URL."""

from urllib.parse import urlsplit

from intercept_wsgi import add_wsgi_intercept, remove_wsgi_intercept


class Interceptor:
    def __init__(self, app, host=None, port=80, prefix=None, url=None):
        if url:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            prefix = parts.path
        if not host:
            raise ValueError("an interceptor needs host= or url=")
        self.app, self.host, self.port = app, host, int(port)
        self.script_name = (prefix or "").rstrip("/")
        scheme = "https" if self.port == 443 else "http"
        default = 443 if scheme == "https" else 80
        authority = host if self.port == default else f"{host}:{self.port}"
        self.url = url or f"{scheme}://{authority}{self.script_name or '/'}"

    def __enter__(self):
        add_wsgi_intercept(self.host, self.port, self.app, script_name=self.script_name)
        return self.url

    def __exit__(self, *exc):
        remove_wsgi_intercept(self.host, self.port)
        return False


class HttpClientInterceptor(Interceptor):
    pass


class Httplib2Interceptor(Interceptor):
    pass


class RequestsInterceptor(Interceptor):
    pass


class Urllib3Interceptor(Interceptor):
    pass


class UrllibInterceptor(Interceptor):
    pass
