"""Builds the package with the intercept CLI and libintercept.so inside
(``intercept_wsgi/_bin``), so ``pip install ./bindings/python`` is all a
Python user needs: the binaries come from ``INTERCEPT_BIN_DIR`` when set
(already built), else from ``cargo build --release`` in the repository this
directory belongs to (``INTERCEPT_SOURCE`` when the directory was copied
elsewhere). With ``INTERCEPT_PURE_PYTHON=1``, or no cargo and no binaries,
the package is the pure-Python one and finds the CLI through
``INTERCEPT_BIN`` or PATH."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BINARIES = ("intercept", "libintercept.so")


def built_binaries():
    """The directory holding both binaries, building them if need be; None
    for a pure-Python package."""
    if os.environ.get("INTERCEPT_PURE_PYTHON"):
        return None
    if os.environ.get("INTERCEPT_BIN_DIR"):
        return Path(os.environ["INTERCEPT_BIN_DIR"])
    source = Path(os.environ.get("INTERCEPT_SOURCE") or Path(__file__).resolve().parents[2])
    cargo = shutil.which("cargo")
    if not cargo or not (source / "shim" / "Cargo.toml").is_file():
        return None
    subprocess.run([cargo, "build", "--release", "-p", "intercept", "-p", "intercept-shim"], cwd=source, check=True)
    return Path(os.environ.get("CARGO_TARGET_DIR") or source / "target") / "release"


class BuildWithBinaries(build_py):
    def run(self):
        super().run()
        found = built_binaries()
        if found is None:
            return
        into = Path(self.build_lib) / "intercept_wsgi" / "_bin"
        into.mkdir(parents=True, exist_ok=True)
        for name in BINARIES:
            shutil.copy2(found / name, into / name)


setup(cmdclass={"build_py": BuildWithBinaries})
