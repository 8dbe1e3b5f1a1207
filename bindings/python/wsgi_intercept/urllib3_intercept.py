"""wsgi_intercept's urllib3_intercept: install() sets urllib3's pools up as
wsgi_intercept's does (see ``_urllib3``)."""

from wsgi_intercept._urllib3 import HTTP_WSGIInterceptor, HTTPS_WSGIInterceptor, install, uninstall  # noqa: F401
