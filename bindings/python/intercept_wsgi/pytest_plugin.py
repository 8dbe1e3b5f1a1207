"""The pytest plugin (registered by the package's ``pytest11`` entry point).

- Started without the shim, pytest is executed again under it
  (``intercept run -- python -m pytest ARGS``), with one line on stderr
  saying so, so plain ``pytest`` works. ``INTERCEPT_PYTEST=off`` (or
  ``-p no:intercept``) leaves pytest alone; the CLI is the one bundled in
  the package, else ``INTERCEPT_BIN``, else ``intercept`` on PATH.
- The ``intercept`` fixture adds apps for one test and removes them after
  it: ``intercept.add(url, wsgi_app)``, ``intercept.add_route(url, "echo")``
  for any app spec, ``intercept.add_stub(url, mapping)`` for a WireMock stub
  mapping.
"""

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import intercept_wsgi

_RESTARTED = "_INTERCEPT_PYTEST_RESTARTED"


def intercept_cli():
    """The intercept CLI: the package's own, INTERCEPT_BIN, or on PATH."""
    bundled = Path(__file__).resolve().parent / "_bin" / "intercept"
    for candidate in (str(bundled), os.environ.get("INTERCEPT_BIN"), shutil.which("intercept")):
        if candidate and os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    if os.environ.get("INTERCEPT_PYTEST", "").lower() in ("off", "0", "false", "no") or intercept_wsgi.preloaded():
        return
    cli = intercept_cli()
    if cli is None or os.environ.get(_RESTARTED):
        return  # the fixture says what is missing when a test asks for it
    argv = [cli, "run", "--", sys.executable, "-m", "pytest", *early_config.invocation_params.args]
    # pytest already captures fds 1 and 2; the new pytest gets the real ones.
    capture = early_config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    sys.stderr.write(f"intercept: pytest started without the shim; running it again under `{cli} run`\n")
    sys.stderr.flush()
    os.environ[_RESTARTED] = "1"
    os.execv(cli, argv)


class Intercept:
    """What the ``intercept`` fixture gives a test; everything it adds is
    removed when the test ends."""

    def __init__(self, scratch):
        self._added = []
        self._scratch = Path(scratch)
        self._stubs = {}

    def add(self, url, app):
        """Serves the WSGI ``app`` in place of ``url`` (its path is the
        mount point); returns the URL."""
        host, port, prefix = _split(url)
        intercept_wsgi.add_wsgi_intercept(host, port, lambda: app, script_name=prefix)
        self._added.append((host, port))
        return url

    def add_route(self, url, app):
        """Any app an env file can name (``"echo"``, ``"static:204"``,
        ``"stubs:DIR"``, ``"har:FILE"``…) in place of ``url``."""
        host, port, _ = _split(url)
        intercept_wsgi.add_route(url, app)
        self._added.append((host, port))
        return url

    def add_stub(self, url, mapping):
        """One WireMock stub mapping (a dict, as in a mapping file) on
        ``url``'s host; stubs added to one host answer together."""
        host, port, _ = _split(url)
        key = (host, port)
        first = key not in self._stubs
        directory = self._stubs.setdefault(key, self._scratch / f"stubs-{len(self._stubs)}")
        (directory / "mappings").mkdir(parents=True, exist_ok=True)
        count = len(list((directory / "mappings").iterdir()))
        (directory / "mappings" / f"{count:04}.json").write_text(json.dumps(mapping))
        if not first:
            intercept_wsgi.remove_wsgi_intercept(host, port)
        origin = urlsplit(url)
        return self.add_route(f"{origin.scheme}://{origin.netloc}", f"stubs:{directory}")

    def remove_all(self):
        for host, port in set(self._added):
            intercept_wsgi.remove_wsgi_intercept(host, port)
        self._added.clear()


def _split(url):
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port, parts.path.rstrip("/")


@pytest.fixture
def intercept():
    intercept_wsgi.require_shim()
    with tempfile.TemporaryDirectory(prefix="intercept-stubs-") as scratch:
        it = Intercept(scratch)
        try:
            yield it
        finally:
            it.remove_all()
