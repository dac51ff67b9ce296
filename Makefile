# tally: the two set-up commands on a fresh machine are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
DATA ?= demo-data
DAYS ?= 30
ADDR ?= 127.0.0.1:8080

.PHONY: demo test fmt lint sql-check clean-demo

## Generate 30 days of realistic events, ingest, roll up, print a sample answer, serve the API on $(ADDR).
demo:
	$(CARGO) run --quiet -- --data $(DATA) demo --days $(DAYS) --addr $(ADDR)

## Run every test (unit, end-to-end against the oracle, API, CLI, published contracts).
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) test --workspace --no-fail-fast

## Plan every metric in sql/ against the event schema.
sql-check:
	$(CARGO) run --quiet -- --sql sql sql check

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean-demo:
	rm -rf $(DATA)
