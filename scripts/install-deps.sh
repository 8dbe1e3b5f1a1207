#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian machine: the client
# programs the integration tests run, from Debian packages, and the Python
# modules they import, from PyPI. Only what is missing is installed.
set -euo pipefail

# command -> Debian package
declare -A PROGRAMS=(
  [make]=make
  [cc]=gcc
  [curl]=curl
  [wget]=wget
  [python3]=python3
  [node]=nodejs
  [java]=default-jdk-headless
  [wrk]=wrk
  [sha256sum]=coreutils
  [openssl]=openssl
  [git]=git
  [php]=php-cli
  [wget2]=wget2
  [npm]=npm
  [go]=golang-go
  [unshare]=util-linux
  [sudo]=sudo
  [useradd]=passwd
  [pkill]=procps
  [h2load]=nghttp2-client
)
# python module -> pip package
declare -A PY_MODULES=(
  [requests]=requests
  [pycurl]=pycurl
  [httpx]=httpx
  [h2]=h2
  [websockets]=websockets
  # WireMock's own Python client, driving the admin API
  [wiremock]=wiremock
)
# Node packages the tests require, kept in .deps/node (the tests' NODE_PATH)
# (wiremock ships WireMock's standalone jar: the side-by-side test runs it)
NODE_PACKAGES=(ws@8 wiremock@3)

# `--bench` adds what `make bench` needs.
if [ "${1:-}" = "--bench" ]; then
  PROGRAMS[hyperfine]=hyperfine
  PROGRAMS[nginx]=nginx-light
  # The mock servers a user would pick instead of intercept for stubs.
  BENCH_NODE_PACKAGES=(mountebank@2 mockttp@4)
fi

missing=()
for program in "${!PROGRAMS[@]}"; do
  command -v "$program" >/dev/null 2>&1 || [ -x "/usr/sbin/$program" ] || missing+=("${PROGRAMS[$program]}")
done

# Static linking (the test of the static-binary warning) needs libc.a.
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || missing+=(libc6-dev)
# A statically linked busybox (the supervisor's tests; Debian's `busybox`
# package is dynamically linked).
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
# PHP's curl extension (the RTLD_DEEPBIND test).
command -v php >/dev/null 2>&1 && php -m 2>/dev/null | grep -qx curl || missing+=(php-curl)
# Perl LWP with https (a client that reads a fixed CA path).
perl -MLWP::Protocol::https -e1 >/dev/null 2>&1 || missing+=(libwww-perl liblwp-protocol-https-perl)
# The system CAs that the trust bundle starts from.
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing; this machine kind ships a Rust toolchain" >&2
  exit 1
fi

for module in "${!PY_MODULES[@]}"; do
  if ! python3 -c "import $module" >/dev/null 2>&1; then
    echo "install-deps: pip installing ${PY_MODULES[$module]}"
    python3 -m pip install --quiet "${PY_MODULES[$module]}" \
      || python3 -m pip install --quiet --break-system-packages "${PY_MODULES[$module]}"
  fi
done
root="$(cd "$(dirname "$0")/.." && pwd)"
# In one install per prefix: npm prunes what a later --no-save install
# into the same prefix does not name.
for package in "${NODE_PACKAGES[@]}"; do
  if [ ! -d "$root/.deps/node/node_modules/${package%@*}" ]; then
    echo "install-deps: npm installing ${NODE_PACKAGES[*]}"
    npm install --silent --no-save --no-audit --no-fund --prefix "$root/.deps/node" "${NODE_PACKAGES[@]}"
    break
  fi
done
# make bench's mock servers.
for package in "${BENCH_NODE_PACKAGES[@]:-}"; do
  if [ -n "$package" ] && [ ! -d "$root/.deps/bench-node/node_modules/${package%@*}" ]; then
    echo "install-deps: npm installing ${BENCH_NODE_PACKAGES[*]}"
    npm install --silent --no-save --no-audit --no-fund --prefix "$root/.deps/bench-node" "${BENCH_NODE_PACKAGES[@]}"
    break
  fi
done
echo "install-deps: all test dependencies present"
