#!/usr/bin/env bash
# Builds .venv for the Python tests: the package from bindings/python
# (editable) with its `test` extras (pytest and the clients and frameworks
# the tests drive, pinned in bindings/python/pyproject.toml). Does nothing
# when .venv already has them.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-$(sha256sum bindings/python/pyproject.toml | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e 'bindings/python[test]'
rm -f .venv/.installed-*
touch "$stamp"
echo "python-venv: .venv ready"
