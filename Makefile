# intercept: `make run` for the demo, `make test` for every test (it
# installs what is missing first), `make check` for the core's unit tests.
CARGO ?= cargo
RELEASE := target/release
DEMO_ENV := examples/demo/intercept.env

.PHONY: build run deps test check lint bench clean

## build: target/release/intercept and target/release/libintercept.so (its debug info in libintercept.so.debug)
# The shim is built on its own, last: built with the workspace, its
# dependencies get features only other members ask for (tokio's
# multi-threaded runtime, which pulls in libm.so.6).
build:
	$(CARGO) build --release --workspace --exclude intercept-shim
	$(CARGO) build --release -p intercept-shim
	bash scripts/split-debug.sh

## run: the demo — curl asks a host that exists nowhere and gets the app's answer
# Built in the quick `demo` profile (Cargo.toml), the CLI and the shim in one
# go: together they ask for the same features the shim gets on its own.
DEMO := target/demo
run:
	$(CARGO) build --profile demo -p intercept -p intercept-shim
	@echo '$$ intercept run --env-file $(DEMO_ENV) -- curl -sS http://demo.example.test/'
	@$(DEMO)/intercept run --env-file $(DEMO_ENV) -- curl -sS http://demo.example.test/
	@echo '$$ intercept run --env-file $(DEMO_ENV) -- curl -sS "http://demo.example.test/api/orders?id=7"'
	@$(DEMO)/intercept run --env-file $(DEMO_ENV) -- curl -sS "http://demo.example.test/api/orders?id=7"

## deps: the Debian packages, PyPI modules and .venv the tests need (only what is missing)
deps:
	bash scripts/install-deps.sh
	bash scripts/python-venv.sh

## test: installs what is missing, then the core's unit tests, the integration tests that run real programs under the shim, and the Python package's tests
test: deps build
	$(CARGO) test --release --workspace
	@scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	  set -x && INTERCEPT_CA_DIR="$$scratch/ca" HOME="$$scratch" $(RELEASE)/intercept run -- \
	  .venv/bin/python -m pytest -q -p no:cacheprovider --basetemp="$$scratch/pytest" bindings/python/tests

## check: the core's unit tests only, in seconds (the inner loop)
check:
	$(CARGO) test -p intercept --lib

## lint: formatting and clippy, as CI checks them
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: intercept against nginx on loopback (wrk, hyperfine, curl); writes BENCHMARKS.md
bench: build
	bash scripts/install-deps.sh --bench
	python3 scripts/bench/bench.py

clean:
	$(CARGO) clean
