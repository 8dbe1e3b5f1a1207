"""A drop-in for suites written against wsgi_intercept.

The same names -- ``add_wsgi_intercept``, ``remove_wsgi_intercept``,
``wsgi_intercept.interceptor`` and the ``*_intercept`` modules with
``install()``/``uninstall()`` -- but nothing is monkeypatched: intercept's
``libintercept.so`` answers below every client, so ``install()`` has
nothing left to do. Run the suite under the shim::

    intercept run -- pytest
"""

from intercept_wsgi import NotPreloaded, add_wsgi_intercept, remove_wsgi_intercept  # noqa: F401

__all__ = ["add_wsgi_intercept", "remove_wsgi_intercept", "NotPreloaded"]
