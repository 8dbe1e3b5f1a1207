"""wsgi_intercept's urllib_intercept: its names over intercept."""

import urllib.request

from wsgi_intercept import WSGI_HTTPConnection, WSGI_HTTPSConnection
from wsgi_intercept._nothing_to_patch import install_refusing_proxies


class WSGI_HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(WSGI_HTTPConnection, req)


class WSGI_HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(WSGI_HTTPSConnection, req, context=self._context)


def install_opener():
    """Installs (and returns) an opener whose handlers use the connection
    classes above; refused while a proxy variable is set, as the original's."""
    install_refusing_proxies()
    opener = urllib.request.build_opener(WSGI_HTTPHandler(), WSGI_HTTPSHandler())
    urllib.request.install_opener(opener)
    return opener


def uninstall_opener():
    urllib.request.install_opener(None)


install = install_opener
uninstall = uninstall_opener
