#!/usr/bin/env bash
# Builds .venv for the Python tests: the pure-Python package from
# bindings/python (editable) and the clients and frameworks the tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  pytest requests urllib3 httplib2 httpx aiohttp flask
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e bindings/python
echo "python-venv: .venv ready"
