#!/usr/bin/env bash
# make build: moves the debug info of a freshly linked libintercept.so into
# libintercept.so.debug beside it (found by gdb through .gnu_debuglink), so
# the library every process under the shim maps carries no DWARF. Keep the
# .debug file with a release for bug reports.
set -euo pipefail
so=${1:-target/release/libintercept.so}
if readelf -S "$so" | grep -q '\.debug_info'; then
    objcopy --only-keep-debug "$so" "$so.debug"
    objcopy --strip-debug --add-gnu-debuglink="$so.debug" "$so"
fi
