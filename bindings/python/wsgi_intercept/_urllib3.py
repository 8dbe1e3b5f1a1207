"""What urllib3_intercept and requests_intercept install, as wsgi_intercept
installs it: the pools' connection classes replaced by ones that raise a
failure to connect as the socket error itself (urllib3 then reports it as
ProtocolError, which suites written for wsgi_intercept expect), and
refused while a proxy variable is set. The connections are otherwise
urllib3's own; the shim intercepts them below."""

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from wsgi_intercept._nothing_to_patch import install_refusing_proxies


def _raw_errors(base):
    class Connection(base):
        def _new_conn(self):
            try:
                return super()._new_conn()
            except NewConnectionError as e:
                if isinstance(e.__cause__, OSError):
                    raise e.__cause__ from None
                raise

    Connection.__name__ = Connection.__qualname__ = ("HTTPS" if base is HTTPSConnection else "HTTP") + "_WSGIInterceptor"
    return Connection


HTTP_WSGIInterceptor = _raw_errors(HTTPConnection)
HTTPS_WSGIInterceptor = _raw_errors(HTTPSConnection)


def install():
    install_refusing_proxies()
    HTTPConnectionPool.ConnectionCls = HTTP_WSGIInterceptor
    HTTPSConnectionPool.ConnectionCls = HTTPS_WSGIInterceptor


def uninstall():
    HTTPConnectionPool.ConnectionCls = HTTPConnection
    HTTPSConnectionPool.ConnectionCls = HTTPSConnection
