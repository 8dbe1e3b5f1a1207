# intercept: `make run` for the demo, `make test` for every test.
CARGO ?= cargo
RELEASE := target/release
DEMO_ENV := examples/demo/intercept.env

.PHONY: build run test bench clean

## build: target/release/intercept and target/release/libintercept.so
build:
	$(CARGO) build --release --workspace

## run: the demo — curl asks a host that exists nowhere and gets the app's answer
run: build
	@echo '$$ intercept run --env-file $(DEMO_ENV) -- curl -sS http://demo.example.test/'
	@$(RELEASE)/intercept run --env-file $(DEMO_ENV) -- curl -sS http://demo.example.test/
	@echo '$$ intercept run --env-file $(DEMO_ENV) -- curl -sS "http://demo.example.test/api/orders?id=7"'
	@$(RELEASE)/intercept run --env-file $(DEMO_ENV) -- curl -sS "http://demo.example.test/api/orders?id=7"

## test: unit tests of the core, the integration tests that run real programs under the shim, then the Python package's tests
test: build
	$(CARGO) test --release --workspace
	@test -x .venv/bin/python || { echo "make test: .venv is missing: run bash scripts/python-venv.sh (.ci/run does)"; exit 1; }
	$(RELEASE)/intercept run -- .venv/bin/python -m pytest -q bindings/python/tests

## bench: intercept against nginx on loopback (wrk, hyperfine, curl); writes BENCHMARKS.md and the README table
bench: build
	bash scripts/install-deps.sh --bench
	python3 scripts/bench/bench.py

clean:
	$(CARGO) clean
