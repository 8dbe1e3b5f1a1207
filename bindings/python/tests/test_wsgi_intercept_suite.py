"""wsgi_intercept's own test suite, unchanged, against this package: the
tests of its 1.13.1 release (from the sdist `make test` keeps in .deps)
are unpacked into a temporary directory and run by pytest in a child of
this process, under the same shim, with its network tests skipped as its
own CI skips them."""

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

SDIST = Path(__file__).resolve().parents[3] / ".deps" / "wsgi_intercept-1.13.1.tar.gz"


def test_wsgi_intercepts_own_suite_passes_unchanged(tmp_path):
    assert SDIST.is_file(), f"{SDIST} is missing: `make test` downloads it (scripts/python-venv.sh)"
    with tarfile.open(SDIST) as sdist:
        members = [m for m in sdist.getmembers() if "/wsgi_intercept/tests/" in m.name and m.isfile()]
        for member in members:
            member.name = "tests/" + member.name.split("/wsgi_intercept/tests/", 1)[1]
        sdist.extractall(tmp_path, members=members, filter="data")
    env = dict(os.environ, WSGI_INTERCEPT_SKIP_NETWORK="true")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "tests"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0 and re.fullmatch(r"72 passed, 9 skipped in [\d.]+s", summary), run.stdout + run.stderr
