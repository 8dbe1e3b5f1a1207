"""wsgi_intercept's http_client_intercept, kept for suites that call it."""

from wsgi_intercept._nothing_to_patch import install, uninstall  # noqa: F401
