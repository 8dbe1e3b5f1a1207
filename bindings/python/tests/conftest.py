import os

import pytest


def pytest_configure(config):
    # These tests exercise the shim itself: without it they cannot pass, so
    # say so at once rather than fail one by one.
    if "libintercept.so" not in os.environ.get("LD_PRELOAD", ""):
        raise pytest.UsageError("run these tests under the shim: intercept run -- python -m pytest bindings/python/tests")
