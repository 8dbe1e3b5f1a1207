"""install()/uninstall() for wsgi_intercept's per-client modules.

Interception happens below Python, in libintercept.so, so there is nothing
to patch: install() checks that the shim is there (and, for the modules
whose originals refuse a proxy, that none is set), uninstall() does
nothing."""

import os

from intercept_wsgi import _library


def install():
    _library()


def install_refusing_proxies():
    """As wsgi_intercept's urllib, urllib3 and requests modules install:
    refused while a proxy variable is set."""
    if "http_proxy" in os.environ or "https_proxy" in os.environ:
        raise RuntimeError("http_proxy or https_proxy set in environment, please unset")
    install()


def uninstall():
    pass
