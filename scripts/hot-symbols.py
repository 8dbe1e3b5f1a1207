#!/usr/bin/env python3
"""Writes shim/hot-symbols.txt: the functions of libintercept.so that a
process runs when it loads the shim and when it makes one intercepted
request (from curl, python3's urllib, and /bin/true, which makes none),
as callgrind sees them. shim/build.rs hands the file to the linker
(`--symbol-ordering-file`), which places those functions together at the
start of .text: a process then faults in a few pages of our code instead
of one for nearly every function it runs (on the machine this was written
on, `perf stat -e page-faults`: 105 → 91 for /bin/true, 673 → 653 for a
one-request curl). Loading's functions come first, then those each
request adds.

The names are mangled, with the hash each symbol carries; a name the
build no longer has is skipped by the linker, so a stale file costs only
the saving. Run again (`python3 scripts/hot-symbols.py`, needs valgrind,
curl and python3; `make build` first) after changes to the paths above,
and commit the file."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "target/release/libintercept.so"
OUT = ROOT / "shim/hot-symbols.txt"


def functions(profile: Path) -> set[str]:
    """The functions callgrind charged cost to in libintercept.so. The
    file names each object and function once, `(id) name`, and by `(id)`
    after that."""
    objects, names, current, found = {}, {}, None, set()
    for line in profile.read_text().splitlines():
        m = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line)
        if not m:
            continue
        kind, ident, name = m.groups()
        if kind in ("ob", "cob"):
            if name:
                objects[ident] = name
            if kind == "ob":
                current = objects.get(ident)
            continue
        if name:
            names[ident] = name
        if kind == "fn" and current and current.endswith("/libintercept.so"):
            # callgrind marks a recursive call's cycle with 'N.
            found.add(re.sub(r"'\d+$", "", names[ident]))
    return {f for f in found if not f.startswith("0x")}


def main() -> None:
    for tool in ("valgrind", "curl", "python3"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"hot-symbols: {tool} is missing (apt-get install {tool})")
    if not SHIM.exists():
        sys.exit(f"hot-symbols: {SHIM} is missing: run `make build` first")
    with tempfile.TemporaryDirectory(prefix="intercept-hot-") as work:
        env_file = Path(work) / "hot.env"
        # A name and an address, as `make bench` routes both.
        env_file.write_text("INTERCEPT_ROUTE_HOT=http://hot.example.test -> static:200 hot\nINTERCEPT_ROUTE_ADDR=http://127.0.0.9:9 -> static:200 hot\n")
        env = dict(os.environ, LD_PRELOAD=str(SHIM), INTERCEPT_ENV_FILE=str(env_file))
        fetch = "import urllib.request; print(urllib.request.urlopen('http://hot.example.test/').read().decode())"
        runs = [["/bin/true"], ["curl", "-sS", "http://hot.example.test/"], ["python3", "-c", fetch]]
        for i, cmd in enumerate(runs):
            out = Path(work) / f"callgrind.{i}.%p"
            done = subprocess.run(
                ["valgrind", "--tool=callgrind", "--demangle=no", "--trace-children=yes", f"--callgrind-out-file={out}", *cmd],
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0 or (cmd[0] != "/bin/true" and "hot" not in done.stdout):
                sys.exit(f"hot-symbols: {' '.join(cmd)} failed under callgrind:\n{done.stdout}{done.stderr}")
        # Loading's functions first, so a process that makes no request
        # faults in as few pages as it can; then each run's new ones.
        # frame_dummy: the C runtime's constructor in the library, which
        # callgrind does not name.
        hot: list[str] = ["frame_dummy"]
        for i in range(len(runs)):
            found = set().union(*(functions(p) for p in Path(work).glob(f"callgrind.{i}.*")))
            hot += sorted(found - set(hot))
    OUT.write_text("".join(f"{name}\n" for name in hot))
    print(f"hot-symbols: {len(hot)} functions written to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
