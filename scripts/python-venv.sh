#!/usr/bin/env bash
# Builds .venv for the Python tests: the package from bindings/python
# (editable) with its `test` extras (pytest and the clients and frameworks
# the tests drive, pinned in bindings/python/pyproject.toml). Does nothing
# when .venv already has them.
set -euo pipefail
cd "$(dirname "$0")/.."
# wsgi_intercept's own test suite, which the package must pass unchanged:
# its release from PyPI (the tests come in the sdist), kept in .deps.
suite=.deps/wsgi_intercept-1.13.1.tar.gz
if [ ! -f "$suite" ]; then
  mkdir -p .deps
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: --dest .deps wsgi-intercept==1.13.1
fi
stamp=.venv/.installed-$(sha256sum bindings/python/pyproject.toml | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Editable and pure Python: the tests run it under the CLI they built.
INTERCEPT_PURE_PYTHON=1 .venv/bin/python -m pip install --quiet --disable-pip-version-check -e 'bindings/python[test]'
rm -f .venv/.installed-*
touch "$stamp"
echo "python-venv: .venv ready"
