"""The ``intercept`` command a pip install puts on PATH: the CLI bundled in
the package (see setup.py), else INTERCEPT_BIN."""

import os
import sys

from intercept_wsgi.pytest_plugin import intercept_cli


def main():
    cli = intercept_cli()
    if cli is None or os.path.realpath(cli) == os.path.realpath(sys.argv[0]):
        sys.exit("intercept: this package was installed without its CLI; set INTERCEPT_BIN to an intercept binary")
    os.execv(cli, [cli, *sys.argv[1:]])
