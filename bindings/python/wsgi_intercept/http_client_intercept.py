"""wsgi_intercept's http_client_intercept: its names over intercept."""

import http.client

from wsgi_intercept import WSGI_HTTPConnection, WSGI_HTTPSConnection
from wsgi_intercept._nothing_to_patch import install, uninstall  # noqa: F401

HTTPInterceptorMixin = WSGI_HTTPConnection
HTTPSInterceptorMixin = WSGI_HTTPSConnection


class HTTP_WSGIInterceptor(WSGI_HTTPConnection, http.client.HTTPConnection):
    pass


class HTTPS_WSGIInterceptor(WSGI_HTTPSConnection, http.client.HTTPSConnection):
    pass
