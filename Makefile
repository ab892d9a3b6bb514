# The same commands locally and in CI.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-16)

.PHONY: install up check test services-up services-down browser bench bench-enrich bench-swap bench-channels clean

$(STAMP): pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@test -x $(PY) || uv venv --quiet --python 3.11 $(VENV)
	uv pip install --quiet --python $(PY) --compile-bytecode -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Run RelayDesk (embedded: SQLite, in-process bus, local Ray and MLflow store).
up: install
	$(VENV)/bin/relaydesk up

check: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy core api serve models pipelines training connectors

services-up:
	scripts/services up

browser:
	scripts/services browser

services-down:
	scripts/services down

## Tests against real PostgreSQL, Redis and Kafka (started if not running) and SQLite.
test: install services-up browser
	source <(scripts/services env) && $(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install services-up
	source <(scripts/services env) && $(PY) bench/api_bench.py

## Enrichment on Ray Serve against the raw encoder and the naive design (docs/benchmarks.md).
## Needs the built models (relaydesk models build); waits for a quiet machine first.
bench-enrich: install
	$(PY) bench/enrich_bench.py $(BENCH_ARGS)

## Hot swap of a head version under 50 requests/s: switch time and failures (docs/benchmarks.md).
bench-swap: install
	$(PY) bench/swap_bench.py $(BENCH_ARGS)

## Signed WhatsApp webhook bodies against POST /v1/inbound with the same messages (docs/benchmarks.md).
bench-channels: install services-up
	source <(scripts/services env) && $(PY) bench/channels_bench.py $(BENCH_ARGS)

clean:
	rm -rf .relaydesk .pytest_cache .mypy_cache .ruff_cache
