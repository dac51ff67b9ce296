# tally: the two set-up commands on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
DATA ?= demo-data
DAYS ?= 30
ADDR ?= 127.0.0.1:8080

VENV ?= .venv

FUZZ_SECONDS ?= 180
.PHONY: fuzz demo test bench package infra-check fmt lint sql-check sql-test clean-demo console browser

## Generate 30 days of realistic events, ingest, roll up, print a sample answer, serve the API on $(ADDR).
demo: console
	$(CARGO) run --quiet -- --data $(DATA) demo --days $(DAYS) --addr $(ADDR)

## Run every test (infra checks, format, unit, end-to-end against the oracle, API, CLI, contracts, AWS over the
## moto emulator, the admin console in headless Chromium). Clippy is `make lint` (CI runs both): it checks every dependency a second time, in check mode.
## The tests compile while the emulator, checkov, selenium and Chromium install and the infra checks run.
test: console
	$(CARGO) test --workspace --no-run --quiet & build=$$!; \
		$(MAKE) --no-print-directory $(VENV)/bin/moto_server infra-check browser; installed=$$?; \
		wait $$build; built=$$?; test $$installed = 0 -a $$built = 0
	$(CARGO) fmt --all -- --check
	python3 tests/same_build.py
	VENV=$(VENV) tests/support/with-moto.sh $(CARGO) test --workspace --no-fail-fast
	TALLY_BIN="$$($(CARGO) metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/tally" \
		$(VENV)/bin/python tests/console/test_console.py

## The console's browser test: Debian's chromium and chromium-driver, selenium in the virtualenv.
browser: $(VENV)/bin/moto_server
	tests/support/install-debian.sh chromium=chromium chromedriver=chromium-driver
	$(VENV)/bin/python -c 'import selenium' 2>/dev/null || \
		$(VENV)/bin/pip install --quiet --disable-pip-version-check 'selenium>=4.25,<5'

## Benchmarks beside DuckDB on the same data (bench/run.py): prints every figure and writes bench/RESULTS.md.
## The data set (10.5M events, 35 days) is generated once into bench/data/; make package brings the zips up to date.
## Measures the release build the zips ship. BENCH_PROFILE=profiling (Cargo.toml) builds without LTO and keeps
## symbols for perf.
BENCH_PROFILE ?= release
bench: console $(VENV)/bin/moto_server
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'duckdb>=2.0.1,<3'
	tests/support/install-debian.sh wrk=wrk valgrind=valgrind
	$(CARGO) build --profile $(BENCH_PROFILE) --workspace --bins
	BENCH_PROFILE=$(BENCH_PROFILE) VENV=$(VENV) tests/support/with-moto.sh $(VENV)/bin/python bench/run.py $(BENCH_ARGS)

## Fuzz the event line parser, the queue message body, the API query string and the metric header for
## FUZZ_SECONDS each (nightly Rust and cargo-fuzz, installed when missing; a build of its own, ~30 min
## the first time); what they find joins fuzz/corpus/, which make test replays on stable.
fuzz: console
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

## The S3/SQS/DynamoDB emulator for the tests, in a local virtualenv.
$(VENV)/bin/moto_server:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'

## The admin console's npm packages, pinned by console/package-lock.json: uPlot (built into the binary)
## and axe-core (the browser test's accessibility scan).
console: console/node_modules/.package-lock.json
console/node_modules/.package-lock.json: console/package-lock.json
	npm ci --prefix console --no-audit --no-fund --loglevel=error

## Static checks of infra/ (no terraform binary or providers needed): checkov with 0 failed checks, and
## tests/infra_consistency.py proving the Terraform agrees with the code and docs/aws.md.
infra-check: $(VENV)/bin/checkov
	$(VENV)/bin/checkov --directory infra --framework terraform --quiet --compact --skip-download
	$(VENV)/bin/python tests/infra_consistency.py

$(VENV)/bin/checkov: $(VENV)/bin/moto_server
	$(VENV)/bin/pip install --quiet --disable-pip-version-check 'checkov>=3,<4' python-hcl2

## Build the three Lambda functions for arm64 (provided.al2023) into target/lambda/<function>/bootstrap.zip:
## ingest and api with the release profile, the rollup with `small` (Cargo.toml says why)
## (in the checkout even when CARGO_TARGET_DIR points elsewhere; infra/ and the bench look there).
package: console $(VENV)/bin/cargo-lambda
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/cargo-lambda lambda build --release --arm64 --output-format zip \
		--lambda-dir target/lambda --package tally-ingest --package tally-api
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/cargo-lambda lambda build --profile small --arm64 --output-format zip \
		--lambda-dir target/lambda --package tally-rollup
	@for f in tally-ingest tally-rollup tally-api; do ls -l target/lambda/$$f/bootstrap.zip; done

$(VENV)/bin/cargo-lambda:
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check cargo-lambda ziglang

## Plan every metric in sql/ against the event schema.
sql-check: console
	$(CARGO) run --quiet -- --sql sql sql check

## Run the metric tests in sql/tests through ingest, rollup and query on a temporary lake.
sql-test: console
	$(CARGO) run --quiet -- --sql sql sql test

fmt:
	$(CARGO) fmt --all

## Format check and clippy with warnings as errors (CI runs it after make test).
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --quiet -- -D warnings

clean-demo:
	rm -rf $(DATA)
