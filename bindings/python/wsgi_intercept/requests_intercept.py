"""wsgi_intercept's requests_intercept: requests uses urllib3's pools, and
install() sets them up as wsgi_intercept's does (see ``_urllib3``)."""

from wsgi_intercept._urllib3 import HTTP_WSGIInterceptor, HTTPS_WSGIInterceptor, install, uninstall  # noqa: F401
