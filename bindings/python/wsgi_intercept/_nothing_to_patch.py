"""install()/uninstall() for wsgi_intercept's per-client modules.

Interception happens below Python, in libintercept.so, so there is nothing
to patch: install() only checks that the shim is there, uninstall() does
nothing."""

from intercept_wsgi import _library


def install():
    _library()


def uninstall():
    pass
