"""wsgi_intercept's httplib2_intercept: install() makes httplib2 use the
connection classes below for http and https, as wsgi_intercept's does.
They are httplib2's own, closed after each response as wsgi_intercept's
are, so a request after the app was removed connects again (and finds
no server); the shim intercepts them below."""

import httplib2
from httplib2 import HTTPConnectionWithTimeout, HTTPSConnectionWithTimeout

from wsgi_intercept import WSGI_HTTPConnection, WSGI_HTTPSConnection
from wsgi_intercept._nothing_to_patch import install as _check_shim

HTTPInterceptorMixin = WSGI_HTTPConnection
HTTPSInterceptorMixin = WSGI_HTTPSConnection


def _closing_after_each_response(base):
    class Connection(base):
        def getresponse(self):
            response = super().getresponse()
            # As http.client does for a response that closes: the response
            # reads on from its own file, the connection lets go.
            self._HTTPConnection__response = None
            self.close()
            return response

    return Connection


class HTTP_WSGIInterceptorWithTimeout(_closing_after_each_response(HTTPConnectionWithTimeout)):
    pass


class HTTPS_WSGIInterceptorWithTimeout(_closing_after_each_response(HTTPSConnectionWithTimeout)):
    pass


_ORIGINAL = dict(httplib2.SCHEME_TO_CONNECTION)


def install():
    _check_shim()
    httplib2.SCHEME_TO_CONNECTION["http"] = HTTP_WSGIInterceptorWithTimeout
    httplib2.SCHEME_TO_CONNECTION["https"] = HTTPS_WSGIInterceptorWithTimeout


def uninstall():
    httplib2.SCHEME_TO_CONNECTION.update(_ORIGINAL)
